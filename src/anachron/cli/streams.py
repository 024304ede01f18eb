"""Where results go: stdout carries the CLI's results and nothing else.

A command that executes runs, or prints ``--output json``, calls ``guard()`` first: file descriptor 1 is
duplicated for the results, and fd 1 itself is pointed at stderr. Whatever anyone else writes to fd 1
afterwards — a run's ``print`` that escaped capture, a child process it started, a C extension, the target
module printing while it is imported — lands on stderr, so ``--output json`` is exactly one JSON value.

Results are written with ``results()`` (a text stream over the duplicate, or ``sys.stdout`` when not
guarded). A reader that goes away (``| head``) is handled here only: ``silence()`` points the results at
``/dev/null`` so nothing complains when the process exits; runs never write to that pipe.
"""

from __future__ import annotations

import os
import sys
from typing import IO

_results: IO[str] | None = None


def guard() -> None:
    """Keep fd 1 for results only (idempotent)."""
    global _results
    if _results is not None or not _is_fd1(sys.stdout):  # stdout replaced (embedded, captured): leave it be
        return
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable stdout or stderr: nothing to guard
        return
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    _results = open(fd, "w", encoding=encoding, errors="replace", closefd=True)


def _is_fd1(stream: IO[str]) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


def results() -> IO[str]:
    """The stream for results (JSON, tables, ids)."""
    return _results if _results is not None else sys.stdout


def echo(text: str) -> None:
    """One line of results."""
    out = results()
    out.write(text + "\n")
    out.flush()


def silence() -> None:
    """The reader of the results went away: drop what is left instead of failing on every later write."""
    try:
        silence_fd(results().fileno())
    except (OSError, ValueError):
        pass


def restore() -> None:
    """Undo ``guard()`` when the command ends (fd 1 back to the real stdout); results flushed."""
    global _results
    if _results is None:
        return
    stream, _results = _results, None
    try:
        sys.stdout.flush()  # stray output buffered while fd 1 pointed at stderr goes there
    except (OSError, ValueError):
        pass
    try:
        stream.flush()
    except BrokenPipeError:
        silence_fd(stream.fileno())
    except (OSError, ValueError):
        pass
    try:
        os.dup2(stream.fileno(), 1)
    except (OSError, ValueError):
        pass
    try:
        stream.close()
    except OSError:
        pass


def silence_fd(fd: int) -> None:
    """Point ``fd`` at /dev/null."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)
