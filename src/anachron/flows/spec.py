"""One flow file → a validated ``FlowSpec`` (nothing built, nothing registered yet).

Every section is checked, and every problem found is reported together (``errors.Issues``): an input,
a task or a trigger with an error does not stop the others from being checked. Inputs are read first,
since templates may only use declared inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..graph import Dep
from ..partitions import PartitionsDefinition
from ..schedules import Schedule
from .deps import parse_deps
from .errors import FlowError, Issues
from .inputs import InputSpec, parse_input
from .partitions import parse_partitions
from .tasks import TaskSpec, parse_task
from .templates import compile_value
from .triggers import parse_trigger
from .yamldoc import Field, compose, describe

__all__ = ["FlowSpec", "TOP_LEVEL_KEYS", "NAMESPACE_TAG", "parse_flow"]

TOP_LEVEL_KEYS = ("id", "namespace", "description", "labels", "inputs", "tasks", "triggers", "partitions",
                  "workflow", "parameters", "deps", "depends_on_past")
NAMESPACE_TAG = "anachron/namespace"
_FLOW_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_WORKFLOW_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class FlowSpec:
    """A checked flow file. ``file`` is the path as given (for messages), ``path`` the absolute one."""

    file: str
    path: str
    id: str
    id_line: int = 1
    namespace: str | None = None
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    tasks: tuple[TaskSpec, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    partitions: PartitionsDefinition | None = None
    workflow: str | None = None  # `workflow: pkg.mod:fn`, the alternative to tasks
    parameters: Mapping[str, Any] = field(default_factory=dict)  # compiled templates and plain values
    deps: tuple[Dep, ...] = ()  # `deps:` (flows/deps.py)
    depends_on_past: bool = False

    @property
    def tags(self) -> dict[str, str]:
        """The workflow's tags: the labels, plus ``anachron/namespace`` when the flow has a namespace."""
        tags = dict(self.labels)
        if self.namespace is not None:
            tags[NAMESPACE_TAG] = self.namespace
        return tags


def parse_flow(text: str, file: str, path: str) -> FlowSpec:
    """Check the flow in ``text``; ``FlowError`` listing every problem (file, line, field, reason) otherwise."""
    root = compose(text, file)
    if root is None:
        raise FlowError.at(file, 1, "", "the file is empty; a flow needs at least `id` and `tasks`")
    doc = Field(root, "", file)
    if not doc.is_mapping():
        raise FlowError.at(file, root.line, "", f"a flow file must be a mapping (id, namespace, tasks, ...), "
                           f"got {describe(root)}")
    return _Parser(doc).parse(path)


class _Parser:
    def __init__(self, doc: Field):
        self.doc = doc
        self.file = doc.file
        self.issues = Issues()
        self.fields = dict(doc.items())

    def parse(self, path: str) -> FlowSpec:
        issues, fields = self.issues, self.fields
        for key in fields:
            if key not in TOP_LEVEL_KEYS:
                issues.add(FlowError.at(self.file, self.doc.key_line(key), key,
                                        f"unknown top-level key; accepted: {', '.join(TOP_LEVEL_KEYS)}"))
        flow_id = self._flow_id()
        values: dict[str, Any] = {}
        with issues.catch():
            values["namespace"] = self._text("namespace")
        with issues.catch():
            values["description"] = self._text("description")
        with issues.catch():
            values["labels"] = self._labels()
        values["inputs"] = tuple(self._inputs())
        input_ids = self._declared_input_ids()
        self._check_body_choice()
        values["tasks"] = tuple(self._tasks(input_ids))
        values["schedules"] = tuple(self._schedules())
        if "partitions" in fields:
            with issues.catch():
                values["partitions"] = parse_partitions(fields["partitions"])
        if "workflow" in fields:
            with issues.catch():
                values["workflow"] = self._workflow_ref()
        if "parameters" in fields:
            with issues.catch():
                values["parameters"] = self._parameters(input_ids)
        if "deps" in fields:
            with issues.catch():
                values["deps"] = parse_deps(fields["deps"], flow_id)
        if "depends_on_past" in fields:
            with issues.catch():
                values["depends_on_past"] = fields["depends_on_past"].boolean()
        issues.raise_if_any()
        assert flow_id is not None
        return FlowSpec(file=self.file, path=path, id=flow_id, id_line=self.fields["id"].line, **values)

    def _flow_id(self) -> str | None:
        if "id" not in self.fields:
            self.issues.add(FlowError.at(self.file, self.doc.line, "id", "missing required key (the flow's id)"))
            return None
        with self.issues.catch():
            flow_id = self.fields["id"].text("the flow's id (a string)")
            if not _FLOW_ID.match(flow_id):
                raise self.fields["id"].error(f"{flow_id!r} is not a valid flow id (letters, digits, '_', '-', "
                                              "'.'; not starting with '-' or '.')")
            return flow_id
        return None

    def _text(self, key: str) -> str | None:
        if key not in self.fields or self.fields[key].is_null():
            return None
        text = self.fields[key].text()
        if key == "namespace" and not text.strip():
            raise self.fields[key].error("must not be empty")
        return text

    def _labels(self) -> dict[str, str]:
        """``labels: {team: data}`` or Kestra's ``labels: [{key: team, value: data}]``."""
        field_ = self.fields.get("labels")
        if field_ is None or field_.is_null():
            return {}
        pairs: list[tuple[Field, str, str]] = []
        if field_.is_mapping():
            pairs = [(value, key, value.scalar_text("a label value (a string)")) for key, value in field_.items()]
        else:
            for item in field_.sequence("a mapping of labels, or a list of {key, value}"):
                keys = item.mapping(("key", "value"), required=("key", "value"), what="a label ({key, value})")
                pairs.append((keys["key"], keys["key"].scalar_text("a label key"),
                              keys["value"].scalar_text("a label value (a string)")))
        labels: dict[str, str] = {}
        for where, key, value in pairs:
            if not key:
                raise where.error("label keys must not be empty")
            if key == NAMESPACE_TAG:
                raise where.error(f"the label {NAMESPACE_TAG!r} is set from `namespace`")
            if key in labels:
                raise where.error(f"duplicate label {key!r}")
            labels[key] = value
        return labels

    def _inputs(self) -> list[InputSpec]:
        field_ = self.fields.get("inputs")
        if field_ is None or field_.is_null():
            return []
        found: list[InputSpec] = []
        with self.issues.catch():
            seen: dict[str, int] = {}
            for item in field_.sequence("a list of inputs ({id, type, defaults?, required?, description?})"):
                with self.issues.catch():  # one bad input does not hide the others
                    spec = parse_input(item)
                    if spec.id in seen:
                        raise item.error(f"duplicate input id {spec.id!r} (first on line {seen[spec.id]})")
                    seen[spec.id] = item.line
                    found.append(spec)
        return found

    def _declared_input_ids(self) -> set[str]:
        """The ids the inputs declare, read leniently (an input with another error still counts), so a template
        that uses it is not reported as well."""
        field_ = self.fields.get("inputs")
        if field_ is None or not isinstance(field_.value, list):
            return set()
        ids: set[str] = set()
        for node in field_.value:
            entry = node.value
            if isinstance(entry, dict) and "id" in entry and isinstance(entry["id"].value, str):
                ids.add(entry["id"].value)
        return ids

    def _check_body_choice(self) -> None:
        has_tasks, has_workflow = "tasks" in self.fields, "workflow" in self.fields
        if has_tasks and has_workflow:
            self.issues.add(self.fields["workflow"].error("give either `tasks` or `workflow`, not both"))
        elif not has_tasks and not has_workflow:
            self.issues.add(FlowError.at(self.file, self.doc.line, "tasks",
                                         "missing required key (or `workflow: package.module:function`)"))
        if "parameters" in self.fields and not has_workflow:
            self.issues.add(self.fields["parameters"].error("`parameters` go with `workflow:`; tasks take `args`"))

    def _tasks(self, input_ids: set[str]) -> list[TaskSpec]:
        field_ = self.fields.get("tasks")
        if field_ is None:
            return []
        found: list[TaskSpec] = []
        with self.issues.catch():
            items = field_.sequence("a list of tasks")
            if not items:
                raise field_.error("a flow needs at least one task")
            seen: dict[str, int] = {}
            for item in items:
                with self.issues.catch():
                    spec = parse_task(item, input_ids)
                    if spec.id in seen:
                        raise item.error(f"duplicate task id {spec.id!r} (first on line {seen[spec.id]})")
                    seen[spec.id] = item.line
                    found.append(spec)
        return found

    def _schedules(self) -> list[Schedule]:
        field_ = self.fields.get("triggers")
        if field_ is None or field_.is_null():
            return []
        found: list[Schedule] = []
        with self.issues.catch():
            seen: dict[str, int] = {}
            for item in field_.sequence("a list of triggers"):
                with self.issues.catch():
                    schedule = parse_trigger(item)
                    trigger_id = item.value.get("id")
                    schedule_id = schedule.id if schedule is not None else (
                        trigger_id.value if trigger_id is not None else "schedule")
                    if schedule_id in seen:
                        raise item.error(f"duplicate trigger id {schedule_id!r} (first on line {seen[schedule_id]}); "
                                         "give each trigger an `id`")
                    seen[schedule_id] = item.line
                    if schedule is not None:
                        found.append(schedule)
        return found

    def _workflow_ref(self) -> str:
        field_ = self.fields["workflow"]
        ref = field_.text("a workflow reference such as mypkg.flows:my_workflow")
        if not _WORKFLOW_REF.match(ref):
            raise field_.error(f"expected 'package.module:workflow', got {ref!r}")
        return ref

    def _parameters(self, input_ids: set[str]) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        for name, value in self.fields["parameters"].items("a mapping of parameter names to values"):
            if not name.isidentifier():
                raise value.error(f"{name!r} is not a valid parameter name")
            parameters[name] = compile_value(value, input_ids)
        return parameters

