"""The data graph (SPEC §8): dependencies declared on workflows, checked when the repository is built, and
described by ``repo.graph()``."""

from __future__ import annotations

import pytest

import anachron as ac
from graph_flows import ALL, GRAPH, daily_summary, raw_events, running_total, weekly_report, yearly_deck

DAILY = ac.DailyPartitions("2024-01-01")


def repo_of(workflows, make_repo):
    return make_repo(workflows, storage="sqlite://", executor=ac.InProcessExecutor(1))


def test_deps_take_workflows_names_and_deps():
    @ac.workflow(partitions=DAILY, deps=[raw_events, "regions", ac.Dep("daily_summary", ac.IdentityMapping())])
    def wide():
        pass

    assert [d.name for d in wide.deps] == ["raw_events", "regions", "daily_summary"]
    assert wide.deps[2].mapping == ac.IdentityMapping() and wide.deps[0].mapping is None
    with pytest.raises(ValueError, match="'raw_events' is listed twice"):
        ac.workflow(lambda: None, name="twice", deps=[raw_events, "raw_events"])
    with pytest.raises(ValueError, match="'self_loop' depends on itself; use depends_on_past=True"):
        ac.workflow(lambda: None, name="self_loop", deps=["self_loop"])
    with pytest.raises(ValueError, match="mapping must be an ac.\\*Mapping"):
        ac.Dep("x", mapping="identity")
    with pytest.raises(ValueError, match="expected a list"):
        ac.workflow(lambda: None, name="bad", deps="raw_events")
    with pytest.raises(ValueError, match="depends_on_past: must be True or False"):
        ac.workflow(lambda: None, name="bad", depends_on_past="yes")


def test_an_unknown_upstream_is_refused_when_the_repository_is_built(make_repo):
    with pytest.raises(ValueError, match="'daily_summary' depends on 'raw_events', which is not a workflow of this"):
        repo_of([daily_summary, weekly_report], make_repo)


def test_a_cycle_is_refused_naming_it(make_repo):
    @ac.workflow(partitions=DAILY, deps=["c"])
    def a():
        pass

    @ac.workflow(partitions=DAILY, deps=["a"])
    def b():
        pass

    @ac.workflow(partitions=DAILY, deps=["b"])
    def c():
        pass

    with pytest.raises(ValueError, match="dependency cycle: a → b → c → a .*only depends_on_past"):
        repo_of([a, b, c], make_repo)


def test_a_mapping_that_cannot_apply_is_refused_naming_both_workflows(make_repo):
    @ac.workflow(partitions=ac.StaticPartitions(["us"]), deps=[ac.Dep(weekly_report, ac.TimeWindowMapping())])
    def by_region():
        pass

    with pytest.raises(ValueError) as caught:
        repo_of([*GRAPH, by_region], make_repo)
    message = str(caught.value)
    assert "'by_region' depends on 'weekly_report'" in message
    assert "needs time-window partitions on both sides" in message
    assert "upstream WeeklyPartitions" in message and "downstream StaticPartitions" in message

    @ac.workflow(partitions=DAILY, deps=["regions"])
    def uninferable():
        pass

    regions = next(w for w in ALL if w.name == "regions")
    with pytest.raises(ValueError, match="'uninferable' depends on 'regions': no mapping can be inferred"):
        repo_of([regions, uninferable], make_repo)


def test_repo_graph_lists_nodes_upstream_first_and_edges_with_mappings(make_repo):
    repo = repo_of(list(reversed(ALL)), make_repo)
    graph = repo.graph()
    names = [n.name for n in graph.nodes]
    assert names.index("raw_events") < names.index("daily_summary") < names.index("weekly_report") < \
        names.index("yearly_deck")
    daily = graph.node("daily_summary")
    assert daily.partitions == repr(daily_summary.partitions) and daily.time_based and daily.partitioned
    assert daily.upstream == ["raw_events"] and daily.downstream == ["weekly_report"]
    deck = graph.node("yearly_deck")
    assert deck.partitions is None and not deck.partitioned and deck.upstream == ["weekly_report"]
    edges = {(e.upstream, e.downstream): e for e in graph.edges}
    inferred = edges["raw_events", "daily_summary"]
    assert inferred.inferred and inferred.mapping == {"kind": "time_window"}
    assert inferred.description == "TimeWindowMapping()"
    assert not edges["daily_summary", "weekly_report"].inferred
    assert edges["weekly_report", "yearly_deck"].mapping == {"kind": "all"}
    past = edges["running_total", "running_total"]
    assert past.mapping == {"kind": "time_window", "start_offset": -1, "end_offset": -1}
    assert graph.node("running_total").depends_on_past and running_total.depends_on_past
    assert yearly_deck.deps[0].name == "weekly_report"
