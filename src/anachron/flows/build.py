"""A checked ``FlowSpec`` → an ordinary ``anachron.Workflow``.

The workflow's function is generated: it reads the run's context, converts the run's parameters to the
declared input types (defaults filled in), builds the template variables, then runs the tasks in order,
each through its ``anachron.Task`` — or, for ``workflow: pkg.mod:fn``, calls that function with the
rendered ``parameters``. It returns what the python tasks returned, by task id (``None`` when there are
none), or the Python workflow's value; dev runs (``ac.create_context().run``) hand that back.

Two attributes on the function connect it to the engine without any YAML-specific code there:
``__signature__`` (one keyword parameter per input, so the usual parameter checks apply) and
``__anachron_validate__`` (the type check of input values, see ``inputs.validator``). The workflow gets
``source_file`` (the absolute path of the YAML file) and ``module = None``, so a worker process finds it
again through ``anachron.flows.load_flow_by_name``, and ``namespace`` (``None`` without one).
"""

from __future__ import annotations

import os
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ..context import context
from ..definitions import Workflow
from .inputs import apply_inputs, signature, validator
from .spec import FlowSpec
from .tasks import PythonTask, RunScope, resolve_callable
from .templates import TemplateRenderError, render_value
from .variables import run_variables

__all__ = ["build_workflow"]


def _schedule_zone(spec: FlowSpec) -> tzinfo | None:
    """The timezone a schedule tick is rendered in: the schedules' one timezone, if they share one."""
    zones = {schedule.timezone for schedule in spec.schedules}
    return ZoneInfo(zones.pop()) if len(zones) == 1 else None


def build_workflow(spec: FlowSpec) -> Workflow:
    flow_dir = os.path.dirname(spec.path)
    steps = [(task_spec, task_spec.as_task()) for task_spec in spec.tasks if not task_spec.disabled]
    schedule_zone = _schedule_zone(spec)
    labels = dict(spec.labels)

    def flow(**params: Any) -> Any:
        ctx = context()
        inputs = apply_inputs(spec.inputs, params, spec.id)
        variables = run_variables(ctx, flow_id=spec.id, namespace=spec.namespace, labels=labels, inputs=inputs,
                                  schedule_zone=schedule_zone)
        scope = RunScope(ctx, variables, flow_dir)
        if spec.workflow is not None:
            return _call_workflow(spec, scope)
        results: dict[str, Any] = {}
        for task_spec, task in steps:
            value = task_spec.run(task, scope)
            if isinstance(task_spec, PythonTask):
                results[task_spec.id] = value
        return results or None

    flow.__name__ = flow.__qualname__ = spec.id
    flow.__doc__ = spec.description
    vars(flow).update(__signature__=signature(spec.inputs), __anachron_validate__=validator(spec.inputs))
    workflow = Workflow(flow, name=spec.id, partitions=spec.partitions, schedule=list(spec.schedules),
                        tags=spec.tags, deps=spec.deps, depends_on_past=spec.depends_on_past)
    workflow.module = None
    workflow.source_file = spec.path
    vars(workflow)["namespace"] = spec.namespace
    return workflow


def _call_workflow(spec: FlowSpec, scope: RunScope) -> Any:
    assert spec.workflow is not None
    try:
        parameters = render_value(dict(spec.parameters), scope.variables, typed=True)
    except TemplateRenderError as exc:
        raise TemplateRenderError(f"workflow {spec.workflow}: {exc}") from None
    target = resolve_callable(spec.workflow, scope.flow_dir, f"workflow {spec.workflow}")
    return target(**parameters)
