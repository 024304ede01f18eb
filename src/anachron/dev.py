"""``ac.create_context()``: run a workflow once, locally, with a chosen environment — for development."""

from __future__ import annotations

import os
import uuid
from typing import Any

from .clock import time_from_environ, wall_clock
from .definitions import Workflow
from .engine.context import DEFAULT_LOG_LIMIT
from .engine.jobs import partition_window, tick_partition
from .loading import ref_of
from .models import SUCCESS
from .params import decode_params, encode_params
from .runtime import RunJob, execute


class RunFailed(Exception):
    """A dev run failed without an exception to re-raise (for example, every partition marked failed)."""


class DevContext:
    """A dev context: set ``environ`` (e.g. ``{"ANACHRON_TIME": "unix:1767225600"}``), then ``run``."""

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ: dict[str, str] = dict(environ or {})
        self.logs: list[tuple[float, str, str]] = []
        self.last_run_id: str | None = None

    def run(self, workflow: Workflow, partition_key: str | None = None, **params: Any) -> Any:
        """Execute one run of ``workflow`` here and now; returns its return value or raises its error.

        A time-partitioned workflow runs ``partition_key``; without one, at an explicit ``ANACHRON_TIME`` /
        ``STARLARK_TIME`` (in ``environ`` or the process), the partition that ended by that time (as a schedule
        tick at that time runs); with neither, the call is refused, naming ``partition_key``."""
        if not isinstance(workflow, Workflow):
            raise ValueError("workflow: expected an @ac.workflow")
        workflow.validate_params(params, complete=True)
        params = decode_params(encode_params(params))  # what a stored run would get
        environ = {str(k): str(v) for k, v in self.environ.items()}
        env_time = time_from_environ(environ)  # malformed: raises, naming the variable, before any task
        process_time = time_from_environ(os.environ)  # likewise, even where a partition sets the time
        asked_time = env_time or process_time
        if partition_key is None and asked_time is not None:
            # Uniflow's ``STARLARK_TIME=… ctx.run(wf)``: the partition that ended by then, as a live tick runs
            ended, _ = tick_partition(workflow, asked_time)
            partition_key = ended[0] if ended else None
        keys = [partition_key] if partition_key is not None else []
        window = None
        workflow.check_partition_key(partition_key)
        if partition_key is not None:
            window = partition_window(workflow, keys)
        logical = window[1] if window else (asked_time or wall_clock())
        run_id = f"dev-{uuid.uuid4().hex[:12]}"
        job = RunJob(run_id, 1, ref_of(workflow), tuple(keys), window, logical, None, params,
                     dict(workflow.tags), None, environ, DEFAULT_LOG_LIMIT)
        outcome = execute(job, workflow, apply_environ=True)
        self.logs, self.last_run_id = list(outcome.logs), run_id
        if outcome.status != SUCCESS:
            if outcome.exception is not None:
                raise outcome.exception
            raise RunFailed(outcome.error)
        return outcome.result


def create_context(environ: dict[str, str] | None = None) -> DevContext:
    return DevContext(environ)
