"""The backfill request as one value: its JSON form (SPEC §6) and the JSON schema the HTTP API publishes."""

from __future__ import annotations

import json

import pytest

import anachron as ac
from anachron.requests import BackfillRequest, RequestError

SPEC_BODIES = [
    {"workflow": "etl", "partition_keys": ["2024-01-01", "2024-01-02"]},
    {"workflow": "etl", "partition_range": {"from": "2024-01-01", "to": "2024-01-31"}, "strategy": {"batched": 7}},
    {"workflow": "regional", "partition_range": {"dimensions": {"date": {"from": "2024-01-01", "to": "2024-01-03"},
                                                                "region": ["us", "eu"]}},
     "strategy": {"per_dimension": {"multi_run": ["region"], "single_run": ["date"]}}},
    {"workflow": "etl", "start": "2024-01-01", "end": "2024-03-31T12:00:00Z", "strategy": "single_run",
     "tags": [{"key": "team", "value": "data"}], "params": {"sleep": 0.5}, "max_concurrency": 8,
     "failure_policy": "stop_on_failure", "reprocess": "missing", "order": "newest_first",
     "idempotency_key": "k1", "dry_run": True},
    {"selection": ["etl", "report"], "strategy": "multi_run", "config": {"etl": {"rows": 3}}},
]


def test_the_published_schema_describes_every_field_and_the_json_forms():
    schema = BackfillRequest.model_json_schema()
    json.dumps(schema)  # publishable as is
    assert set(schema["properties"]) == set(BackfillRequest.model_fields)
    assert schema["additionalProperties"] is False
    key_range = schema["$defs"]["KeyRange"]
    assert set(key_range["required"]) == {"from", "to"}  # the JSON names, not the Python ones
    strategy = schema["properties"]["strategy"]["anyOf"]
    assert {"enum": ["multi_run", "single_run"]} in strategy
    shapes = {tuple(branch.get("required", ())) for branch in strategy}
    assert {("batched",), ("per_dimension",)} <= shapes
    assert schema["properties"]["failure_policy"]["enum"] == ["continue", "stop_on_failure"]
    assert schema["properties"]["reprocess"]["enum"] == ["all", "failed_and_missing", "missing"]


@pytest.mark.parametrize("body", SPEC_BODIES)
def test_spec_bodies_validate_and_round_trip_through_json(body):
    request = BackfillRequest.parse(body)
    again = BackfillRequest.parse(json.loads(request.model_dump_json(by_alias=True)))
    assert again == request


def test_the_python_api_and_json_build_the_same_request():
    python = BackfillRequest.from_python(
        "etl", partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-31"),
        strategy=ac.BackfillStrategy.batched(7))
    assert python == BackfillRequest.parse(SPEC_BODIES[1])


@pytest.mark.parametrize(("body", "named"), [
    ({"workflow": "etl", "max_concurrency": 0}, "max_concurrency: "),
    ({"workflow": "etl", "strategy": {"batched": 0}}, "strategy"),
    ({"workflow": "etl", "strategy": "sometimes"}, "strategy"),
    ({"workflow": "etl", "strategy": {"per_dimension": {"multi_run": -1}}}, "multi_run"),  # found by fuzzing
    ({"workflow": "etl", "strategy": {"per_dimension": {"multi_run": ["region"], "single_run": "date"}}}, "single_run"),
    ({"workflow": "etl", "partition_range": {"from": "a"}}, "partition_range"),
    ({"workflow": "etl", "tags": [{"key": "", "value": "x"}]}, "tags"),
    ({"workflow": "etl", "surprise": 1}, "surprise"),
    ({"workflow": "etl", "selection": ["etl"]}, "selection: "),
    ({"workflow": "etl", "partition_keys": ["a"], "start": "2024-01-01"}, "selection: "),
    ({"workflow": "etl", "end": "2024-01-01"}, "start: "),
    ({"workflow": "etl", "start": "yesterday"}, "start: "),
])
def test_bad_bodies_are_refused_naming_the_field(body, named):
    with pytest.raises(RequestError) as caught:
        BackfillRequest.parse(body)
    message = str(caught.value)
    assert named in message and "\n" not in message, message


def test_every_door_builds_the_request_from_its_fields():
    """One source: repo.backfill's parameters are the request's fields (those of a schedule backfill excepted:
    repo.backfill_schedule); the command line names an option for each; the UI's form and the HTTP body are
    parsed by the model itself."""
    import inspect

    from anachron.cli.request import OPTIONS

    fields = set(BackfillRequest.model_fields)
    python = set(inspect.signature(ac.CodeRepository.backfill).parameters) - {"self", "block", "coordinate"}
    assert python == fields - {"trigger_id"}
    assert fields - set(OPTIONS) == {"partition_range", "dry_run", "trigger_id", "config"}  # flags of their own;
    # trigger_id is `anachron schedule backfill`; per-workflow config is not offered on the command line
    with pytest.raises(RequestError, match="colour: not a field of a backfill request"):
        BackfillRequest.from_python(workflow="etl", colour="red")
    built = BackfillRequest.from_python(workflow="etl", partition_range=ac.PartitionKeyRange.single("a", "b"),
                                        strategy=ac.BackfillStrategy.batched(2), tags={"t": "1"}, config=None)
    assert built == BackfillRequest.parse({"workflow": "etl", "partition_range": {"from": "a", "to": "b"},
                                           "strategy": {"batched": 2}, "tags": [{"key": "t", "value": "1"}]})
