"""Planning graph backfills (SPEC §8), pure: which keys each workflow runs, in which order, what each run waits for.

Plans are frozen to JSON and rebuilt (as a leader in another process does) before they are looked at.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import anachron as ac
from anachron.definitions import WorkflowRegistry
from anachron.graph_planning import backfill_members, freeze_graph_plan, is_graph_backfill
from anachron.planning import PlanChanged, build_plan, selection_spec
from graph_flows import ALL, daily_summary, raw_events, regions, weekly_report, yearly_deck

NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
REGISTRY = WorkflowRegistry(ALL)
MARCH = selection_spec(start="2024-03-01", end="2024-03-31T23:00", now=NOW)  # 744 hours, 31 days


def plan_of(selected, selection=MARCH, include="selection", reprocess="all", statuses=None, order="oldest_first",
            strategy=None, registry=REGISTRY):
    spec = freeze_graph_plan(registry, [registry[n] for n in selected], include, selection, strategy, order,
                             reprocess, NOW, {}, statuses or {})
    return build_plan(json.loads(json.dumps(spec.to_json())), registry, {})


def keys_of(plan, name):
    return list(next(p for p in plan.workflow_plans if p.workflow.name == name).keys)


def counts(plan):
    return {name: (c["num_partitions"], c["num_runs"]) for name, c in plan.workflows.items()}


def assert_upstream_first(plan):
    """Every need of every run comes earlier in the plan, and names runs of the right workflow."""
    runs = list(plan.runs())
    for needs in plan.needs(0, plan.num_runs):
        assert runs[needs.index].workflow == needs.workflow
        for need in needs.needs:
            assert need.last_index < needs.index, (needs, need)
            between = [r for r in runs[need.first_index:need.last_index + 1] if r.workflow == need.workflow]
            assert len(between) == need.count
    return runs


# -- which workflows, which keys -------------------------------------------------------------------------------
def test_members_follow_include():
    graph = REGISTRY.graph
    assert backfill_members(graph, ["raw_events"], "downstream") == \
        ["raw_events", "daily_summary", "weekly_report", "yearly_deck"]
    assert backfill_members(graph, ["weekly_report"], "upstream") == ["raw_events", "daily_summary", "weekly_report"]
    assert backfill_members(graph, ["weekly_report", "raw_events"], "selection") == ["raw_events", "weekly_report"]
    assert not is_graph_backfill(graph, ["raw_events", "regions"], "selection")
    assert is_graph_backfill(graph, ["raw_events", "daily_summary"], "selection")
    assert is_graph_backfill(graph, ["running_total"], "selection")  # its own past
    with pytest.raises(ValueError, match="include: expected one of selection, downstream, upstream"):
        backfill_members(graph, ["raw_events"], "sideways")


def test_a_time_range_is_read_per_workflow():
    plan = plan_of(["raw_events", "daily_summary", "weekly_report", "regions", "yearly_deck"])
    # weeks that start in March; a static workflow: every key; no partitions: one node
    assert counts(plan) == {"raw_events": (744, 744), "daily_summary": (31, 31), "weekly_report": (4, 4),
                            "regions": (2, 2), "yearly_deck": (1, 1)}
    assert plan.num_partitions == 782 and plan.num_runs == 782
    assert keys_of(plan, "weekly_report") == ["2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]
    node = [r for r in plan.runs() if r.workflow == "yearly_deck"]
    assert node == [node[0]] and node[0].keys == ()


def test_include_downstream_maps_the_selected_keys_down_the_graph():
    plan = plan_of(["raw_events"], include="downstream")
    # the hours of March → their 31 days → the 5 weeks that hold a March day (Feb 26 ... Mar 25) → the deck
    assert counts(plan) == {"raw_events": (744, 744), "daily_summary": (31, 31), "weekly_report": (5, 5),
                            "yearly_deck": (1, 1)}
    assert keys_of(plan, "weekly_report")[0] == "2024-02-26"
    assert_upstream_first(plan)


def test_include_upstream_adds_the_keys_the_selection_needs():
    plan = plan_of(["weekly_report"], selection=selection_spec(partition_keys=["2024-03-04"]), include="upstream")
    assert counts(plan) == {"raw_events": (168, 168), "daily_summary": (7, 7), "weekly_report": (1, 1)}
    assert keys_of(plan, "daily_summary") == [f"2024-03-{d:02d}" for d in range(4, 11)]


def test_keys_name_the_first_workflow_and_map_to_the_others():
    picked = selection_spec(partition_range=ac.PartitionKeyRange.single("2024-03-05T00:00", "2024-03-06T23:00"))
    plan = plan_of(["raw_events", "weekly_report"], selection=picked)
    # weekly_report is two edges away: mapped through daily_summary (not in this backfill)
    assert counts(plan) == {"raw_events": (48, 48), "weekly_report": (1, 1)}
    up = plan_of(["daily_summary", "raw_events"], selection=selection_spec(partition_keys=["2024-03-10"]))
    assert counts(up) == {"raw_events": (24, 24), "daily_summary": (1, 1)}
    with pytest.raises(ValueError, match="2024-13-01"):
        plan_of(["daily_summary"], selection=selection_spec(partition_keys=["2024-13-01"]), include="downstream")


# -- reprocess: one-call healing --------------------------------------------------------------------------------
def test_healing_runs_exactly_the_missing_keys_and_what_depends_on_them():
    hours = raw_events.partitions.get_partition_keys(NOW)
    done = {k: "success" for k in hours[hours.index("2024-03-01T00:00"):hours.index("2024-04-01T00:00")]}
    done.pop("2024-03-10T05:00")  # a gap (missing)
    done["2024-03-20T07:00"] = "failed"
    days = {f"2024-03-{d:02d}": "success" for d in range(1, 32)}
    days.pop("2024-03-31")  # never ran
    weeks = {k: "success" for k in ("2024-02-26", "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25")}
    statuses = {"raw_events": done, "daily_summary": days, "weekly_report": weeks, "yearly_deck": {"": "success"}}
    missing = plan_of(["raw_events"], include="downstream", reprocess="missing", statuses=statuses)
    # the hour; its day and the day that never ran; their weeks; the deck that reads every week
    assert counts(missing) == {"raw_events": (1, 1), "daily_summary": (2, 2), "weekly_report": (2, 2),
                               "yearly_deck": (1, 1)}
    assert keys_of(missing, "raw_events") == ["2024-03-10T05:00"]
    assert keys_of(missing, "daily_summary") == ["2024-03-10", "2024-03-31"]
    assert keys_of(missing, "weekly_report") == ["2024-03-04", "2024-03-25"]
    failed = plan_of(["raw_events"], include="downstream", reprocess="failed_and_missing", statuses=statuses)
    assert counts(failed) == {"raw_events": (2, 2), "daily_summary": (3, 3), "weekly_report": (3, 3),
                              "yearly_deck": (1, 1)}
    assert_upstream_first(failed)
    whole = {**statuses, "raw_events": {**done, "2024-03-10T05:00": "success", "2024-03-20T07:00": "success"},
             "daily_summary": {**days, "2024-03-31": "success"}}
    assert plan_of(["raw_events"], include="downstream", reprocess="missing", statuses=whole).num_runs == 0


def test_healing_reads_statuses_key_by_key_whichever_side_is_smaller():
    few = {"raw_events": {"2024-03-02T00:00": "success"}}
    assert counts(plan_of(["raw_events"], reprocess="missing", statuses=few)) == {"raw_events": (743, 743)}
    many = {"raw_events": {k: "success" for k in raw_events.partitions.get_partition_keys(NOW)}}
    many["raw_events"]["2024-03-02T00:00"] = "failed"
    assert counts(plan_of(["raw_events"], reprocess="failed_and_missing", statuses=many)) == {"raw_events": (1, 1)}


# -- order and readiness ------------------------------------------------------------------------------------------
def test_runs_interleave_with_upstream_work_first():
    plan = plan_of(["raw_events"], include="downstream")
    runs = assert_upstream_first(plan)
    shown = [(r.workflow, r.keys[0] if r.keys else None) for r in runs]
    first_day = shown.index(("daily_summary", "2024-03-01"))
    assert shown[first_day - 1] == ("raw_events", "2024-03-01T23:00")  # right after its 24 hours
    assert shown[first_day + 1] == ("raw_events", "2024-03-02T00:00")
    week = shown.index(("weekly_report", "2024-03-04"))
    assert shown[week - 1] == ("daily_summary", "2024-03-10")  # right after its last day
    assert shown[-1] == ("yearly_deck", None)
    assert [plan.run(i) for i in (0, first_day, week, plan.num_runs - 1)] == \
        [runs[i] for i in (0, first_day, week, plan.num_runs - 1)]
    assert plan.key_span(week) == ("2024-03-04", "2024-03-04")
    assert [list(g) for g in plan.groups[first_day - 1:first_day + 1]] == [["2024-03-01T23:00"], ["2024-03-01"]]


def test_newest_first_and_batches_keep_upstream_work_first():
    newest = plan_of(["raw_events"], include="downstream", order="newest_first")
    runs = assert_upstream_first(newest)
    assert runs[0].keys == ("2024-03-31T23:00",)
    batched = plan_of(["raw_events"], include="downstream", strategy=ac.BackfillStrategy.batched(10))
    assert counts(batched)["raw_events"] == (744, 75)
    assert_upstream_first(batched)


def test_the_readiness_of_a_window_of_runs():
    plan = plan_of(["raw_events"], include="downstream")
    runs = list(plan.runs())
    day = runs.index(next(r for r in runs if r.keys == ("2024-03-02",)))
    (needs,) = plan.needs(day, day + 1)
    (hours,) = needs.needs
    assert (needs.workflow, hours.workflow, hours.runs, hours.count) == ("daily_summary", "raw_events", (24, 48), 24)
    assert runs[hours.first_index].keys == ("2024-03-02T00:00",) and runs[hours.last_index].keys == \
        ("2024-03-02T23:00",)
    assert plan.index_of("raw_events", 24) == hours.first_index
    week = plan.needs(plan.index_of("weekly_report", 0), plan.index_of("weekly_report", 0) + 1)[0]
    assert [(n.workflow, n.runs) for n in week.needs] == [("daily_summary", (0, 3))]  # Feb 26-29 are not in it
    deck = plan.needs(plan.num_runs - 1, plan.num_runs)[0]
    assert [(n.workflow, n.runs, n.count) for n in deck.needs] == [("weekly_report", (0, 5), 5)]
    window = plan.needs(0, 30)
    assert [n.index for n in window] == list(range(30))
    assert all(not n.needs for n in window if n.workflow == "raw_events")


def test_what_a_failure_blocks():
    plan = plan_of(["raw_events"], include="downstream")
    blocked = plan.blocked_by("raw_events", 24 * 3 + 5)  # March 4th, 05:00
    assert {name: list(runs) for name, runs in blocked.items()} == \
        {"daily_summary": [3], "weekly_report": [1], "yearly_deck": [0]}
    chain = plan_of(["running_total"], selection=selection_spec(start="2024-03-01", end="2024-03-05", now=NOW))
    assert {k: list(v) for k, v in chain.blocked_by("running_total", 1).items()} == {"running_total": [2, 3, 4]}


def test_depends_on_past_waits_for_the_key_before_and_refuses_newest_first():
    chain = plan_of(["running_total"], selection=selection_spec(start="2024-03-01", end="2024-03-05", now=NOW))
    needs = chain.needs(0, chain.num_runs)
    assert [n.needs for n in needs][0] == ()  # the key before March 1st is not in this backfill
    assert [(n.needs[0].workflow, n.needs[0].runs) for n in needs[1:]] == [("running_total", (i, i + 1))
                                                                          for i in range(4)]
    with pytest.raises(ValueError, match="order: 'newest_first' conflicts with depends_on_past=True of workflow "
                                         "'running_total'"):
        plan_of(["running_total"], order="newest_first")


# -- the frozen plan ----------------------------------------------------------------------------------------------
def test_the_frozen_plan_records_the_graph_and_rebuilds_identically():
    spec = freeze_graph_plan(REGISTRY, [raw_events], "downstream", MARCH, None, "oldest_first", "all", NOW, {}, {})
    assert spec.graph["edges"] == [
        {"upstream": "raw_events", "downstream": "daily_summary", "mapping": {"kind": "time_window"}},
        {"upstream": "daily_summary", "downstream": "weekly_report", "mapping": {"kind": "time_window"}},
        {"upstream": "weekly_report", "downstream": "yearly_deck", "mapping": {"kind": "all"}}]
    assert spec.kept["raw_events"] == [[1440, 2184]] and spec.selection == {"kind": "all"}
    text = json.dumps(spec.to_json())
    first, again = build_plan(json.loads(text), REGISTRY, {}), build_plan(json.loads(text), REGISTRY, {})
    assert list(first.runs()) == list(again.runs())
    # the code changed its mapping since: the plan keeps the one it was made with
    changed_weekly = ac.workflow(lambda: None, name="weekly_report", partitions=weekly_report.partitions,
                                 deps=[ac.Dep("daily_summary", ac.AllPartitionsMapping())])
    registry = WorkflowRegistry([raw_events, daily_summary, changed_weekly, yearly_deck])
    assert list(build_plan(json.loads(text), registry, {}).runs()) == list(first.runs())
    # its partitions changed so the keys cannot be produced: refused, saying what changed
    moved = ac.workflow(lambda: None, name="daily_summary", partitions=ac.DailyPartitions("2023-06-01"),
                        deps=[raw_events])
    with pytest.raises(PlanChanged, match="daily_summary"):
        build_plan(json.loads(text), WorkflowRegistry([raw_events, moved, weekly_report, yearly_deck]), {})
    gone = WorkflowRegistry([raw_events, daily_summary, weekly_report])
    with pytest.raises(PlanChanged, match="'yearly_deck' is no longer defined"):
        build_plan(json.loads(text), gone, {})


def test_a_one_workflow_plan_is_built_as_before():
    spec = build_plan({"workflows": ["regions"], "selection": {"kind": "all"}, "now": NOW.isoformat(),
                       "strategy": None, "order": "oldest_first", "reprocess": "all", "kept": {"regions": None}},
                      REGISTRY, {})
    assert [r.keys for r in spec.runs()] == [("us",), ("eu",)]


def test_schedule_backfills_are_not_graph_backfills():
    with pytest.raises(ValueError, match="trigger_id: a schedule backfill replays the ticks of one workflow"):
        plan_of(["raw_events"], selection=selection_spec(start="2024-03-01", trigger_id="schedule", now=NOW),
                include="downstream")


def test_a_workflow_not_connected_to_the_first_reads_the_keys_as_its_own():
    plan = plan_of(["daily_summary", "running_total"], include="upstream",
                   selection=selection_spec(partition_keys=["2024-03-01"]))
    assert counts(plan) == {"raw_events": (24, 24), "running_total": (1, 1), "daily_summary": (1, 1)}
    assert regions.name not in plan.workflows
    with pytest.raises(ValueError, match="partition_keys: workflow 'regions' is not connected to 'daily_summary'"):
        plan_of(["daily_summary", "regions"], selection=selection_spec(partition_keys=["2024-03-01"]))
