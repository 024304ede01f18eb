"""``backfill create``'s options → one ``anachron.requests.BackfillRequest`` (the model the Python API and the
HTTP API build too), and the model's errors told in terms of options.

What is checked here is only what is about the flags themselves (exactly one selection, ``--from`` with
``--to``, the ``DIM=A..B`` syntax); the values are validated by the model, whose messages name the field
(``max_concurrency: must be ...``) and are rewritten to name the option (``--max-concurrency: must be ...``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anachron as ac

from . import parsing
from .common import CliError

if TYPE_CHECKING:
    from ..requests import BackfillRequest

#: The option behind each field of the model (``partition_range`` depends on the flag used).
OPTIONS = {
    "workflow": "WORKFLOW", "partition_keys": "--partitions", "start": "--start", "end": "--end",
    "strategy": "--strategy", "batched": "--strategy", "per_dimension": "--strategy", "failure_policy": "--on-failure",
    "max_concurrency": "--max-concurrency", "tags": "--tag", "params": "-p", "reprocess": "--reprocess",
    "order": "--order", "idempotency_key": "--idempotency-key", "include": "--include", "selection": "WORKFLOW",
    "cron": "--cron", "timezone": "--timezone",
}
POLICIES = {"continue": "continue", "stop": "stop_on_failure", "stop_on_failure": "stop_on_failure"}


@dataclass
class Options:
    """The options of ``backfill create`` as given (text)."""

    from_key: str | None = None
    to_key: str | None = None
    partitions: str | None = None
    ranges: Sequence[str] | None = None
    start: str | None = None
    end: str | None = None
    all_keys: bool = False
    strategy: str | None = None
    max_concurrency: str = "4"
    on_failure: str = "continue"
    reprocess: str = "all"
    order: str = "oldest_first"
    tags: Sequence[str] | None = None
    params: Sequence[str] | None = None
    idempotency_key: str | None = None
    dry_run: bool = False
    include: str = "selection"
    cron: str | None = None
    timezone: str | None = None
    data: dict[str, Any] = field(default_factory=dict)  #: the request's JSON form, filled by ``check``

    @property
    def range_option(self) -> str:
        return "--range" if self.ranges else "--from/--to"

    def check(self) -> Options:
        """The flag rules, before anything is loaded; fills in ``data`` (all but strategy and params)."""
        chosen = [name for name, given in (
            ("--from/--to", self.from_key is not None or self.to_key is not None),
            ("--partitions", self.partitions is not None), ("--range", bool(self.ranges)),
            ("--start/--end", self.start is not None or self.end is not None), ("--all", self.all_keys)) if given]
        if len(chosen) != 1:
            what = "none" if not chosen else " and ".join(chosen)
            raise CliError(f"give exactly one of --from/--to, --partitions, --range, --start/--end or --all "
                           f"(got {what})")
        data: dict[str, Any] = {}
        if self.from_key is not None or self.to_key is not None:
            if self.from_key is None or self.to_key is None:
                raise CliError(f"{'--from' if self.from_key is None else '--to'} is missing: --from and --to go "
                               "together")
            data["partition_range"] = {"from": self.from_key, "to": self.to_key}
        elif self.partitions is not None:
            data["partition_keys"] = parsing.csv(self.partitions, "--partitions")
        elif self.ranges:
            data["partition_range"] = parsing.key_range(self.ranges)
        elif self.start is not None or self.end is not None:
            if self.start is None:
                raise CliError("--start is missing: a time range needs a start (--end defaults to now)")
            data["start"] = self.start
            if self.end is not None:
                data["end"] = self.end
        if self.cron is not None or self.timezone is not None:
            if self.start is None:
                raise CliError("--cron: replays the ticks of a cron between --start and --end; give --start")
            data.update(cron=self.cron, timezone=self.timezone)
        if self.on_failure not in POLICIES:
            raise CliError(f"--on-failure {self.on_failure!r}: expected continue or stop")
        data.update(max_concurrency=_integer(self.max_concurrency), failure_policy=POLICIES[self.on_failure],
                    reprocess=self.reprocess, order=self.order,
                    tags=[{"key": k, "value": v} for k, v in parsing.pairs(self.tags, "--tag")],
                    idempotency_key=self.idempotency_key, dry_run=self.dry_run, include=self.include)
        parsing.pairs(self.params, "-p")  # the K=V syntax, before anything is loaded
        self.data = data
        return self

    def request(self, workflow: ac.Workflow, others: Sequence[str] = ()) -> BackfillRequest:
        """The validated request for ``workflow`` (and ``others``, backfilled with it); ``CliError`` naming the
        option when a value is refused."""
        return self.build(workflow.name, parsing.dimensions(workflow), workflow, others)

    def build(self, name: str, dims: Sequence[str] | None, workflow: ac.Workflow | None = None,
              others: Sequence[str] = ()) -> BackfillRequest:
        """The validated request for the workflow ``name`` whose dimensions are ``dims`` (``None``: it is not
        multi-partitioned), and the ``others`` named with it (a selection: keys are read as ``name``'s).
        ``workflow``, when its code is loaded here, reads ``-p`` values for parameters annotated ``date`` /
        ``datetime`` as dates; without it (``--server``) every value is JSON or text."""
        from ..requests import BackfillRequest, RequestError

        if not self.data:
            self.check()
        if "dimensions" in self.data.get("partition_range", {}) and dims is None:
            raise CliError(f"--range: workflow {name!r} is not multi-partitioned; use --from/--to or "
                           "--range FROM..TO")
        target = {"selection": [name, *others]} if others else {"workflow": name}
        data = {**target, **self.data, "params": parsing.params(self.params, "-p", workflow)}
        if self.strategy is not None:
            data["strategy"] = parsing.strategy(self.strategy, dims)
        try:
            return BackfillRequest.parse(data)
        except RequestError as exc:
            raise self.error(exc) from None

    def error(self, exc: Exception) -> Exception:
        """A refused value (from the model, or from the engine when submitting) as ``CliError`` naming the
        option; an error that names no field is returned as it is."""
        renamed = rename(str(exc), {**OPTIONS, "partition_range": self.range_option})
        return CliError(renamed) if renamed is not None else exc


def rename(message: str, options: dict[str, str]) -> str | None:
    """``max_concurrency: must be ...`` → ``--max-concurrency: must be ...``; ``params['day']: ...`` →
    ``-p day: ...``; ``None`` when the message does not start with a known field."""
    match = re.match(r"([a-z_]+)((?:\[[^\]]*\]|\.[\w-]+)*):\s", message)
    if match is None or match.group(1) not in options:
        return None
    name, path = match.groups()
    option = options[name]
    rest = message[match.end():]
    if name == "params" and path:
        key = re.match(r"\[['\"]?([^'\"\]]*)['\"]?\]|\.([\w-]+)", path)
        option += " " + (key.group(1) or key.group(2) if key else path)
    elif name == "params":
        named = re.search(r"parameters? '([^']+)'", rest)
        option += f" {named.group(1)}" if named else ""
    elif name == "partition_range" and option == "--range" and path.startswith(".dimensions."):
        option += " " + path.split(".")[2]
    return f"{option}: {rest}"


def _integer(text: str) -> int | str:
    """An integer when the text is one; else the text itself, for the model to refuse by name."""
    stripped = text.strip()
    return int(stripped) if re.fullmatch(r"[+-]?\d{1,50}", stripped) else text
