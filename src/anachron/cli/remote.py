"""``--server URL``: the commands drive an ``anachron server`` over its HTTP API instead of a local database.

The server has the workflows and leads the work, so no TARGET is needed (giving one is an error naming
``--server``). ``ANACHRON_SERVER`` is the default for ``--server``; ``ANACHRON_API_TOKEN``, when set, is sent
as ``Authorization: Bearer <token>``.

``Client`` answers the same calls as ``CodeRepository`` (see ``backend.Backend``) with the same records,
built from the API's JSON, so the commands and their renderers are shared. Requests are the Python API's
own models (``BackfillRequest``, ``RunRequest``) sent as their JSON. Errors become one ``error:`` line:

- a 4xx answer: the server's message (``{"error": {"message"}}``), exit code 2; a 404 names the id and the
  server; a 401 says to set ``ANACHRON_API_TOKEN``;
- no answer (connection refused, a timeout), a 502/503/504: ``server URL: <reason>``, exit code 1 — while a
  command waits on a backfill or run, these are retried instead (``ServerUnavailable`` is a hiccup);
- anything else the server answers (a 500, something that is not the API's JSON): exit code 1.

httpx is needed only here (it comes with ``anachron[dev]``; ``pip install httpx`` otherwise).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import quote, urlsplit

from ..models import BackfillResult, BackfillStatus, NotFoundError, Run, ScheduleStatus
from .common import FAILED, USAGE, CliError

if TYPE_CHECKING:
    import httpx

    from ..requests import BackfillRequest
    from ..strategies import BackfillStrategy

SERVER_ENV = "ANACHRON_SERVER"
TOKEN_ENV = "ANACHRON_API_TOKEN"
#: Seconds to wait for one answer (and for a connection); for an answer that plans a backfill.
TIMEOUT, CONNECT_TIMEOUT, PLAN_TIMEOUT = 30.0, 10.0, 300.0
#: Seconds between two looks at a backfill or run being waited on.
POLL_SECONDS = 0.5
#: The most items the API lists per page (``limit``), and partitions per page.
PAGE, PARTITION_PAGE = 1000, 10_000

T = TypeVar("T")


class ServerError(CliError):
    """An error answer (or none): one ``error:`` line. ``status``: the HTTP status, ``None`` without one."""

    def __init__(self, message: str, exit_code: int, status: int | None = None):
        super().__init__(message, exit_code)
        self.status = status


class ServerUnavailable(ServerError):
    """No answer, or the server says it cannot serve now (502/503/504): exit code 1, retried while waiting."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message, FAILED, status)


# -- which server ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    url: str  #: the base URL, without a trailing slash
    option: str | None  #: ``--server`` as given; ``None`` when it comes from ``ANACHRON_SERVER``

    @property
    def shown(self) -> str:
        """The URL fit to print: a password in it (a proxy's basic auth) hidden."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
        return parts._replace(netloc=netloc).geturl()

    @property
    def named(self) -> str:
        """How the user chose it, for messages: ``--server URL`` or ``ANACHRON_SERVER=URL``."""
        return f"--server {self.shown}" if self.option is not None else f"{SERVER_ENV}={self.shown}"

    def args(self, positionals: Sequence[str] | None, names: Sequence[str], *, module: str | None = None,
             db: str | None = None) -> list[str]:
        """The positionals as ``names`` (no TARGET: the server has the workflows); ``CliError`` otherwise."""
        given = list(positionals or [])
        if module:
            raise CliError(f"-m {module}: not used with {self.named}: the server has the workflows; leave it out")
        if db is not None:
            raise CliError(f"--db: not used with {self.named}: the server has its own database; leave it out")
        usage = " ".join([*names, "--server URL"])
        if len(given) == len(names) + 1:
            raise CliError(f"TARGET {given[0]}: not used with {self.named}: the server has the workflows; leave "
                           f"it out (usage: {usage})")
        if len(given) < len(names):
            raise CliError(f"missing {' '.join(names[len(given):])} (usage: {usage})")
        if len(given) > len(names):
            raise CliError(f"too many arguments: {' '.join(given[len(names):])!r} (usage: {usage})")
        return given


def chosen(option: str | None) -> Server | None:
    """The server to drive: ``--server``, else ``ANACHRON_SERVER``; ``None``: work locally."""
    if option is not None:
        text, source = option, "--server"
    else:
        text, source = os.environ.get(SERVER_ENV, ""), SERVER_ENV
        if not text.strip():
            return None
    url = text.strip().rstrip("/")
    if not url:
        raise CliError(f"{source}: the server URL is empty")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        shown = text if parts.password is None else Server(url, option).shown
        raise CliError(f"{source} {shown!r}: expected the server's URL, e.g. http://host:8080")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        raise CliError(f"{source}: {exc}") from None
    return Server(url, option)


def connect(server: Server) -> Client:
    """A client for ``server`` (use it as a context manager)."""
    return Client(server)


# -- records from JSON ----------------------------------------------------------------------------
class Preview(Sequence[T]):
    """The first items of a longer list the server previews (the API lists at most 1,000): ``len()`` is the
    full length and ``[-1]`` its last item, so the dry-run summary is exact; iterating (``--output json``)
    gives the preview."""

    def __init__(self, items: Sequence[T], total: int, last: T):
        self.items, self.total, self.last = list(items), total, last

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return self.items[index]
        if index < 0:
            index += self.total
        if index == self.total - 1:
            return self.last
        if 0 <= index < len(self.items):
            return self.items[index]
        raise IndexError(f"item {index} is not in the server's preview of {len(self.items)}")

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)


def record(cls: type[T], data: Any) -> T:
    """A dataclass record (``Run``, ``BackfillStatus``, ...) from its JSON: datetimes parsed, nested records
    built; fields the answer leaves out take their defaults. ``ValueError`` when it does not fit."""
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a {cls.__name__} object")
    from ..requests import model_type_hints

    hints = model_type_hints(cls)
    values = {f.name: _value(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)  # type: ignore[arg-type]
              if f.name in data}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _value(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [k for k in typing.get_args(kind) if k is not type(None)]
        kind = members[0] if len(members) == 1 else Any
    if kind is datetime:
        return parse_time(value)
    if kind is date:
        return date.fromisoformat(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return record(kind, value)
    if isinstance(kind, type) and hasattr(kind, "model_validate"):  # a pydantic model (a backfill's request)
        return kind.model_validate(value)
    if typing.get_origin(kind) is list and typing.get_origin(typing.get_args(kind)[0]) is tuple:
        return [tuple(item) for item in value]  # (key, value) pairs arrive as JSON arrays
    return value


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO-8601 datetime, got {value!r}")
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def backfill_result(data: Any) -> BackfillResult:
    """``BackfillResult`` from the API's ``BackfillCreated``: key lists longer than its preview become a
    ``Preview`` (full length, exact last item)."""
    result = record(BackfillResult, data)
    keys, plan = list(result.partition_keys), [list(g) for g in result.plan]
    if len(keys) < result.num_partitions and data.get("last_key") is not None:
        result = dataclasses.replace(result, partition_keys=Preview(keys, result.num_partitions, data["last_key"]))
    if len(plan) < result.num_runs:
        last_run = data.get("last_run")
        if last_run is None and result.num_runs == result.num_partitions and data.get("last_key") is not None:
            last_run = [data["last_key"]]  # one key per run
        if last_run is not None:
            result = dataclasses.replace(result, plan=Preview(plan, result.num_runs, list(last_run)))
    return result


def is_preview(result: BackfillResult) -> bool:
    return isinstance(result.partition_keys, Preview) or isinstance(result.plan, Preview)


@dataclass(frozen=True)
class RemoteWorkflow:
    """What the server says about a workflow (``GET /api/v1/workflows/{name}``)."""

    name: str
    namespace: str
    dimensions: list[str] | None
    backfill_strategy: BackfillStrategy | None
    schedules: list[str]

    @classmethod
    def of(cls, data: Any) -> RemoteWorkflow:
        from ..strategies import BackfillStrategy

        strategy = data.get("backfill_strategy")
        dims = data.get("dimensions")
        return cls(name=str(data["name"]), namespace=str(data["namespace"]),
                   dimensions=None if dims is None else [str(d) for d in dims],
                   backfill_strategy=None if strategy is None else BackfillStrategy.from_dict(strategy),
                   schedules=[str(s["schedule_id"]) for s in data.get("schedules") or ()])


# -- the client -----------------------------------------------------------------------------------
class Client:
    """The HTTP API as a ``backend.Backend``: the calls of ``CodeRepository`` the commands use."""

    def __init__(self, server: Server):
        try:
            import httpx
        except ImportError:
            raise CliError(f"{server.named}: driving a server needs the httpx package: pip install httpx "
                           "(it comes with anachron[dev])") from None
        self.server = server
        self.url = server.shown  #: for messages (the requests go to ``server.url``)
        self.token = os.environ.get(TOKEN_ENV) or None
        headers = {"Accept": "application/json", "User-Agent": "anachron-cli"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http: httpx.Client = httpx.Client(base_url=f"{server.url}/api/v1", headers=headers,
                                                timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT))
        #: the status the last wait looked at, for the progress display's next read (one request, not two)
        self._seen: tuple[str, float, BackfillStatus] | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the wire -------------------------------------------------------------------------------
    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
             missing_ok: bool = False, timeout: float = TIMEOUT) -> Any:
        """One request; the answer's JSON. ``missing_ok``: ``None`` when the thing asked for is not found
        (a 404 for an id, not for an unknown route)."""
        import httpx

        try:
            response = self._http.request(method, path, params=params, json=body,
                                          timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
        except httpx.TimeoutException:
            raise ServerUnavailable(f"server {self.url}: no answer to {method} /api/v1{path} within "
                                    f"{timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise ServerUnavailable(f"server {self.url}: cannot connect: {_reason(exc)}") from None
        except httpx.InvalidURL as exc:
            raise CliError(f"{self.server.named}: {exc}") from None
        except httpx.HTTPError as exc:  # the connection dropped, a malformed answer
            raise ServerUnavailable(f"server {self.url}: {_reason(exc)}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        status = response.status_code
        if 200 <= status < 300:
            if data is None:
                raise self._unexpected(method, path, f"HTTP {status} without JSON")
            return data
        message = _message(data)
        if status == 404 and message is not None and not message.startswith("no such route"):
            if missing_ok:
                return None
            raise ServerError(f"{message} on {self.url}", USAGE, status)
        if message is None:  # not the API's error shape: a proxy, or not an anachron server
            message = f"HTTP {status} {response.reason_phrase}".strip()
            if status < 500:
                message += f" for {method} /api/v1{path} (is {self.url} an anachron server?)"
        if status == 401:
            told = "the token in ANACHRON_API_TOKEN was refused" if self.token else "no token sent"
            raise ServerError(f"server {self.url}: unauthorized ({told}): set {TOKEN_ENV} to the server's token",
                              USAGE, status)
        if status in (502, 503, 504):
            raise ServerUnavailable(f"server {self.url}: {message}", status)
        if status >= 500:
            raise ServerError(f"server {self.url}: {message}", FAILED, status)
        if status in (403, 404, 405):
            raise ServerError(f"server {self.url}: {message}", USAGE, status)
        raise ServerError(message, USAGE, status)

    def _unexpected(self, method: str, path: str, what: str) -> ServerError:
        return ServerError(f"server {self.url}: unexpected answer to {method} /api/v1{path}: {what} (is it an "
                           "anachron server of this version?)", FAILED)

    def _records(self, cls: type[T], method: str, path: str, data: Any) -> list[T]:
        try:
            return [record(cls, item) for item in data]
        except (TypeError, ValueError, KeyError) as exc:
            raise self._unexpected(method, path, str(exc)) from None

    def _record(self, cls: type[T], method: str, path: str, data: Any) -> T:
        try:
            return record(cls, data)
        except (TypeError, ValueError, KeyError) as exc:
            raise self._unexpected(method, path, str(exc)) from None

    # -- workflows ------------------------------------------------------------------------------
    def workflow(self, name: str) -> RemoteWorkflow:
        """The workflow the server knows by ``name``; ``CliError`` naming WORKFLOW when it knows none."""
        path = f"/workflows/{_part(name)}"
        data = self.call("GET", path, missing_ok=True)
        if data is None:
            known = ", ".join(sorted(str(w.get("name")) for w in self.call("GET", "/workflows"))) or "none"
            raise CliError(f"WORKFLOW: unknown workflow {name!r} on {self.url} (known: {known})")
        try:
            return RemoteWorkflow.of(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise self._unexpected("GET", path, str(exc)) from None

    def partition_status(self, workflow: str) -> dict[str, str]:
        """key → status for every partition of ``workflow``, in key order (read page by page)."""
        path = f"/workflows/{_part(workflow)}/partitions"
        statuses: dict[str, str] = {}
        params: dict[str, Any] = {"limit": PARTITION_PAGE}
        while True:
            page = self.call("GET", path, params=params)
            try:
                statuses.update((str(p["key"]), str(p["status"])) for p in page["partitions"])
                next_key = page["next_key"]
            except (TypeError, KeyError) as exc:
                raise self._unexpected("GET", path, str(exc)) from None
            if next_key is None:
                return statuses
            params["from_key"] = next_key

    # -- backfills ------------------------------------------------------------------------------
    def create_backfill(self, request: BackfillRequest, *, block: bool = False,
                        coordinate: bool = True) -> BackfillResult:
        """``POST /backfills`` with the request's JSON. The server leads it (``coordinate`` is the server's
        business); ``block`` must be ``False``: waiting is ``wait_backfill``."""
        if block:
            raise ValueError("block: a remote backfill is waited on with wait_backfill")
        body = request_json(request)
        data = self.call("POST", "/backfills", body=body, timeout=PLAN_TIMEOUT)
        return self._backfill_result("POST", "/backfills", data)

    def rerun_backfill(self, backfill_id: str, block: bool = False, dry_run: bool = False,
                       coordinate: bool = True) -> BackfillResult:
        if block:
            raise ValueError("block: a remote backfill is waited on with wait_backfill")
        path = f"/backfills/{_part(backfill_id)}/rerun"
        data = self.call("POST", path, params={"dry_run": dry_run}, timeout=PLAN_TIMEOUT)
        return self._backfill_result("POST", path, data)

    def _backfill_result(self, method: str, path: str, data: Any) -> BackfillResult:
        try:
            return backfill_result(data)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise self._unexpected(method, path, str(exc)) from None

    def get_backfill(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None:
        seen, self._seen = self._seen, None
        if seen is not None and not include_run_ids and seen[0] == backfill_id and \
                time.monotonic() - seen[1] < 2 * POLL_SECONDS:
            return seen[2]
        path = f"/backfills/{_part(backfill_id)}"
        data = self.call("GET", path, params={"include_run_ids": include_run_ids}, missing_ok=True)
        return None if data is None else self._record(BackfillStatus, "GET", path, data)

    def wait_backfill(self, backfill_id: str, timeout: float | None = None) -> BackfillStatus:
        """Poll until the backfill has ended; ``TimeoutError`` after ``timeout`` (at least one poll)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, POLL_SECONDS)
        while True:
            self._seen = None
            status = self.get_backfill(backfill_id, include_run_ids=False)
            if status is None:
                raise NotFoundError(f"BACKFILL_ID: backfill {backfill_id!r} not found on {self.url}")
            if status.is_finished:
                return status
            self._seen = (backfill_id, time.monotonic(), status)
            _sleep_until(deadline)

    def list_backfills(self, status: str | Sequence[str] | None = None, workflow: str | None = None,
                       include_run_ids: bool = False, limit: int | None = None,
                       offset: int = 0) -> list[BackfillStatus]:
        params: dict[str, Any] = {"status": [status] if isinstance(status, str) else list(status or ())}
        if workflow is not None:
            params["workflow"] = workflow
        found = self._pages(BackfillStatus, "/backfills", params, limit, offset)
        if include_run_ids:  # the list leaves them out; each backfill gives its own
            return [self.get_backfill(st.backfill_id, include_run_ids=True) or st for st in found]
        return found

    def pause_backfill(self, backfill_id: str) -> BackfillStatus:
        return self._act(f"/backfills/{_part(backfill_id)}/pause")

    def resume_backfill(self, backfill_id: str) -> BackfillStatus:
        return self._act(f"/backfills/{_part(backfill_id)}/resume")

    def cancel_backfill(self, backfill_id: str) -> bool:
        """Cancel it; the server (which leads it) acts on it: always ``True``."""
        self._act(f"/backfills/{_part(backfill_id)}/cancel")
        return True

    def _act(self, path: str) -> BackfillStatus:
        self._seen = None
        return self._record(BackfillStatus, "POST", path, self.call("POST", path))

    def backfill_trigger(self, workflow: RemoteWorkflow, trigger_id: str, start: str, end: str | None,
                         inputs: Mapping[str, Any], labels: Sequence[tuple[str, str]],
                         max_concurrency: int | None = None) -> str:
        """Kestra's ``PUT /triggers``: backfill a schedule trigger; the new backfill's id."""
        body = {"flowId": workflow.name, "namespace": workflow.namespace, "triggerId": trigger_id,
                "backfill": {"start": start, "end": end, "inputs": dict(inputs),
                             "labels": [{"key": k, "value": v} for k, v in labels],
                             "max_concurrency": max_concurrency}}
        data = self.call("PUT", "/triggers", body=body, timeout=PLAN_TIMEOUT)
        backfill_id = data.get("backfill_id") if isinstance(data, Mapping) else None
        if not isinstance(backfill_id, str):
            raise self._unexpected("PUT", "/triggers", "no backfill_id")
        return backfill_id

    # -- runs -----------------------------------------------------------------------------------
    def run(self, workflow: str, partition_key: str | None = None, params: Mapping[str, Any] | None = None,
            tags: Sequence[tuple[str, str]] = (), run_name: str | None = None,
            idempotency_key: str | None = None, scheduled_time: str | None = None) -> Run:
        """``POST /runs`` (never waits: see ``wait_run``)."""
        from pydantic import ValidationError

        from ..requests import RunRequest, describe_errors

        try:
            request = RunRequest.model_validate({
                "workflow": workflow, "partition_key": partition_key, "params": dict(params or {}),
                "tags": [{"key": k, "value": v} for k, v in tags], "run_name": run_name,
                "idempotency_key": idempotency_key, "scheduled_time": scheduled_time})
        except ValidationError as exc:
            raise CliError(describe_errors(exc.errors(include_url=False))) from None
        body = request.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return self._record(Run, "POST", "/runs", self.call("POST", "/runs", body=body))

    def resolve_run_id(self, run_id: str) -> str:
        """The full id: the server takes a short one (a unique prefix or suffix) wherever it takes an id."""
        found = self.get_run(run_id)
        if found is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return found.run_id

    def resolve_backfill_id(self, backfill_id: str) -> str:
        found = self.get_backfill(backfill_id, include_run_ids=False)
        if found is None:
            raise NotFoundError(f"backfill {backfill_id!r} not found")
        return found.backfill_id

    def get_run(self, run_id: str) -> Run | None:
        path = f"/runs/{_part(run_id)}"
        data = self.call("GET", path, missing_ok=True)
        return None if data is None else self._record(Run, "GET", path, data)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Poll until the run has ended; ``TimeoutError`` after ``timeout`` (at least one poll)."""
        deadline = None if timeout is None else time.monotonic() + max(timeout, POLL_SECONDS)
        while True:
            run = self.get_run(run_id)
            if run is None:
                raise NotFoundError(f"RUN_ID: run {run_id!r} not found on {self.url}")
            if run.is_finished:
                return run
            _sleep_until(deadline)

    def list_runs(self, workflow: str | None = None, status: str | Sequence[str] | None = None,
                  backfill_id: str | None = None, tags: Mapping[str, str] | None = None,
                  limit: int | None = 100, offset: int = 0, *, partition_key: str | None = None) -> list[Run]:
        params: dict[str, Any] = {"status": [status] if isinstance(status, str) else list(status or ()),
                                  "tag": [f"{k}={v}" for k, v in (tags or {}).items()]}
        if partition_key is not None:
            params["partition_key"] = partition_key
        if workflow is not None:
            params["workflow"] = workflow
        if backfill_id is not None:
            params["backfill_id"] = backfill_id
        return self._pages(Run, "/runs", params, limit, offset)

    def cancel_run(self, run_id: str) -> bool:
        data = self.call("POST", f"/runs/{_part(run_id)}/cancel")
        return bool(data.get("canceled")) if isinstance(data, Mapping) else False

    def run_logs(self, run_id: str) -> list[dict[str, Any]]:
        """Every log line of the run, as ``repo.run_logs`` gives them."""
        path = f"/runs/{_part(run_id)}/logs"
        data = self.call("GET", path)
        try:
            return [{"attempt": int(line["attempt"]), "time": parse_time(line["time"]), "level": str(line["level"]),
                     "message": str(line["message"])} for line in data["lines"]]
        except (TypeError, ValueError, KeyError) as exc:
            raise self._unexpected("GET", path, str(exc)) from None

    def _pages(self, cls: type[T], path: str, params: dict[str, Any], limit: int | None, offset: int) -> list[T]:
        """Up to ``limit`` items (``None``: all), newest first, a page of at most ``PAGE`` at a time."""
        found: list[T] = []
        while limit is None or len(found) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(found))
            page = self.call("GET", path, params={**params, "limit": size, "offset": offset + len(found)})
            found += self._records(cls, "GET", path, page)
            if len(page) < size:
                break
        return found

    # -- schedules ------------------------------------------------------------------------------
    def list_schedules(self, workflow: str | None = None) -> list[ScheduleStatus]:
        params = {} if workflow is None else {"workflow": workflow}
        return self._records(ScheduleStatus, "GET", "/schedules", self.call("GET", "/schedules", params=params))

    def pause_schedule(self, workflow: str, schedule_id: str = "schedule") -> ScheduleStatus:
        return self._schedule(workflow, schedule_id, "pause")

    def resume_schedule(self, workflow: str, schedule_id: str = "schedule") -> ScheduleStatus:
        return self._schedule(workflow, schedule_id, "resume")

    def _schedule(self, workflow: str, schedule_id: str, action: str) -> ScheduleStatus:
        path = f"/workflows/{_part(workflow)}/schedules/{_part(schedule_id)}/{action}"
        return self._record(ScheduleStatus, "POST", path, self.call("POST", path))


def request_json(request: BackfillRequest) -> dict[str, Any]:
    """A ``BackfillRequest`` as the JSON ``POST /backfills`` reads back into the same request."""
    data: dict[str, Any] = request.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return data


def _part(text: str) -> str:
    """One path segment (an id or a name), escaped."""
    return quote(text, safe="")


def _sleep_until(deadline: float | None) -> None:
    """Sleep one poll, or until ``deadline``; ``TimeoutError`` once it has passed."""
    now = time.monotonic()
    if deadline is not None and now >= deadline:
        raise TimeoutError("still running")
    time.sleep(POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - now))
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError("still running")


def _message(data: Any) -> str | None:
    """The message of the API's ``{"error": {"code", "message"}}``; ``None`` for any other body."""
    error = data.get("error") if isinstance(data, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    if not isinstance(message, str) or not message.strip():
        return None
    return message.strip().splitlines()[0]


def _reason(exc: BaseException) -> str:
    """``[Errno 111] Connection refused`` → ``connection refused``."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", lines[0]) if lines else ""
    if not text:
        return type(exc).__name__
    if text[:2].isupper():  # an acronym (SSL: ...) stays as it is
        return text
    return text[0].lower() + text[1:]
