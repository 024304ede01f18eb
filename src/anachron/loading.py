"""Finding a workflow in another process: import its module, then look it up by the name it was
registered under (not by its function's qualname, so lambdas and factory-made workflows work).

A worker process gets ``WorkflowRef(module, source_file, name)``. It imports the module (or, for a
script or a file loaded under a private name, the source file) and searches the module's top-level
names: workflows, the workflows of any ``CodeRepository`` (its ``workflow_registry``), and workflows
inside top-level lists, tuples and dicts. ``unreachable_reason`` is the same search, made when a
repository with a process executor is built, so a workflow a worker could never find is refused then.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from .definitions import Task, Workflow, WorkflowRegistry
from .records import WorkflowRef

_loading = threading.local()


def ref_of(workflow: Workflow) -> WorkflowRef:
    return WorkflowRef(workflow.module, workflow.source_file, workflow.name)


def importing_in_worker() -> bool:
    """True while a worker process imports user code to find workflows (its own start-up included)."""
    import multiprocessing

    return bool(getattr(_loading, "active", False) or getattr(multiprocessing.current_process(), "_inheriting", False))


def find_workflow(module: ModuleType, name: str) -> Workflow | None:
    """The workflow registered as ``name`` among ``module``'s top-level names, or ``None``."""
    for value in list(vars(module).values()):
        for candidate in workflows_in(value):
            if candidate.name == name:
                return candidate
    return None


def workflows_in(value: Any) -> list[Workflow]:
    """The workflows a top-level value holds: itself, a repository's, or those in a list, tuple or dict."""
    if isinstance(value, Workflow):
        return [value]
    registry = getattr(value, "workflow_registry", None) if not isinstance(value, type) else None
    if isinstance(registry, WorkflowRegistry):
        return list(registry.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for v in value if isinstance(v, Workflow)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, Workflow)]
    return []


def load_workflow(ref: WorkflowRef) -> Workflow:
    """Import ``ref``'s module in this (worker) process and find the workflow by name."""
    if ref.module is None and ref.source_file:
        from .flows import is_flow_file, load_flow_by_name

        if is_flow_file(ref.source_file):  # a YAML flow: built again from its file
            return load_flow_by_name(ref.source_file, ref.name)
    _loading.active = True
    try:
        module = _import(ref)
    finally:
        _loading.active = False
    found = find_workflow(module, ref.name)
    if found is None:
        where = ref.source_file or ref.module
        raise LookupError(
            f"workflow {ref.name!r} not found in {where}: a worker process imports that module and looks the "
            "workflow up by name among its top-level names (workflows, CodeRepository objects, lists of "
            "workflows); define or assign it at module level, outside `if __name__ == \"__main__\":`")
    return found


def load_task(module: str | None, source_file: str | None, qualname: str) -> Task:
    """Import a task's module in this (fresh) process and find the task by its qualified name."""
    found: Any = _import(WorkflowRef(module, source_file, qualname))
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, Task):
        raise LookupError(f"task {qualname!r} not found in {source_file or module}: a task runtime that runs it in "
                          "another process imports that module and looks the task up by name; define it at module "
                          "level")
    return found


def _import(ref: WorkflowRef) -> ModuleType:
    module_name, source_file, name = ref
    if module_name and module_name != "__main__":
        try:
            return importlib.import_module(module_name)
        except ImportError:
            if not source_file:
                raise
    if not source_file:
        raise LookupError(f"cannot import the module of workflow {name!r} ({module_name})")
    alias = module_name if module_name and module_name != "__main__" else "__anachron_main__"
    module = import_file(alias, source_file)
    if module is None:
        raise LookupError(f"cannot import {source_file} (the module of workflow {name!r})")
    return module


def import_file(name: str, path: str) -> ModuleType | None:
    """The Python file at ``path`` imported as module ``name`` (the loaded module when it is that file
    already); ``None`` when the file cannot be imported as Python. Whatever the module raises propagates,
    and a module that failed is not left in ``sys.modules``."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def unreachable_reason(workflow: Workflow) -> str | None:
    """Why a worker process could not find ``workflow`` by name, or ``None`` when it can (or when that
    cannot be told yet: its module is still being imported, as when a repository is defined at module level
    right after its workflows)."""
    if "<locals>" not in workflow.qualname:
        return None  # defined by module-level code, which a worker's import runs again
    if workflow.module is None and workflow.source_file:
        return None  # a YAML flow: workers build it again from its file
    module = sys.modules.get(workflow.module or "")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    if find_workflow(module, workflow.name) is workflow:
        return None
    outer = workflow.qualname.split(".<locals>")[0]
    return (f"workflow {workflow.name!r} is defined inside {outer}() and no top-level name of module "
            f"{workflow.module!r} refers to it, so the worker processes of a process executor, which import "
            "the module and look workflows up by name, could not find it. Define it (or assign it) at module "
            "level, or use ac.InProcessExecutor()")
