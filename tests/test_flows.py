"""YAML flows (SPEC §4): loading, templates, shell / python / log tasks, inputs, errors with file and line."""

from __future__ import annotations

import inspect
import os
import textwrap
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

import anachron as ac
from anachron.flows import FlowError, FlowTaskError, is_flow_file, load_flow, load_flow_by_name, load_flows
from helpers import alive, wait_until

FLOWS = Path(__file__).parent / "yaml_flows"


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def with_jobs(tmp_path: Path) -> Path:
    """``tmp_path`` with a copy of the callables the flows here import (``flowjobs``)."""
    (tmp_path / "flowjobs.py").write_text((FLOWS / "flowjobs.py").read_text())
    return tmp_path


def messages(repo, run_id: str) -> list[str]:
    return [line["message"] for line in repo.run_logs(run_id)]


def dev_logs(ctx) -> list[str]:
    return [message for _, _, message in ctx.logs]


@pytest.fixture
def repo_of(make_repo, sqlite_url):
    def make(*workflows, workers: int = 2):
        return make_repo(workflows=list(workflows), storage=sqlite_url, executor=ac.InProcessExecutor(workers))

    return make


# -- the SPEC's flow ----------------------------------------------------------------------------------------

def test_the_spec_flow_with_kestra_type_names_runs_a_schedule_tick(repo_of):
    wf = load_flow(FLOWS / "scheduled_flow.yaml")
    assert wf.name == "scheduled_flow" and wf.namespace == "company.team"
    assert wf.tags == {"anachron/namespace": "company.team"}
    assert wf.schedules == [ac.Schedule("*/30 * * * *", timezone="UTC", recover_missed="all", id="schedule")]
    assert wf.source_file == str(FLOWS / "scheduled_flow.yaml") and wf.module is None
    repo = repo_of(wf)
    tick = datetime(2024, 3, 1, 6, 30, tzinfo=timezone.utc)
    run = repo.run(wf, scheduled_time=tick, params={"region": "eu"})
    assert run.status == "success", run.error
    assert messages(repo, run.run_id) == [
        "processing data for 2024-03-01T06:30:00+00:00",
        "region eu",
        "loading 2024-03-01T06:30:00+00:00 for eu",
    ]


def test_a_manual_run_of_the_spec_flow_fails_on_the_undefined_trigger_date(repo_of):
    wf = load_flow(FLOWS / "scheduled_flow.yaml")
    repo = repo_of(wf)
    run = repo.run(wf)
    assert run.status == "failed"
    assert "task load: tasks[1].args.day: trigger.date is undefined in this run" in run.error
    assert "?? <fallback>" in run.error  # the message says how to give a default
    assert messages(repo, run.run_id)[1] == "region us"  # the shell task ran, with the input's default


def test_dev_run_renders_the_logical_time_from_anachron_time(tmp_path):
    wf = load_flows(write(tmp_path, """
        id: pipeline
        tasks:
          - id: hello
            type: shell
            commands: ["echo started {{ execution.startDate }} for {{ trigger.date ?? 'a manual run' }}"]
    """))[0]
    ctx = ac.create_context()
    ctx.environ["ANACHRON_TIME"] = "unix:1767225600"
    assert ctx.run(wf) is None
    assert dev_logs(ctx) == ["started 2026-01-01T00:00:00+00:00 for a manual run"]


# -- templates ----------------------------------------------------------------------------------------------

def test_the_coalesce_operator(tmp_path):
    wf = load_flow(write(tmp_path, """
        id: coalesce
        inputs:
          - {id: region, type: STRING, defaults: eu}
          - {id: maybe, type: STRING, required: false}
        tasks:
          - id: say
            type: log
            message:
              - "{{ inputs.region ?? 'none' }}"
              - "{{ trigger.date ?? 'manual' }}"
              - "{{ inputs.maybe ?? 'was null' }}"
              - "{{ trigger.date ?? partition.key ?? inputs.maybe ?? 'chained' }}"
              - "{{ 'a ?? b' }} and ?? in text {{ \\"x??\\" ~ (trigger.date ?? '!') }}"
              - "{% if trigger.date ?? false %}tick{% else %}no tick{% endif %}"
              - "{% set d = trigger.date | date('yyyy') ?? 'no year' %}{{ d }}"
              - "{{ trigger.date.nested.deeper ?? 'deep' }}"
    """))
    ctx = ac.create_context()
    ctx.run(wf)
    assert dev_logs(ctx) == ["eu", "manual", "was null", "chained", "a ?? b and ?? in text x??!", "no tick",
                             "no year", "deep"]
    ctx.run(wf, region="us", maybe="given")
    assert dev_logs(ctx)[0] == "us" and dev_logs(ctx)[2] == "given"


def test_shell_quote_and_date_filters(tmp_path):
    nasty = """it's; echo "$HOME" `id` \\ done"""
    wf = load_flow(write(tmp_path, """
        id: quoting
        inputs: [{id: text, type: STRING}, {id: when, type: DATETIME}]
        tasks:
          - id: echo
            type: shell
            commands:
              - printf '%s\\n' {{ inputs.text | shell_quote }}
              - echo {{ inputs.when | date("yyyy-MM-dd'T'HH:mm:ss") }} {{ inputs.when | date('%d/%m/%Y') }}
              - echo {{ inputs.when | date("dd MMM yyyy HH:mm XXX", timezone="Europe/Paris") }}
    """))
    ctx = ac.create_context()
    ctx.run(wf, text=nasty, when="2024-07-14T10:05:00+00:00")
    assert dev_logs(ctx) == [nasty, "2024-07-14T10:05:00 14/07/2024", "14 Jul 2024 12:05 +02:00"]


# -- inputs -------------------------------------------------------------------------------------------------

TYPED = """
    id: typed
    inputs:
      - {id: n, type: INT, defaults: 41}
      - {id: ratio, type: FLOAT, defaults: 0.5}
      - {id: flag, type: BOOLEAN, defaults: false}
      - {id: day, type: DATE, defaults: 2024-02-29}
      - {id: when, type: DATETIME, defaults: "2024-01-01T06:00:00+02:00"}
      - {id: items, type: STRING, defaults: "the input named items"}
    tasks:
      - id: show
        type: log
        message: "{{ inputs.n + 1 }} {{ inputs.ratio * 2 }} {{ inputs.flag }} {{ inputs.day.year }} {{ inputs.day }}
          {{ inputs.when }} / {{ inputs.items }}"
      - id: call
        type: python
        callable: flowjobs:typed
        args: {n: 1, ratio: 1.5, flag: true, day: 2024-01-02, when: "{{ inputs.n }}"}
"""


def test_inputs_become_a_typed_signature_and_typed_template_values(tmp_path):
    wf = load_flow(write(with_jobs(tmp_path), TYPED))
    kw = inspect.Parameter.KEYWORD_ONLY
    assert [(p.name, p.annotation, p.default, p.kind) for p in inspect.signature(wf.fn).parameters.values()] == [
        ("n", int, 41, kw), ("ratio", float, 0.5, kw), ("flag", bool, False, kw), ("day", date, date(2024, 2, 29), kw),
        ("when", datetime, datetime.fromisoformat("2024-01-01T06:00:00+02:00"), kw),
        ("items", str, "the input named items", kw),
    ]
    ctx = ac.create_context()
    result = ctx.run(wf)
    assert dev_logs(ctx) == ["42 1.0 false 2024 2024-02-29 2024-01-01T06:00:00+02:00 / the input named items"]
    # python args: YAML values as written; a string that is one expression alone gives the value, typed
    assert result == {"call": {"n": 1, "ratio": 1.5, "flag": True, "day": date(2024, 1, 2), "when": 41}}
    ctx.run(wf, n="7", ratio="2.25", flag="TRUE", day="2023-12-31", when="2024-05-05T00:00:00Z")  # text, as a CLI
    assert dev_logs(ctx) == ["8 4.5 true 2023 2023-12-31 2024-05-05T00:00:00+00:00 / the input named items"]


def test_a_parameter_that_is_one_expression_alone_keeps_its_type(tmp_path, repo_of):
    """Uniflow's migrant: a FLOAT input reaches a Python workflow as a float (not '10.0'), stored runs too."""
    wf = load_flow(write(with_jobs(tmp_path), """
        id: typed_pipeline
        inputs:
          - {id: offset, type: FLOAT, defaults: 10.0}
          - {id: day, type: DATE, defaults: "2024-01-01"}
          - {id: n, type: INT, defaults: 3}
        workflow: flowjobs:shift
        parameters:
          offset: "{{ inputs.offset }}"
          day: "{{- inputs.day -}}"
          label: "day {{ inputs.day }}"
          many: "{{ inputs.n > 2 and (trigger.date ?? 'manual') == 'manual' }}"
          items: ["{{ inputs.n }}", "{{ inputs.n }} items"]
        """))
    expected = {"shifted": 10.5, "offset_type": "float", "day_type": "date", "weekday": 1, "label": "day 2024-01-01",
                "many": True, "items": [3, "3 items"]}
    assert ac.create_context().run(wf) == expected
    run = repo_of(wf).run(wf, params={"offset": 1.25})
    assert run.status == "success", run.error
    broken = load_flow(write(with_jobs(tmp_path), """
        id: broken_pipeline
        workflow: flowjobs:shift
        parameters: {offset: "{{ trigger.date }}", day: 1, label: x, many: true, items: []}
        """, "broken.yaml"))
    with pytest.raises(Exception, match=r"parameters.offset: trigger.date is undefined in this run"):
        ac.create_context().run(broken)


def test_the_validation_hook_checks_values_against_their_declared_types(tmp_path):
    validate = load_flow(write(tmp_path, TYPED)).fn.__anachron_validate__
    validate({"n": 3, "ratio": 1, "flag": True, "day": date(2024, 1, 1), "when": datetime(2024, 1, 1)}, "params")
    validate({"n": "-3", "ratio": "1e3", "flag": "false", "day": "2024-01-01", "when": "2024-01-01T00:00Z"}, "params")
    validate({"unknown": object()}, "params")  # names are the engine's signature check, not this hook's
    for params, message in [
        ({"n": "abc"}, "params['n']: expected an INT, got 'abc'"),
        ({"n": 1.5}, "params['n']: expected an INT, got 1.5"),
        ({"n": True}, "params['n']: expected an INT, got True"),
        ({"ratio": "nan"}, "params['ratio']: expected a FLOAT, got 'nan'"),
        ({"flag": "yes"}, "params['flag']: expected a BOOLEAN, got 'yes'"),
        ({"day": "2024-02-30"}, "params['day']: expected a DATE, got '2024-02-30'"),
        ({"day": datetime(2024, 1, 1)}, "params['day']: expected a DATE, got datetime.datetime(2024, 1, 1, 0, 0)"),
        ({"when": "tomorrow"}, "params['when']: expected a DATETIME, got 'tomorrow'"),
        ({"items": ["a"]}, "params['items']: expected a STRING, got ['a']"),
        ({"items": None}, "params['items']: expected a STRING, got None (the input is required"),
    ]:
        with pytest.raises(ValueError) as caught:
            validate(params, "params")
        assert str(caught.value).startswith(message), str(caught.value)
    with pytest.raises(ValueError, match=r"^config\['typed'\]\['n'\]: expected an INT"):
        validate({"n": "x"}, "config['typed']")


def test_missing_and_unknown_inputs_are_refused_by_the_engine_before_a_run_exists(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: needs
        inputs: [{id: day, type: DATE}]
        tasks: [{id: t, type: log, message: "{{ inputs.day }}"}]
    """))
    repo = repo_of(wf)
    with pytest.raises(ValueError, match="needs parameter 'day'"):
        repo.run(wf)
    with pytest.raises(ValueError, match="has no parameter 'dya'"):
        repo.run(wf, params={"day": "2024-01-01", "dya": 1})
    assert repo.list_runs() == []
    run = repo.run(wf, params={"day": "2024-01-01"})
    assert run.status == "success" and messages(repo, run.run_id) == ["2024-01-01"]


def test_a_badly_typed_input_is_refused_before_any_run_or_backfill_is_stored(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: counted
        inputs: [{id: count, type: INT, defaults: 1}]
        partitions: {type: static, keys: [a, b]}
        tasks: [{id: t, type: log, message: "{{ inputs.count }}"}]
    """))
    repo = repo_of(wf)
    with pytest.raises(ValueError, match=r"params\['count'\]: expected an INT, got 'abc'"):
        repo.run(wf, partition_key="a", params={"count": "abc"})
    with pytest.raises(ValueError, match=r"params\['count'\]: expected an INT, got 'abc'"):
        repo.backfill(wf, partition_keys=["a", "b"], params={"count": "abc"})
    assert repo.list_runs() == [] and repo.list_backfills() == []


def test_a_badly_typed_input_that_reaches_a_run_fails_it_naming_the_input(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: counted
        inputs: [{id: count, type: INT, defaults: 1}]
        tasks: [{id: t, type: log, message: "{{ inputs.count }}"}]
    """))
    ctx = ac.create_context()
    vars(wf.fn).pop("__anachron_validate__")  # the engine's check bypassed: the run itself still refuses it
    vars(wf).pop("__anachron_validate__", None)
    with pytest.raises(ValueError, match=r"params\['count'\]: expected an INT, got 'abc'"):
        ctx.run(wf, count="abc")
    assert [line.split(":")[0] for line in dev_logs(ctx)] == ["run failed"]  # no task ran


# -- shell tasks --------------------------------------------------------------------------------------------

def test_a_failing_command_fails_the_run_with_its_exit_code_and_last_lines(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: failing
        tasks:
          - id: work
            type: shell
            commands:
              - for i in $(seq 1 15); do echo "line $i"; done
              - echo "about to fail" >&2
              - exit 3
              - echo "never printed"
          - {id: after, type: log, message: never logged}
    """))
    repo = repo_of(wf)
    run = repo.run(wf)
    assert run.status == "failed"
    assert "FlowTaskError: task work failed: exit code 3; last 10 lines of output:\n  line 7\n" in run.error
    assert "  line 15\n  about to fail" in run.error and "line 6\n" not in run.error
    logs = messages(repo, run.run_id)
    assert "never printed" not in logs and "never logged" not in logs and "about to fail" in logs


def test_output_is_streamed_line_by_line_stdout_as_info_stderr_as_warning(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: streams
        tasks:
          - id: talk
            type: shell
            env: {GREETING: "hello {{ flow.id }}", NUMBER: 42}
            commands:
              - echo "$GREETING $NUMBER"
              - sleep 0.3
              - echo "to stderr" >&2
              - sleep 0.3
              - printf 'no newline at the end'
    """))
    repo = repo_of(wf)
    run = repo.run(wf, environ={"FROM_RUN": "x"})
    assert run.status == "success", run.error
    lines = [line for line in repo.run_logs(run.run_id)]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("INFO", "hello streams 42"), ("WARNING", "to stderr"), ("INFO", "no newline at the end")]
    gaps = [(b["time"] - a["time"]).total_seconds() for a, b in zip(lines, lines[1:])]
    assert all(gap >= 0.2 for gap in gaps), gaps  # logged as they came, not at the end


def test_shell_working_directory_environment_and_run_environ(repo_of, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.txt").write_text("from the data folder\n")
    wf = load_flow(write(tmp_path, """
        id: places
        tasks:
          - {id: here, type: shell, commands: [cat marker.txt]}
          - {id: there, type: shell, workingDirectory: data, commands: [cat input.txt, 'echo "$FROM_RUN"']}
          - {id: nowhere, type: shell, cwd: "missing-{{ flow.id }}", commands: ["true"]}
    """))
    (tmp_path / "marker.txt").write_text("next to the flow file\n")
    repo = repo_of(wf)
    run = repo.run(wf, environ={"FROM_RUN": "the run's environ"})
    assert messages(repo, run.run_id)[:3] == ["next to the flow file", "from the data folder", "the run's environ"]
    assert run.status == "failed"
    assert f"task nowhere: the working directory {str(tmp_path / 'missing-places')!r} does not exist" in run.error


def test_a_shell_task_timeout_stops_it(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: slow
        tasks: [{id: nap, type: shell, timeout: PT0.3S, retry: {type: constant, maxAttempts: 2}, commands: [sleep 20]}]
    """))
    repo = repo_of(wf)
    started = time.monotonic()
    run = repo.run(wf)
    assert time.monotonic() - started < 5
    assert run.status == "failed" and "task nap timed out after 0.3 s" in run.error
    assert any("failed (attempt 1/2)" in m for m in messages(repo, run.run_id))  # retried once


def test_canceling_a_run_stops_its_shell_and_what_it_started(repo_of, tmp_path):
    pids = tmp_path / "pids"
    wf = load_flow(write(tmp_path, f"""
        id: long
        tasks:
          - id: nap
            type: shell
            commands: ["sleep 30 &", "echo $$ $! > {pids}", "wait"]
          - {{id: after, type: log, message: never}}
    """))
    repo = repo_of(wf)
    run = repo.run(wf, block=False)
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    shell, sleeper = map(int, pids.read_text().split())
    assert alive(shell) and alive(sleeper)
    started = time.monotonic()
    assert repo.cancel_run(run.run_id) is True
    assert repo.wait_run(run.run_id, timeout=10).status == "canceled"
    assert time.monotonic() - started < 5
    wait_until(lambda: not alive(shell) and not alive(sleeper), timeout=5)
    assert "never" not in messages(repo, run.run_id)


# -- python tasks and python workflows ----------------------------------------------------------------------

def test_python_callables_are_imported_when_the_task_runs_with_clear_errors(repo_of, tmp_path):
    path = write(tmp_path, """
        id: pythons
        tasks:
          - {id: missing_module, type: python, callable: no_such_module_xyz:load}
    """)
    with pytest.raises(FlowError) as refused:  # a module nobody can import: refused at load, not at run time
        load_flow(path)
    assert str(refused.value) == (f"{path}:3: tasks[0].callable: no module named 'no_such_module_xyz' (looked "
                                  "beside the flow file and on sys.path): install it, or put it beside the flow file")
    for callable_, error_type, error in [
        ("flowjobs:nope", FlowTaskError, "task t: 'flowjobs' has no attribute 'nope' (callable 'flowjobs:nope')"),
        ("flowjobs:explode", RuntimeError, "boom from flowjobs.explode"),  # the callable's own error, untouched
    ]:
        path = write(with_jobs(tmp_path), f"id: p\ntasks: [{{id: t, type: python, callable: '{callable_}'}}]\n")
        with pytest.raises(error_type) as caught:
            ac.create_context().run(load_flow(path))
        assert str(caught.value) == error


def test_a_flow_can_run_a_python_workflow_with_rendered_parameters(tmp_path):
    wf = load_flow(write(with_jobs(tmp_path), """
        id: via_python
        workflow: flowjobs:py_workflow
        parameters: {day: "{{ execution.startDate | date('yyyy-MM-dd') }}", times: 3}
    """))
    ctx = ac.create_context({"ANACHRON_TIME": "2024-05-01T12:00:00+00:00"})
    assert ctx.run(wf) == ["2024-05-01", "2024-05-01", "2024-05-01"]  # a YAML number stays a number
    assert dev_logs(ctx) == ["python workflow for 2024-05-01 x3"]


# -- partitions ---------------------------------------------------------------------------------------------

def test_a_partitioned_flow_backfilled_over_three_days_renders_each_partition(repo_of):
    wf = load_flow(FLOWS / "daily_report.yaml")
    assert isinstance(wf.partitions, ac.DailyPartitions) and wf.partitions.timezone == "Europe/Paris"
    assert wf.tags == {"team": "analytics", "anachron/namespace": "company.reports"}
    repo = repo_of(wf)
    result = repo.backfill(wf, partition_range=ac.PartitionKeyRange.single("2024-01-10", "2024-01-12"))
    assert result.status == "completed" and result.completed == 3
    logs = sorted(messages(repo, run_id)[0] + " | " + messages(repo, run_id)[1] for run_id in result.run_ids)
    assert logs == [
        f"key=2024-01-{d} start=2024-01-{d}T00:00:00+01:00 end=2024-01-{d + 1}T00:00:00+01:00 | "
        f"team=analytics at=2024-01-{d + 1} 00:00"
        for d in (10, 11, 12)
    ]


@pytest.mark.parametrize("block, check", [
    ("{type: hourly, start: '2024-01-01T00:00', timezone: America/New_York}",
     lambda p: isinstance(p, ac.HourlyPartitions) and p.timezone == "America/New_York"),
    ("{type: weekly, start: 2024-01-01, end: 2024-03-01}", lambda p: isinstance(p, ac.WeeklyPartitions)),
    ("{type: monthly, start: 2024-01-01, fmt: '%Y-%m', end_offset: 1}",
     lambda p: isinstance(p, ac.MonthlyPartitions) and p.fmt == "%Y-%m"),
    ("{type: cron, cron: '0 6 * * 1-5', start: 2024-01-01}",
     lambda p: isinstance(p, ac.TimeWindowPartitions) and p.cron == "0 6 * * 1-5"),
    ("{type: static, keys: [us, eu, 7]}", lambda p: list(p.get_partition_keys()) == ["us", "eu", "7"]),
    ("{type: dynamic, name: customers}", lambda p: isinstance(p, ac.DynamicPartitions)),
    ("{type: multi, dimensions: {date: {type: daily, start: 2024-01-01, end: 2024-01-03}, "
     "region: {type: static, keys: [us, eu]}}}",
     lambda p: list(p.get_partition_keys())[:2] == ["date=2024-01-01|region=us", "date=2024-01-01|region=eu"]),
])
def test_partition_blocks(tmp_path, block, check):
    wf = load_flow(write(tmp_path, f"id: p\npartitions: {block}\ntasks: [{{id: t, type: log, message: x}}]\n"))
    assert check(wf.partitions)


# -- triggers and labels ------------------------------------------------------------------------------------

def test_triggers_and_kestra_labels(tmp_path):
    wf = load_flow(write(tmp_path, """
        id: triggered
        labels: [{key: team, value: data}, {key: tier, value: 1}]
        tasks: [{id: t, type: log, message: "{{ labels.team }}/{{ labels.tier }}/{{ labels.extra ?? '-' }}"}]
        triggers:
          - {id: nightly, type: io.kestra.core.models.triggers.types.Schedule, cron: "@daily",
             timezone: Europe/Paris, recoverMissedSchedules: LAST, overlap: BUFFER}
          - {id: hourly, type: schedule, cron: "0 * * * *", recoverMissedSchedules: NONE}
          - {id: disabled_one, type: schedule, cron: "0 * * * *", disabled: true}
    """))
    assert wf.tags == {"team": "data", "tier": "1"} and wf.namespace is None
    assert wf.schedules == [
        ac.Schedule("@daily", timezone="Europe/Paris", recover_missed="last", overlap="buffer", id="nightly"),
        ac.Schedule("0 * * * *", recover_missed="none", id="hourly"),
    ]
    ctx = ac.create_context()
    ctx.run(wf)
    assert dev_logs(ctx) == ["data/1/-"]


def test_a_tick_renders_in_the_schedules_timezone(repo_of, tmp_path):
    wf = load_flow(write(tmp_path, """
        id: paris
        tasks: [{id: t, type: log, message: "{{ trigger.date }} {{ execution.startDate }} {{ execution.id }}"}]
        triggers: [{type: schedule, cron: "0 6 * * *", timezone: Europe/Paris}]
    """))
    repo = repo_of(wf)
    result = repo.backfill_schedule(wf, start="2024-07-01T00:00:00+02:00", end="2024-07-01T23:00:00+02:00")
    assert result.completed == 1
    [message] = messages(repo, result.run_ids[0])
    assert message == f"2024-07-01T06:00:00+02:00 2024-07-01T06:00:00+02:00 {result.run_ids[0]}"


# -- broken files -------------------------------------------------------------------------------------------

BROKEN = [
    ("id: x\ntasks:\n  - id: a\n    type: shell\n    commands: [echo hi\n",
     r"flow\.yaml:6: YAML syntax: .*"),
    ("- just\n- a list\n", r"flow\.yaml:1: a flow file must be a mapping"),
    ("", r"flow\.yaml:1: the file is empty"),
    ("id: x\ntasks:\n  - {id: a, type: log, message: hi}\n  - id: b\n    type: bash\n",
     r"flow\.yaml:5: tasks\[1\]\.type: unknown task type 'bash'; expected shell, python, log \(or "
     r"io\.kestra\.plugin\.scripts\.shell\.Commands, .*\)"),
    ("id: x\ntasks: [{id: a, type: log, message: hi}]\ntriggers:\n  - id: t\n    type: webhook\n",
     r"flow\.yaml:5: triggers\[0\]\.type: unknown trigger type 'webhook'; expected schedule"),
    ("id: x\ntasks: [{id: a, type: log, message: hi}]\ntriggers:\n  - type: schedule\n    cron: '61 * * * *'\n",
     r"flow\.yaml:5: triggers\[0\]\.cron: invalid cron expression '61 \* \* \* \*'"),
    ("id: x\ntasks: [{id: a, type: log, message: hi}]\ntriggers:\n  - type: schedule\n    cron: '@daily'\n"
     "    timezone: Mars/Olympus\n", r"flow\.yaml:6: triggers\[0\]\.timezone: unknown timezone 'Mars/Olympus'"),
    ("id: x\ntasks:\n  - id: a\n    type: shell\n    commands:\n      - echo ok\n      - echo {{ exection.id }}\n",
     r"flow\.yaml:7: tasks\[0\]\.commands\[1\]: unknown template variable 'exection'; did you mean 'execution'\?"),
    ("id: x\ninputs: [{id: region, type: STRING}]\ntasks:\n  - {id: a, type: log, message: '{{ inputs.regoin }}'}\n",
     r"flow\.yaml:4: tasks\[0\]\.message: unknown input 'regoin' in inputs\.regoin; did you mean 'region'\?"),
    ("id: x\ntasks:\n  - {id: a, type: log, message: '{{ trigger.dat }}'}\n",
     r"flow\.yaml:3: tasks\[0\]\.message: unknown template variable 'trigger\.dat'; did you mean 'date'\?"),
    ("id: x\ntasks:\n  - id: a\n    type: shell\n    commands:\n      - |\n        echo one\n        echo {{ a ?? }}\n",
     r"flow\.yaml:8: tasks\[0\]\.commands\[0\]: template syntax error: '\?\?' needs an expression on each side"),
    ("id: x\ntasks:\n  - {id: a, type: log, message: '{% if x %}never closed'}\n",
     r"flow\.yaml:3: tasks\[0\]\.message: template syntax error: Unexpected end of template"),
    ("id: x\ntasks:\n  - {id: a, type: log, message: '{{ 1 | no_such_filter }}'}\n",
     r"flow\.yaml:3: tasks\[0\]\.message: template syntax error: No filter named 'no_such_filter'"),
    ("id: x\nschedule: daily\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:2: schedule: unknown top-level key; accepted: id, namespace, description, labels, inputs"),
    ("namespace: n\ntasks: [{id: a, type: log, message: hi}]\n", r"flow\.yaml:1: id: missing required key"),
    ("id: 'bad id!'\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:1: id: 'bad id!' is not a valid flow id"),
    ("id: x\ninputs:\n  - {id: n, type: INT, defaults: many}\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:3: inputs\[0\]\.defaults: the default of input 'n' does not fit its type: expected an INT, "
     r"got 'many'"),
    ("id: x\ninputs:\n  - {id: n, type: DECIMAL}\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:3: inputs\[0\]\.type: unknown input type 'DECIMAL'; expected one of STRING, INT"),
    ("id: x\ntasks:\n  - id: a\n    type: shell\n    command: [echo]\n",
     r"flow\.yaml:5: tasks\[0\]: unknown key 'command'; accepted: .*commands"),
    ("id: x\ntasks: [{id: a, type: log, message: hi}, {id: a, type: log, message: again}]\n",
     r"flow\.yaml:2: tasks\[1\]: duplicate task id 'a'"),
    ("id: x\ntasks: [{id: a, type: python, callable: 'not a ref'}]\n",
     r"flow\.yaml:2: tasks\[0\]\.callable: expected 'package\.module:function'"),
    ("id: x\npartitions: {type: daily, start: 2024-01-10, end: 2024-01-01}\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:2: partitions\.end: end \('2024-01-01'\) must be after start|flow\.yaml:2: partitions\.end: end"),
    ("id: x\npartitions: {type: yearly, start: 2024-01-01}\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:2: partitions\.type: unknown partitions type 'yearly'"),
    ("id: x\ntasks: [{id: a, type: shell, timeout: soon, commands: [x]}]\n",
     r"flow\.yaml:2: tasks\[0\]\.timeout: expected a number of seconds or an ISO-8601 duration"),
    ("id: x\nworkflow: pkg.mod:fn\ntasks: [{id: a, type: log, message: hi}]\n",
     r"flow\.yaml:2: workflow: give either `tasks` or `workflow`, not both"),
    ("id: x\ntasks:\n  - {id: a, type: log, message: hi}\ntasks: []\n",
     r"flow\.yaml:4: YAML: the key 'tasks' appears twice in one mapping \(first on line 2\)"),
]


@pytest.mark.parametrize("text, expected", BROKEN)
def test_a_broken_file_is_refused_with_file_line_field_and_reason(tmp_path, text, expected):
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    with pytest.raises(FlowError) as caught:
        load_flows(path)
    assert caught.value.file == str(path)
    assert caught.value.issues
    first_line = str(caught.value).splitlines()[0]
    assert first_line.startswith(str(tmp_path)), first_line
    assert __import__("re").search(expected, first_line), first_line


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = write(tmp_path, """
        id: many
        inputs:
          - {id: day, type: DAY}
        tasks:
          - {id: a, type: bash}
          - {id: b, type: log, message: "{{ inputs.day }} {{ nope }}"}
        triggers:
          - {type: schedule, cron: "every day"}
    """)
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert [(issue.line, issue.field) for issue in caught.value.issues] == [
        (3, "inputs[0].type"), (5, "tasks[0].type"), (6, "tasks[1].message"), (8, "triggers[0].cron")]
    assert len(str(caught.value).splitlines()) == 4


def test_a_folder_loads_sorted_and_refuses_duplicate_ids_naming_both_files(tmp_path):
    write(tmp_path, "id: b_flow\ntasks: [{id: t, type: log, message: b}]\n", "b.yml")
    write(tmp_path, "id: a_flow\ntasks: [{id: t, type: log, message: a}]\n", "a.yaml")
    write(tmp_path, "not a flow", "notes.txt")
    assert [wf.name for wf in load_flows(tmp_path)] == ["a_flow", "b_flow"]
    write(tmp_path, "# the same id again\nid: a_flow\ntasks: [{id: t, type: log, message: c}]\n", "c.yaml")
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert str(caught.value) == (f"{tmp_path / 'c.yaml'}:2: id: duplicate flow id 'a_flow': "
                                 f"{tmp_path / 'a.yaml'} defines it too")
    write(tmp_path, "id: broken\ntasks: [{id: t, type: nope}]\n", "c.yaml")
    with pytest.raises(FlowError, match=r"c\.yaml:2: tasks\[0\]\.type: unknown task type 'nope'"):
        load_flows(tmp_path)  # one broken file: nothing from the folder is returned


def test_is_flow_file():
    assert is_flow_file("a/pipeline.yaml") and is_flow_file(Path("x.YML"))
    assert not is_flow_file("flows.py") and not is_flow_file("yaml")


def test_import_anachron_flows_loads_neither_yaml_nor_jinja():
    import subprocess
    import sys

    code = "import sys, anachron, anachron.flows; print(sorted(m for m in ('yaml', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- worker processes ---------------------------------------------------------------------------------------

def test_load_flow_by_name_is_cached_per_file_and_reloads_when_it_changes(tmp_path):
    path = write(tmp_path, "id: cached\ntasks: [{id: t, type: log, message: one}]\n")
    first = load_flow_by_name(str(path), "cached")
    assert load_flow_by_name(str(path), "cached") is first
    path.write_text("id: cached\ntasks: [{id: t, type: log, message: two, description: changed}]\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    second = load_flow_by_name(str(path), "cached")
    assert second is not first
    ctx = ac.create_context()
    ctx.run(second)
    assert dev_logs(ctx) == ["two"]
    with pytest.raises(LookupError, match="workflow 'other' not found in the flow file .* \\(it defines: cached\\)"):
        load_flow_by_name(str(path), "other")


def test_a_flow_runs_in_local_executor_worker_processes(make_repo, sqlite_url):
    wf = load_flow(FLOWS / "daily_report.yaml")
    repo = make_repo(workflows=[wf], storage=sqlite_url, executor=ac.LocalExecutor(max_workers=1))
    run = repo.run(wf, partition_key="2024-01-05")
    assert run.status == "success", run.error
    assert messages(repo, run.run_id)[0].startswith("key=2024-01-05 start=2024-01-05T00:00:00+01:00")
