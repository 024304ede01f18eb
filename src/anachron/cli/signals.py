"""SIGTERM handled like Ctrl-C without a terminal.

``kill PID`` (a process supervisor, a CI timeout, ``docker stop``) raises ``Terminated`` — a
``KeyboardInterrupt`` — in the main thread, so the code that handles Ctrl-C handles it too: the backfill or
run is left unfinished, the message says how to continue it, the repository is closed (its leases released
at once, so another process can take over without waiting for them to expire), and the exit code is 143.
Being asked to stop is not a question: nothing is prompted. A second SIGTERM while cleaning up ends the
process at once.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

from .common import INTERRUPTED, TERMINATED


class Terminated(KeyboardInterrupt):
    """SIGTERM was received."""


_received = False


def install() -> Callable[[], None]:
    """Handle SIGTERM while the CLI runs; returns a function that puts the previous handler back."""
    global _received
    _received = False
    try:
        previous = signal.signal(signal.SIGTERM, _on_term)
    except (ValueError, OSError):  # not the main thread (e.g. called from a test's worker thread)
        return lambda: None

    def restore() -> None:
        try:
            signal.signal(signal.SIGTERM, previous)
        except (ValueError, OSError, TypeError):
            pass

    return restore


def _on_term(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 - signal handler signature
    global _received
    _received = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def terminated() -> bool:
    """Whether SIGTERM was received (the interruption is not a Ctrl-C: no prompt, exit code 143)."""
    return _received


def interrupted_code() -> int:
    """The exit code of work left unfinished: 143 after SIGTERM, 130 after Ctrl-C."""
    return TERMINATED if _received else INTERRUPTED
