"""Schemathesis against the OpenAPI document the server publishes (bounded, in process, SQLite): every operation
gets schema-valid and schema-violating requests (positive and negative generation; half the time a path
parameter or a body's workflow names one that exists, so requests reach the engine). No answer is a server
error, every 4xx is the one error shape ``{"error": {"code", "message"}}``, and no refused request writes
anything: the rows of every table a request can create are counted before and after each call.

``tests/test_api_fuzz.py`` adds hostile values the schema walker cannot produce (raw non-JSON bodies, huge
strings, lone surrogates, NUL); this file is the standard tool's view of the same document.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import anachron as ac
from anachron.api import create_app

PY_FLOWS = Path(__file__).parent / "api_flows" / "api_workflows.py"
EXAMPLES = 25  # per operation and generation mode: ~25 operations, about a minute on 2 cores
COUNTED = ("anachron_runs", "anachron_backfills", "anachron_backfill_workflows", "anachron_run_partitions",
           "anachron_dynamic_partitions", "anachron_schedules")
ACTIVE = ("requested", "in_progress", "paused")


def _workflows() -> list[ac.Workflow]:
    spec = importlib.util.spec_from_file_location("api_workflows_for_schemathesis", PY_FLOWS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [module.daily, module.grid, module.hello, module.hourly]  # quick ones: nothing sleeps


class Served:
    repo: ac.CodeRepository
    path: Path

    def counts(self) -> dict[str, int]:
        import sqlite3

        with sqlite3.connect(self.path) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}

    def settle(self) -> None:
        """Cancel what a request created, so nothing goes on writing in the background between two calls."""
        for status in self.repo.list_backfills(status=list(ACTIVE)):
            self.repo.cancel_backfill(status.backfill_id)


SERVED = Served()
KNOWN: dict[str, list[str]] = {}  # names and ids that exist, so generated requests get past "not found"
CALLS: dict[int, int] = {}  # status → answers (reported at the end: how much was sent)


def _app() -> Any:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="anachron-schemathesis-")) / "api.db"
    repo = ac.CodeRepository(_workflows(), storage=f"sqlite:///{path}", executor=ac.InProcessExecutor(2))
    done = repo.backfill("daily", partition_keys=["2024-01-01", "2024-01-02"], params={"fail": "2024-01-02"})
    run = repo.run("hello", params={"lines": 2})
    SERVED.repo, SERVED.path = repo, path
    KNOWN.update({"name": ["daily", "grid", "hello", "hourly"], "workflow": ["daily", "grid", "hello", "hourly"],
                  "backfill_id": [done.backfill_id], "run_id": [run.run_id, *done.run_ids],
                  "schedule_id": ["schedule", "nightly"], "flowId": ["hourly"], "namespace": ["api_workflows"],
                  "triggerId": ["schedule", "nightly"]})
    return create_app(repo, daemon=False, ui=False, allowed_hosts=["testserver"])


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Half the time, a path parameter or a body's workflow (or trigger) names one that exists: the request then
    reaches the engine's own checks instead of stopping at 404."""
    from hypothesis import strategies as st

    def known(value: Any, name: str) -> Any:
        return st.one_of(st.just(value), st.sampled_from(KNOWN[name])) if name in KNOWN else st.just(value)

    paths = st.fixed_dictionaries({k: known(v, k) for k, v in (case.path_parameters or {}).items()})
    body = case.body
    if isinstance(body, dict):
        bodies = st.fixed_dictionaries({k: known(v, k) if isinstance(v, str) or v is None else st.just(v)
                                        for k, v in body.items()})
    else:
        bodies = st.just(body)

    def apply(values: tuple[dict[str, Any], Any]) -> Any:
        if case.path_parameters:
            case.path_parameters = values[0]
        if isinstance(body, dict):
            case.body = values[1]
        return case

    return st.tuples(paths, bodies).map(apply)


@pytest.fixture(scope="module", autouse=True)
def _close() -> Iterator[None]:
    yield
    SERVED.repo.close()
    print(f"schemathesis: {sum(CALLS.values())} requests, answers by status {dict(sorted(CALLS.items()))}")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_no_partial_write(case: Any) -> None:
    before = SERVED.counts()
    response = case.call()
    after = SERVED.counts()
    CALLS[response.status_code] = CALLS.get(response.status_code, 0) + 1
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500, response.text
    if 400 <= response.status_code < 500:
        assert after == before, f"a refused request ({response.status_code}) wrote rows: {before} -> {after}"
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    else:
        SERVED.settle()
