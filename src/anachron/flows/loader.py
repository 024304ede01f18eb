"""Flow files and folders → workflows; and finding a flow's workflow again in a worker process.

Loading is all-or-nothing: every file is read and checked completely before any workflow is built, so a
file with an error — or a folder where two files define the same flow id — registers nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..definitions import Workflow
from .errors import FlowError, Issues
from .spec import FlowSpec, parse_flow

__all__ = ["FLOW_SUFFIXES", "is_flow_file", "read_flow", "load_flow", "load_flows", "load_flow_by_name"]

FLOW_SUFFIXES = (".yaml", ".yml")
log = logging.getLogger("anachron.flows")

_cache: dict[str, tuple[tuple[int, int], dict[str, Workflow]]] = {}
_cache_lock = threading.Lock()


def is_flow_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a YAML flow file (by its suffix: ``.yaml`` or ``.yml``, any case)."""
    return Path(path).suffix.lower() in FLOW_SUFFIXES


def read_flow(path: str | os.PathLike[str]) -> FlowSpec:
    """The checked ``FlowSpec`` of one file; ``FlowError`` (file, line, field, reason) when it has errors."""
    file = os.fspath(path)
    absolute = os.path.abspath(file)
    try:
        text = Path(absolute).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowError.at(file, 0, "", "no such file") from None
    except UnicodeDecodeError as exc:
        raise FlowError.at(file, 0, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise FlowError.at(file, 0, "", f"cannot read the file: {exc.strerror or exc}") from None
    return parse_flow(text, file, absolute)


def load_flow(path: str | os.PathLike[str]) -> Workflow:
    """The workflow of one flow file."""
    from .build import build_workflow

    return build_workflow(_warned(read_flow(path)))


def _warned(spec: FlowSpec) -> FlowSpec:
    """``spec``, once each shell command that puts a user-controlled value in unquoted is logged as a warning."""
    from .injection import unquoted_values

    for found in unquoted_values(spec):
        log.warning("%s", found)
    return spec


def load_flows(path: str | os.PathLike[str], *, warn: bool = True) -> list[Workflow]:
    """The workflows of a flow file, or of every ``*.yaml`` / ``*.yml`` file directly in a folder (sorted by
    name). Every file is checked before anything is built; duplicate flow ids across files are refused,
    naming both files."""
    from .build import build_workflow

    root = Path(path)
    if not root.is_dir():
        return [load_flow(path)]
    files = sorted(p for p in root.iterdir() if p.is_file() and is_flow_file(p))
    issues = Issues()
    specs: list[FlowSpec] = []
    for file in files:
        with issues.catch():
            specs.append(read_flow(file))
    first: dict[str, FlowSpec] = {}
    for spec in specs:
        if spec.id in first:
            issues.add(FlowError.at(spec.file, spec.id_line, "id", f"duplicate flow id {spec.id!r}: "
                                    f"{first[spec.id].file} defines it too"))
        else:
            first[spec.id] = spec
    issues.raise_if_any()
    return [build_workflow(_warned(spec) if warn else spec) for spec in specs]


def load_flow_by_name(source_file: str, name: str) -> Workflow:
    """The workflow ``name`` defined in the flow file ``source_file`` — how a worker process finds a YAML flow's
    workflow from its ``WorkflowRef``. Cached per file, reloaded when the file's modification time or size
    changes. ``LookupError`` when the file does not define it; ``FlowError`` when the file has errors."""
    path = os.path.abspath(source_file)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise LookupError(f"workflow {name!r}: cannot read its flow file {path}: {exc.strerror or exc}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(path)
    if cached is None or cached[0] != stamp:
        # a worker loading the flow to run it: the server or daemon that loaded it first has warned
        workflows = {workflow.name: workflow for workflow in load_flows(path, warn=False)}
        cached = (stamp, workflows)
        with _cache_lock:
            _cache[path] = cached
    found = cached[1].get(name)
    if found is None:
        defined = ", ".join(sorted(cached[1])) or "none"
        raise LookupError(f"workflow {name!r} not found in the flow file {path} (it defines: {defined})")
    return found
