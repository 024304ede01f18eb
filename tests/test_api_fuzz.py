"""The HTTP API fuzzed from its own ``/openapi.json``: no input makes it answer 5xx, and every 4xx is the one
error shape ``{"error": {"code", "message"}}``.

Every operation of the document gets generated path, query and body values: values that fit the published
schema (with the names, keys and ids that exist, so requests get past "not found" into the engine), mixed
at every level with hostile ones — huge strings, unicode, control characters, lone surrogates, numbers past
any column's range, wrong types, deeply nested junk — and raw bodies that are not JSON at all. The app runs
in process (``TestClient``) over a SQLite file, for speed; what a request creates is canceled at once, so
background work never piles up.

Schemathesis runs too (``tests/test_api_schemathesis.py``): it generates from the schema, positive and negative;
this walker adds the hostile values it does not produce, with shrinking to a minimal failing request.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anachron as ac
from anachron.api import create_app

PY_FLOWS = Path(__file__).parent / "api_flows" / "api_workflows.py"
URL_TEXT = 600  # the longest text put in a URL value (clients refuse URLs past 64 KiB)
EXAMPLES = 100  # per operation: 23 operations, the whole file in well under a minute

# -- what exists, so generated requests reach past "not found" ----------------------------------------------
NAMES = ["daily", "grid", "hello", "hourly", "ghost"]
KEYS = ["2024-01-01", "2024-02-29", "2024-03-01", "date=2024-01-02|region=us", "date=2024-01-02", "region=eu", "us"]
TIMES = ["2024-01-01", "2024-01-02T00:00:00Z", "2024-01-01T05:00:00+05:30", "1970-01-01", "2100-01-01T00:00:00",
         "0001-01-01", "9999-12-31T23:59:59+14:00"]
WORDS = NAMES + KEYS + TIMES + ["schedule", "nightly", "multi_run", "single_run", "batched", "per_dimension",
                                "date", "region", "anachron/priority", "api_workflows_for_fuzz", "default", "x=y", ""]
HOSTILE_TEXT = [
    "x" * 100_000, "\x00", "\x00\x01\x1b[31m\r\n\t", "é" * 5000, "💥🧨" * 100, "\u202e\u200b\ufeff", "\ud800",
    "\udfff\ud800", "../../etc/passwd", "%2F%00%ZZ", "' OR 1=1 --", "\"; DROP TABLE anachron_runs; --", "{0}%s%n",
    "{{ 7*7 }}", "<script>alert(1)</script>", "null", "NaN", "-1", "1e999", " 2024-01-01 ", "2024-01-01\n",
    "date=2024-01-01|date=2024-01-02", "=", "a=b=c", "|||", "\\", "\\u0000",
]
HOSTILE_NUMBERS = [0, -1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**40, 1.5, -0.0, 1e308, True, False]


LEAF = st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(HOSTILE_NUMBERS), st.none(), st.text(max_size=30),
                 st.sampled_from(WORDS))
#: any JSON, nested
JUNK = st.recursive(LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


RAW_BODIES = [b"", b"{", b"{not json", b"\xff\xfe\x00", b'{"workflow": "\xed\xa0\x80"}', b"[" * 50_000, b"NaN",
              b'{"a": Infinity}', b'{"k": [' * 3000 + b"0" + b"]}" * 3000, b"\x00" * 100]


class Schemas:
    """Hypothesis strategies from the OpenAPI document's JSON Schemas: ``plausible`` values (the schema's shape,
    with words that exist: most reach the engine), ``hostile`` ones (the shape, any leaf possibly hostile), and
    anything at all."""

    def __init__(self, spec: dict[str, Any]):
        self.components = spec.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def shaped(self, schema: dict[str, Any], hostile: bool, depth: int = 0) -> st.SearchStrategy[Any]:
        schema = self.resolve(schema)
        if depth > 6:
            return LEAF

        def inner(sub: dict[str, Any]) -> st.SearchStrategy[Any]:
            shaped = self.shaped(sub, hostile, depth + 1)
            return st.one_of(shaped, shaped, shaped, LEAF) if hostile else shaped

        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                return st.one_of([inner(s) for s in schema[key]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if kind == "string":
            return st.sampled_from(WORDS) | st.text(max_size=20) if hostile else st.sampled_from(WORDS)
        if kind == "integer":
            low, high = schema.get("minimum"), schema.get("maximum")
            fitting = st.integers(min_value=int(low) if low is not None else -5,
                                  max_value=int(high) if high is not None else 50)
            return fitting | st.sampled_from(HOSTILE_NUMBERS) if hostile else fitting
        if kind == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return st.lists(inner(schema.get("items", {})), max_size=4)
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            required = set(schema.get("required", ()))
            fixed = st.fixed_dictionaries({k: inner(v) for k, v in properties.items() if k in required},
                                          optional={k: inner(v) for k, v in properties.items() if k not in required})
            extra = schema.get("additionalProperties")
            if extra:
                more = st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=10) if hostile else
                                       st.sampled_from(WORDS), inner(extra if isinstance(extra, dict) else {}),
                                       max_size=3)
                return st.builds(lambda a, b: {**b, **a}, fixed, more)
            return fixed
        return JUNK if hostile else LEAF  # no type: anything

    def value(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Plausible, hostile or anything, about half plausible."""
        plausible = self.shaped(schema, hostile=False)
        return st.one_of(plausible, plausible, self.shaped(schema, hostile=True), JUNK)


# -- the app under test ---------------------------------------------------------------------------------------
def _workflows() -> list[ac.Workflow]:
    spec = importlib.util.spec_from_file_location("api_workflows_for_fuzz", PY_FLOWS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [module.daily, module.grid, module.hello, module.hourly]  # quick ones: nothing sleeps


def _operations() -> list[tuple[str, str]]:
    repo = ac.CodeRepository(_workflows(), storage="sqlite://", executor=ac.InProcessExecutor(1))
    spec = create_app(repo, daemon=False, ui=False).openapi()  # the same document /openapi.json serves
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


OPERATIONS = _operations()


def in_process_client(app: Any) -> Any:
    with warnings.catch_warnings():  # Starlette's TestClient warns that it prefers httpx2
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")  # a UserWarning
        from fastapi.testclient import TestClient
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost")


class Fuzzed:
    def __init__(self, client: Any, repo: ac.CodeRepository, spec: dict[str, Any], ids: dict[str, list[str]]):
        self.client, self.repo, self.spec, self.ids = client, repo, spec, ids
        self.schemas = Schemas(spec)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Iterator[Fuzzed]:
    tmp = tmp_path_factory.mktemp("fuzz")
    repo = ac.CodeRepository(_workflows(), storage=f"sqlite:///{tmp / 'fuzz.db'}", executor=ac.InProcessExecutor(2))
    app = create_app(repo, daemon=False, ui=False)
    with in_process_client(app) as client:
        spec = client.get("/openapi.json").json()
        # something real for path parameters to name: a finished backfill with a failure, a run with logs
        done = repo.backfill("daily", partition_keys=["2024-01-01", "2024-01-02"], params={"fail": "2024-01-02"})
        running = repo.backfill("grid", partition_range=ac.PartitionKeyRange.multi({"region": ["us"]}), block=False,
                                coordinate=False)
        run = repo.run("hello", params={"lines": 2})
        ids = {"backfill_id": [done.backfill_id, running.backfill_id], "run_id": [run.run_id, *done.run_ids],
               "name": ["daily", "grid", "hello", "hourly"], "schedule_id": ["schedule", "nightly"]}
        yield Fuzzed(client, repo, spec, ids)
    repo.close()


def _path_value(fuzzed: Fuzzed, name: str) -> st.SearchStrategy[str]:
    known = fuzzed.ids.get(name, [])
    hostile = [t[:URL_TEXT] for t in HOSTILE_TEXT if t and "\ud800" not in t and "\udfff" not in t]  # URLs: UTF-8
    return st.one_of(st.sampled_from(known), st.sampled_from(known), st.sampled_from(hostile),
                     st.text(min_size=1, max_size=20))


def requests(fuzzed: Fuzzed, method: str, path: str) -> st.SearchStrategy[dict[str, Any]]:
    """Requests for one operation; every strategy is built once (building them per example is what is slow)."""
    operation = fuzzed.spec["paths"][path][method.lower()]
    paths = {p["name"]: _path_value(fuzzed, p["name"]) for p in operation.get("parameters", []) if p["in"] == "path"}
    queries = {p["name"]: st.lists(fuzzed.schemas.value(fuzzed.schemas.resolve(p.get("schema", {}))), max_size=3)
               for p in operation.get("parameters", []) if p["in"] == "query"}
    declared = operation.get("requestBody")
    fitting = JUNK
    if declared:
        schema = fuzzed.schemas.resolve(declared["content"]["application/json"]["schema"])
        fitting = fuzzed.schemas.value(schema)
        seeds = SEEDS.get((method, path.removeprefix("/api/v1")), [])
        if seeds:  # a valid body with a field or two changed: gets furthest into the engine
            fitting = fitting | mutations(fuzzed.schemas, schema, seeds)
    content_types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                     "multipart/form-data"])

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        url = path
        for name, strategy in paths.items():
            url = url.replace("{" + name + "}", _quote(draw(strategy)))
        query: list[tuple[str, str]] = []
        for name, strategy in queries.items():
            for value in draw(strategy):
                for item in value if isinstance(value, list) else [value]:
                    text = json.dumps(item) if isinstance(item, (dict, list)) else _text(item)
                    query.append((name, text.encode("utf-8", "replace").decode()[:URL_TEXT]))
        request: dict[str, Any] = {"method": method, "url": url, "params": query}
        if declared is not None or draw(st.integers(0, 9)) == 0:  # now and then a body where none is expected
            kind = draw(st.integers(0, 9))
            if kind == 0:
                request["content"] = draw(st.sampled_from(RAW_BODIES))
                request["headers"] = {"content-type": draw(content_types)}
            else:
                value = draw(fitting if kind > 2 else JUNK)
                request["content"] = json.dumps(value, allow_nan=True).encode()
                request["headers"] = {"content-type": "application/json"}
        return request

    return build()


TRIGGER = {"flowId": "hourly", "namespace": "api_workflows_for_fuzz", "triggerId": "schedule"}
#: valid bodies, by operation, that ``mutations`` changes a field or two of
SEEDS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("POST", "/backfills"): [
        {"workflow": "daily", "partition_keys": ["2024-01-01", "2024-01-02"], "dry_run": True},
        {"workflow": "daily", "partition_range": {"from": "2024-01-01", "to": "2024-01-09"},
         "strategy": {"batched": 3}},
        {"workflow": "grid", "partition_range": {"dimensions": {"date": {"from": "2024-01-01", "to": "2024-01-02"},
                                                                "region": ["us"]}},
         "strategy": {"per_dimension": {"multi_run": ["date"], "single_run": ["region"]}}},
        {"workflow": "hourly", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T03:00:00Z",
         "tags": [{"key": "k", "value": "v"}], "params": {"region": "eu"}},
        {"selection": ["daily", "grid"], "start": "2024-01-01", "end": "2024-01-03", "reprocess": "missing",
         "order": "newest_first", "failure_policy": "stop_on_failure", "max_concurrency": 2, "idempotency_key": "i"},
    ],
    ("POST", "/runs"): [{"workflow": "hello", "params": {"name": "x", "lines": 1}, "idempotency_key": "r"},
                        {"workflow": "daily", "partition_key": "2024-01-05", "tags": [{"key": "k", "value": "v"}]}],
    ("PUT", "/triggers"): [{"backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T02:00:00Z",
                                         "inputs": {"region": "eu"}, "labels": [{"key": "k", "value": "v"}]},
                            **TRIGGER}],
    ("PUT", "/triggers/backfill/pause"): [TRIGGER],
    ("PUT", "/triggers/backfill/unpause"): [TRIGGER],
    ("POST", "/triggers/backfill/delete"): [TRIGGER],
}


def mutations(schemas: Schemas, schema: dict[str, Any], seeds: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """A seed with up to two top-level fields replaced (by any value for that field), dropped or added."""
    properties = schema.get("properties", {})
    fields = st.sampled_from(sorted(properties)) if properties else st.sampled_from(WORDS)
    change = st.one_of(
        st.tuples(st.just("drop"), fields, st.none()),
        st.tuples(st.just("junk"), fields | st.sampled_from(WORDS), JUNK),
        *[st.tuples(st.just("set"), st.just(name), schemas.value(sub)) for name, sub in properties.items()])

    def apply(seed: dict[str, Any], changes: list[tuple[str, str, Any]]) -> dict[str, Any]:
        body = json.loads(json.dumps(seed))
        for kind, name, value in changes:
            if kind == "drop":
                body.pop(name, None)
            else:
                body[name] = value
        return body

    return st.builds(apply, st.sampled_from(seeds), st.lists(change, max_size=2))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value.encode("utf-8", "replace"), safe="")


def _settle(fuzzed: Fuzzed, method: str, path: str, answer: Any) -> None:
    """Cancel what a request created, so that no background work piles up over the examples."""
    if not isinstance(answer, dict):
        return
    try:
        if method == "POST" and path.endswith(("/backfills", "/rerun")) and answer.get("backfill_id"):
            fuzzed.repo.cancel_backfill(answer["backfill_id"])
        elif method == "PUT" and path.endswith("/triggers") and answer.get("backfill_id"):
            fuzzed.repo.cancel_backfill(answer["backfill_id"])
        elif method == "POST" and path.endswith("/runs") and answer.get("run_id"):
            fuzzed.repo.cancel_run(answer["run_id"])
    except ValueError:
        pass  # finished already


@pytest.mark.parametrize("method,path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_makes_an_operation_answer_5xx(fuzzed, method, path):
    assert path in fuzzed.spec["paths"], "the served /openapi.json is the one the cases were made from"

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                     HealthCheck.large_base_example])
    @given(request=requests(fuzzed, method, path))
    def check(request: dict[str, Any]) -> None:
        response = fuzzed.client.request(**request)
        assert response.status_code < 500, (request["method"], request["url"], request.get("content", b"")[:300],
                                             response.status_code, response.text[:500])
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
            assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
            assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        else:
            _settle(fuzzed, method, path, response.json())

    check()


def test_every_operation_is_fuzzed(fuzzed):
    served = {(m.upper(), p) for p, ops in fuzzed.spec["paths"].items() for m in ops}
    assert served == set(OPERATIONS) and len(served) >= 23
