"""The two kinds of error a YAML flow can give: a file that is refused when it is loaded (``FlowError``)
and a task that fails while a run executes (``FlowTaskError``).

Load-time errors carry the file, the line and the field path, so a user can jump straight to the fix.
A file is validated completely before anything is built, and every problem found is kept: the
exception's first line is the first problem (``flows/etl.yaml:12: tasks[1].type: unknown task type
'bash'; ...``) and the following lines, if any, are the others, in file order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["FlowError", "FlowIssue", "FlowTaskError", "Issues"]


@dataclass(frozen=True)
class FlowIssue:
    """One problem in one flow file."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class FlowError(ValueError):
    """A flow file (or a folder of them) that cannot be loaded. Nothing from it is registered.

    ``issues`` lists every problem found, in file order; ``file``, ``line``, ``field`` and ``reason``
    describe the first one."""

    def __init__(self, issues: FlowIssue | Sequence[FlowIssue]):
        found = [issues] if isinstance(issues, FlowIssue) else list(issues)
        if not found:
            raise ValueError("FlowError needs at least one issue")
        self.issues: list[FlowIssue] = found
        first = found[0]
        self.file, self.line, self.field, self.reason = first.file, first.line, first.field, first.reason
        super().__init__("\n".join(str(issue) for issue in found))

    @classmethod
    def at(cls, file: str, line: int, field: str, reason: str) -> FlowError:
        return cls(FlowIssue(file, line, field, reason))


class FlowTaskError(RuntimeError):
    """A task of a YAML flow failed while a run executed it: a shell command exited non-zero, a callable could
    not be imported, a template referred to a value the run does not have. The message names the task."""


class Issues:
    """Collects the problems of one file, so one load reports all of them instead of the first only.

    Each independent piece (an input, a task, a trigger) is parsed inside ``catch()``: a ``FlowError`` is
    recorded and parsing moves on to the next piece."""

    def __init__(self) -> None:
        self._found: list[FlowIssue] = []

    @contextlib.contextmanager
    def catch(self) -> Iterator[None]:
        try:
            yield
        except FlowError as exc:
            self._found.extend(exc.issues)

    def add(self, error: FlowError) -> None:
        self._found.extend(error.issues)

    def __bool__(self) -> bool:
        return bool(self._found)

    def raise_if_any(self) -> None:
        if self._found:
            unique = list(dict.fromkeys(self._found))  # an alias reached twice reports once
            raise FlowError(sorted(unique, key=lambda issue: (issue.file, issue.line)))
