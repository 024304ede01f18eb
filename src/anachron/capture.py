"""Bounded per-run logs and capture of a run's stdout and stderr.

A run's log lines are ``(unix_time, level, message)`` tuples. This module keeps them bounded and
catches what a run prints, so nothing a workflow writes reaches the caller's own output (the CLI's
``--output json`` prints exactly one JSON value; ``| head`` cannot make a run fail with
``BrokenPipeError``) and a run that prints 600,000 lines costs at most its cap in memory and storage.

Pieces, from the inside out:

``RunLog``
    The bounded collector of one run's lines: the first lines up to half the cap, then a rolling tail
    of the most recent lines up to the other half, and one marker line between them saying what was
    dropped. Thread-safe; creating and reading an empty one costs well under a microsecond.

``RunLogHandler`` / ``make_run_logger(run_id, runlog)`` / ``RunLog.logger(run_id)``
    ``logging`` into a RunLog (what ``RunContext.log`` writes to). ``RunLog.logger`` creates the
    Logger on first use only, so runs that never log never pay for one.

``install_stream_router()`` / ``bind_output(runlog)`` / ``unbind_output(token)`` / ``capture_output``
    Thread-level capture for runs executing in threads of one process (``InProcessExecutor``, dev
    runs): ``sys.stdout``/``sys.stderr`` become proxies that send writes made while a RunLog is bound
    in the current ``contextvars`` context to that RunLog (levels ``"STDOUT"``/``"STDERR"``) and pass
    every other write through unchanged.

``FdCapture``
    Process-level capture for worker processes that run one job at a time (``LocalExecutor``): file
    descriptors 1 and 2 point to unlinked temporary files, so the output of C extensions and child
    processes (``subprocess.run(["echo", "x"])``, ``os.system``) is captured as well as ``print``.

What is captured where:

- Runs in threads of one process (router): everything written through ``sys.stdout``/``sys.stderr`` as
  they are at write time — ``print``, ``sys.stdout.write``/``.buffer.write``, ``logging.StreamHandler``s
  created after the router was installed (they hold the router), ``warnings`` — from the run's thread
  and from threads started with ``contextvars.copy_context()`` (as ``call_task``'s timeout helper does).
  NOT captured (goes to the process's real output): file descriptor writes (``os.write(1, ...)``, C
  extensions, ``faulthandler``), child processes (``subprocess.run(["echo"])``, ``os.system``; they
  inherit fd 1), ``sys.__stdout__``, stream objects saved before the router was installed (e.g. a
  ``logging.basicConfig`` handler made earlier), and threads started without the run's context
  (``threading.Thread``, ``concurrent.futures`` pools): their writes are not attributable to a run.
  ``contextlib.redirect_stdout`` inside a run is process-wide, as always: other threads' prints follow it.
- Runs in a worker process that runs one job at a time (``FdCapture``): everything written to fds 1
  and 2 by the process and its children, Python-level or not. Order between stdout and stderr is not
  kept, and the lines get the collection time (see ``FdCapture``).

Only the standard library is used, and nothing heavy is imported at module level (``logging``,
``tempfile``, ``fcntl`` and ``ctypes`` are imported when first needed).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from contextvars import ContextVar, Token
from time import time as _now
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TextIO

if TYPE_CHECKING:
    import logging

__all__ = [
    "DEFAULT_MAX_BYTES", "LINE_OVERHEAD", "RunLog", "RunLogHandler", "make_run_logger", "parse_size",  # noqa: F822
    "StreamRouter", "install_stream_router", "uninstall_stream_router", "stream_router_installed",
    "bind_output", "unbind_output", "capture_output", "current_output", "FdCapture",
]

#: The default cap of one run's log (bytes of stored messages, see ``LINE_OVERHEAD``).
DEFAULT_MAX_BYTES = 1_000_000
#: What each stored line costs toward the cap on top of its message's UTF-8 size, so that a flood of
#: empty lines (``print()`` in a loop) is bounded too: every line is a row in storage.
LINE_OVERHEAD = 32
#: The smallest cap accepted (a cut line keeps room for its marker suffix).
MIN_MAX_BYTES = 256

_SUFFIX_RESERVE = 80  # bytes kept free at the end of a cut line for its " … [N more bytes …]" suffix
_STREAM_LEVELS = ("STDOUT", "STDERR")


def _utf8_size(message: str) -> int:
    if message.isascii():  # O(1) in CPython: the size is the length
        return len(message)
    return len(message.encode("utf-8", "surrogatepass"))


def _cut(message: str, size: int, limit: int) -> tuple[str, int]:
    """``message`` (``size`` bytes in UTF-8) cut to at most ``limit`` bytes, with a marker suffix."""
    keep = max(0, limit - _SUFFIX_RESERVE)
    head = message.encode("utf-8", "surrogatepass")[:keep].decode("utf-8", "ignore")  # no half characters
    kept = _utf8_size(head)
    cut = f"{head} … [{size - kept:,} more bytes of this line truncated]"
    return cut, _utf8_size(cut)


def _format_size(n: float) -> str:
    if n < 1000:
        return f"{int(n)} bytes" if n != 1 else "1 byte"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000.0
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_size(value: int | str) -> int:
    """A cap from configuration: an int, or text like ``"1000000"``, ``"500kB"``, ``"10MB"``, ``"1MiB"``.

    ``ValueError`` naming the value when it is malformed or below ``MIN_MAX_BYTES``.
    """
    if isinstance(value, bool):
        raise ValueError(f"run log limit: expected a size in bytes, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip().replace("_", "").replace(" ", "")
        units = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
                 "kib": 2**10, "mib": 2**20, "gib": 2**30}
        i = len(text)
        while i and not text[i - 1].isdigit() and text[i - 1] != ".":
            i -= 1
        digits, unit = text[:i], text[i:].lower()
        try:
            number = int(float(digits) * units[unit])
        except (KeyError, ValueError, OverflowError):
            raise ValueError(f"run log limit: cannot read {value!r} as a size (e.g. 1000000, 500kB, 10MB)") from None
    if number < MIN_MAX_BYTES:
        raise ValueError(f"run log limit: must be at least {MIN_MAX_BYTES} bytes, got {value!r}")
    return number


# --------------------------------------------------------------------------------------------------
# RunLog


class RunLog:
    """The bounded log of one run.

    ``RunLog(max_bytes)``: the cap is on the stored messages' UTF-8 size plus ``LINE_OVERHEAD`` bytes per
    line. The first lines are kept up to half the cap (the head, closed for good at the first line that
    does not fit); later lines go to a rolling tail of the most recent lines up to the other half, the
    oldest dropping out as new ones come. ``lines()`` gives head + one ``"WARNING"`` marker line (when
    anything was dropped) + tail. A single line bigger than half the cap (less ``LINE_OVERHEAD``) is cut
    to fit, with a suffix saying how much of it was cut. The stored size never exceeds the cap; the
    marker line comes on top of it.

    Thread-safe: every change and every read takes the log's lock. Cheap when unused: the accounting
    state, the tail deque, the stream buffers and the logger are only created when first needed, and
    ``lines()`` of a log that never got a line returns ``[]`` without locking.

    ``print`` output (``"STDOUT"``/``"STDERR"``) comes in through ``write_stream``, which keeps a partial
    line per stream until its newline; ``flush_streams()`` stores those remainders (``unbind_output``
    calls it). Unbind, or call it, before the final ``lines()``: ``lines()`` does not include them.
    """

    __slots__ = ("max_bytes", "_lock", "_head", "_tail", "_dropped_t", "_pending", "_logger",
                 "_head_bytes", "_head_open", "_tail_bytes", "_dropped_lines", "_dropped_bytes", "_dropped_approx")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes.__class__ is not int and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int)):
            raise TypeError(f"RunLog.max_bytes: expected an int, got {max_bytes!r}")
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"RunLog.max_bytes: must be at least {MIN_MAX_BYTES}, got {max_bytes}")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # (t, level, message) lines; None until the first line (see _start)
        self._head: list[tuple[float, str, str]] | None = None
        # (t, level, message, cost) lines, created at the first overflow
        self._tail: deque[tuple[float, str, str, int]] | None = None
        self._dropped_t: float | None = None  # time of the first dropped line: the marker's time
        # [stdout chunks, stderr chunks, stdout length, stderr length]: list[str] | None, twice, then int, twice
        self._pending: list[Any] | None = None
        self._logger: logging.Logger | None = None

    def _start(self) -> list[tuple[float, str, str]]:
        # with self._lock held: the accounting state, set up at the first line (``_head`` last: readers
        # that do not lock look at it first)
        self._head_bytes = 0
        self._head_open = True
        self._tail_bytes = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0  # message bytes (without LINE_OVERHEAD) of the dropped lines
        self._dropped_approx = False  # the dropped line count includes an estimate (add_gap)
        head: list[tuple[float, str, str]] = []
        self._head = head
        return head

    @property
    def line_limit(self) -> int:
        """The most message bytes one line keeps; a longer one is cut."""
        return (self.max_bytes >> 1) - LINE_OVERHEAD

    # -- adding -------------------------------------------------------------------------------------

    def add(self, level: str, message: str, t: float | None = None) -> None:
        """Store one line (``t`` defaults to now). A non-str message is converted with ``str``."""
        if t is None:
            t = _now()
        if message.__class__ is not str:
            message = _to_text(message)
        size = len(message) if message.isascii() else _utf8_size(message)
        limit = (self.max_bytes >> 1) - LINE_OVERHEAD
        if size > limit:
            message, size = _cut(message, size, limit)
        lock = self._lock
        lock.acquire()  # (not ``with``: half the cost, on the path every log line takes)
        try:
            self._store(t, level, message, size + LINE_OVERHEAD)
        finally:
            lock.release()

    def add_lines(self, level: str, messages: Iterable[str], t: float | None = None) -> None:
        """Store many lines with the same level and time, under one lock acquisition."""
        if t is None:
            t = _now()
        limit = (self.max_bytes >> 1) - LINE_OVERHEAD
        with self._lock:
            store = self._store
            for message in messages:
                if message.__class__ is not str:
                    message = _to_text(message)
                size = len(message) if message.isascii() else _utf8_size(message)
                if size > limit:
                    message, size = _cut(message, size, limit)
                store(t, level, message, size + LINE_OVERHEAD)

    def add_gap(self, nbytes: int, nlines: int | None = None, t: float | None = None) -> None:
        """Record output that was never read (``FdCapture`` skips the middle of a huge output).

        ``nlines`` is an estimate (the marker then says ``~N lines``). What the tail holds so far is
        counted as dropped too, so the marker stays the one point where output is missing: lines added
        next are stored after it.
        """
        if t is None:
            t = _now()
        with self._lock:
            if self._head is None:
                self._start()
            self._head_open = False
            tail = self._tail
            if tail:
                if self._dropped_t is None:
                    self._dropped_t = tail[0][0]
                self._dropped_lines += len(tail)
                self._dropped_bytes += sum(item[3] for item in tail) - LINE_OVERHEAD * len(tail)
                tail.clear()
                self._tail_bytes = 0
            if self._dropped_t is None:
                self._dropped_t = t
            self._dropped_bytes += max(0, nbytes)
            self._dropped_lines += max(0, nlines or 0)
            self._dropped_approx = True

    def _store(self, t: float, level: str, message: str, cost: int) -> None:
        # with self._lock held; cost = message bytes + LINE_OVERHEAD <= half the cap (message cut to fit)
        head = self._head
        if head is None:
            head = self._start()
        if self._head_open:
            if self._head_bytes + cost <= self.max_bytes >> 1:
                head.append((t, level, message))
                self._head_bytes += cost
                return
            self._head_open = False
        tail = self._tail
        if tail is None:
            tail = self._tail = deque()
        tail.append((t, level, message, cost))
        self._tail_bytes += cost
        budget = self.max_bytes - (self.max_bytes >> 1)
        if self._tail_bytes > budget:  # drop the oldest; the line just added always fits on its own
            popleft = tail.popleft
            dropped_lines = dropped_cost = 0
            while self._tail_bytes > budget:
                item = popleft()
                if self._dropped_t is None:
                    self._dropped_t = item[0]
                self._tail_bytes -= item[3]
                dropped_cost += item[3]
                dropped_lines += 1
            self._dropped_lines += dropped_lines
            self._dropped_bytes += dropped_cost - LINE_OVERHEAD * dropped_lines

    # -- print output -------------------------------------------------------------------------------

    def write_stream(self, stream: int, text: str) -> None:
        """Text written to stdout (``stream`` 0) or stderr (1): complete lines are stored now, the rest
        waits for its newline (or ``flush_streams``). ``\\r\\n`` ends a line like ``\\n``; within a line,
        only the text after the last ``\\r`` is kept (a progress bar keeps its final state). A partial line
        longer than the line limit is stored as it stands, so memory stays bounded."""
        if not text:
            return
        t = _now()
        lock = self._lock
        lock.acquire()
        try:
            pending = self._pending
            if pending is None:
                pending = self._pending = [None, None, 0, 0]
            buf = pending[stream]
            newline = text.find("\n")
            if newline < 0:
                if buf is None:
                    pending[stream] = [text]
                    length = len(text)
                else:
                    buf.append(text)
                    length = pending[stream + 2] + len(text)
                if length > (self.max_bytes >> 1) - LINE_OVERHEAD:  # no end in sight: store what we have
                    self._store_text(t, _STREAM_LEVELS[stream], "".join(pending[stream]))
                    pending[stream], length = None, 0
                pending[stream + 2] = length
                return
            level = _STREAM_LEVELS[stream]
            if newline == len(text) - 1:  # the usual case: the text ends one line (print's "\n" does)
                if buf is None:
                    self._store_text(t, level, text[:-1])
                else:
                    buf.append(text[:-1])
                    pending[stream], pending[stream + 2] = None, 0
                    self._store_text(t, level, "".join(buf))
                return
            if buf is not None:
                buf.append(text)
                text = "".join(buf)
                pending[stream], pending[stream + 2] = None, 0
            parts = text.split("\n")
            rest = parts.pop()
            for part in parts:
                self._store_text(t, level, part)
            if rest:
                if len(rest) > (self.max_bytes >> 1) - LINE_OVERHEAD:
                    self._store_text(t, level, rest)
                else:
                    pending[stream], pending[stream + 2] = [rest], len(rest)
        finally:
            lock.release()

    def flush_streams(self) -> None:
        """Store the partial lines waiting for a newline (at the end of a run)."""
        if self._pending is None:
            return
        t = _now()
        with self._lock:
            pending = self._pending
            if pending is None:
                return
            self._pending = None
            for stream in (0, 1):
                if pending[stream] is not None:
                    line = "".join(pending[stream])
                    if line.strip("\r"):
                        self._store_text(t, _STREAM_LEVELS[stream], line)

    def _store_text(self, t: float, level: str, message: str) -> None:
        # with self._lock held: one line of stream output
        if "\r" in message:
            message = _clean(message)
        size = len(message) if message.isascii() else _utf8_size(message)
        limit = (self.max_bytes >> 1) - LINE_OVERHEAD
        if size > limit:
            message, size = _cut(message, size, limit)
        self._store(t, level, message, size + LINE_OVERHEAD)

    # -- reading ------------------------------------------------------------------------------------

    def lines(self) -> list[tuple[float, str, str]]:
        """The stored lines, oldest first: head, one marker line if anything was dropped, tail. A new list."""
        if self._head is None:  # nothing stored yet (a line being added right now is not in this snapshot)
            return []
        with self._lock:
            out = self._head.copy()
            if self._dropped_t is not None:
                out.append((self._dropped_t, "WARNING", self._marker()))
            if self._tail:
                out.extend([item[:3] for item in self._tail])
            return out

    def _marker(self) -> str:
        n = self._dropped_lines
        count = f"{'~' if self._dropped_approx else ''}{n:,} line{'' if n == 1 else 's'}"
        return (f"… {count} ({_format_size(self._dropped_bytes)}) of output truncated here "
                f"(run log limit {_format_size(self.max_bytes)}) …")

    @property
    def dropped_lines(self) -> int:
        """Lines dropped from the middle (an estimate after ``add_gap``)."""
        return self._dropped_lines if self._head is not None else 0

    @property
    def dropped_bytes(self) -> int:
        """Message bytes dropped from the middle."""
        return self._dropped_bytes if self._head is not None else 0

    @property
    def truncated(self) -> bool:
        """Whether anything was dropped (the marker line is there)."""
        return self._dropped_t is not None

    @property
    def stored_bytes(self) -> int:
        """What the stored lines count toward the cap (messages + ``LINE_OVERHEAD`` each); ``<= max_bytes``."""
        return self._head_bytes + self._tail_bytes if self._head is not None else 0

    # -- logging ------------------------------------------------------------------------------------

    def logger(self, run_id: str) -> logging.Logger:
        """The run's ``logging.Logger`` writing into this log, created on the first call (then cached).

        Lets ``RunContext.log`` be a property, so a run that never logs never builds a Logger (nor
        imports ``logging``). Two threads racing on the first call may build two loggers; both write
        here, so that is harmless.
        """
        logger = self._logger
        if logger is None:
            logger = self._logger = make_run_logger(run_id, self)
        return logger

    def __repr__(self) -> str:
        stored = 0 if self._head is None else len(self._head) + len(self._tail or ())
        return f"<RunLog {stored} lines, {self.stored_bytes}/{self.max_bytes} bytes, {self.dropped_lines} dropped>"


def _to_text(message: object) -> str:
    try:
        return str(message)
    except Exception as exc:  # noqa: BLE001 - a log line must never break the run
        return f"<unprintable {type(message).__name__}: {type(exc).__name__}>"


def _clean(line: str) -> str:
    """One line of stream output: no line ending, and only what a terminal would show after a ``\\r``."""
    if "\r" in line:
        line = line.rstrip("\r")
        cr = line.rfind("\r")
        if cr >= 0:
            line = line[cr + 1:]
    return line


# --------------------------------------------------------------------------------------------------
# logging


_handler_class: Callable[[RunLog], logging.Handler] | None = None


def _make_handler_class() -> Callable[[RunLog], logging.Handler]:
    """The ``RunLogHandler`` class (``RunLogHandler(runlog, level=logging.DEBUG)``), defined on first use."""
    global _handler_class
    if _handler_class is not None:
        return _handler_class
    import logging

    class RunLogHandler(logging.Handler):
        """A ``logging.Handler`` storing records in a RunLog: ``record.getMessage()`` plus the exception's
        traceback and stack info when present. A broken log call (bad ``%`` arguments, a ``__str__``
        that raises) stores what it can and never raises into the run."""

        def __init__(self, runlog: RunLog, level: int = logging.DEBUG) -> None:
            super().__init__(level)
            self.runlog = runlog

        def emit(self, record: logging.LogRecord) -> None:
            try:
                message = record.getMessage()
            except Exception as exc:  # noqa: BLE001 - a broken log call must not break the run
                message = f"{_to_text(record.msg)} (log call failed: {type(exc).__name__}: {_to_text(exc)})"
            try:
                if record.exc_info:
                    message += "\n" + logging.Formatter().formatException(record.exc_info)
                elif record.exc_text:
                    message += "\n" + record.exc_text
                if record.stack_info:
                    message += "\n" + record.stack_info
            except Exception:  # noqa: BLE001
                pass
            self.runlog.add(record.levelname, message, record.created)

    _handler_class = RunLogHandler
    return RunLogHandler


# PEP 562: RunLogHandler without importing logging at module import
def __getattr__(name: str) -> Callable[[RunLog], logging.Handler]:
    if name == "RunLogHandler":
        return _make_handler_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_run_logger(run_id: str, runlog: RunLog) -> logging.Logger:
    """A ``logging.Logger`` private to one run (not registered with ``logging.getLogger``, does not
    propagate) whose records go to ``runlog``. Prefer ``runlog.logger(run_id)``, which creates it
    only when first used."""
    import logging

    logger = logging.Logger(f"anachron.run.{run_id}", logging.DEBUG)
    logger.propagate = False
    logger.addHandler(_make_handler_class()(runlog))
    return logger


# --------------------------------------------------------------------------------------------------
# Thread-level capture: sys.stdout / sys.stderr proxies routed by a context variable

_output: ContextVar[RunLog | None] = ContextVar("anachron_run_output", default=None)
_install_lock = threading.Lock()


class StreamRouter:
    """What ``sys.stdout`` / ``sys.stderr`` are while the router is installed.

    While a RunLog is bound in the current context (``bind_output``), ``write``/``writelines`` (and
    ``buffer.write``) go to it and return at once: they cannot raise ``BrokenPipeError`` or block on a
    full pipe; ``flush`` and ``close`` do nothing and ``isatty()`` is ``False`` (the output is a log, so
    libraries print no colours or terminal progress bars). Outside a run, every call goes to the stream
    that was ``sys.stdout``/``sys.stderr`` when the router was installed, unchanged (its errors
    included). Everything else — ``fileno``, ``encoding``, ``errors``, ``name``, ``mode``,
    ``reconfigure`` ... — is that stream's.
    """

    __slots__ = ("_target", "_stream")

    def __init__(self, target: TextIO | None, stream: int):
        self._target = target  # None when sys.stdout was None (pythonw): unbound writes are discarded
        self._stream = stream

    def write(self, s: str) -> int:
        runlog = _output.get()
        if runlog is None:
            target = self._target
            return target.write(s) if target is not None else len(s)
        if s.__class__ is not str and not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        runlog.write_stream(self._stream, s)
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:
        runlog = _output.get()
        if runlog is None:
            if self._target is not None:
                self._target.writelines(lines)
            return
        for s in lines:
            if not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
            runlog.write_stream(self._stream, s)

    def flush(self) -> None:
        if _output.get() is None and self._target is not None:
            self._target.flush()

    def close(self) -> None:
        if _output.get() is None and self._target is not None:
            self._target.close()

    def isatty(self) -> bool:
        if _output.get() is not None or self._target is None:
            return False
        return self._target.isatty()

    def fileno(self) -> int:
        if self._target is None:
            import io

            raise io.UnsupportedOperation("fileno")
        return self._target.fileno()

    def writable(self) -> bool:
        return True if _output.get() is not None else self._target is not None and self._target.writable()

    @property
    def buffer(self) -> BinaryIO | _BinaryRouter:
        runlog = _output.get()
        if runlog is None:
            if self._target is None:
                raise AttributeError("buffer")
            return self._target.buffer
        return _BinaryRouter(runlog, self._stream, getattr(self._target, "buffer", None))

    @property
    def original(self) -> object:
        """The stream writes go to outside runs."""
        return self._target

    def __getattr__(self, name: str) -> object:
        target = object.__getattribute__(self, "_target")
        if target is None:
            raise AttributeError(name)
        return getattr(target, name)

    def __repr__(self) -> str:
        return f"<anachron.capture.StreamRouter {_STREAM_LEVELS[self._stream].lower()} -> {self._target!r}>"


class _BinaryRouter:
    """``sys.stdout.buffer`` inside a run: bytes are decoded (UTF-8, bad bytes replaced) into the RunLog."""

    __slots__ = ("_runlog", "_stream", "_target")

    def __init__(self, runlog: RunLog, stream: int, target: object):
        self._runlog, self._stream, self._target = runlog, stream, target

    def write(self, b: bytes | bytearray | memoryview) -> int:
        data = bytes(b)
        self._runlog.write_stream(self._stream, data.decode("utf-8", "replace"))
        return len(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for b in lines:
            self.write(b)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> object:
        if self._target is None:
            raise AttributeError(name)
        return getattr(self._target, name)


def install_stream_router() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` ``StreamRouter`` proxies of the streams they are now.

    Idempotent and thread-safe; when one of them is already a router it is left alone. Outside runs a
    router passes every call through to the stream it wraps — the one current at install time, not
    ``sys.__stdout__``.

    If something replaces ``sys.stdout`` after this (pytest sets its capture stream again at every test
    phase — setup, call, teardown — and ``capsys``/``capfd``/``contextlib.redirect_stdout`` replace it
    too), the router is simply out of the way: writes go to the replacement. Calling this again wraps
    the replacement in a new router; ``bind_output`` does that at the start of every run, so runs are
    always captured. When the replacer later restores what it saved (the first router), that router
    still works: it passes writes through outside runs and captures them inside.
    """
    if sys.stdout.__class__ is StreamRouter and sys.stderr.__class__ is StreamRouter:
        return
    with _install_lock:
        for stream, name in enumerate(("stdout", "stderr")):
            current = getattr(sys, name)
            if current.__class__ is not StreamRouter:
                setattr(sys, name, StreamRouter(current, stream))


def uninstall_stream_router() -> None:
    """Put back the streams the routers wrap, where ``sys.stdout``/``sys.stderr`` are still routers.

    A stream that something else has replaced since is left alone (whoever replaced it will restore
    what it saved — possibly a router, which then only passes writes through outside runs).
    """
    with _install_lock:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if current.__class__ is StreamRouter:
                while current.__class__ is StreamRouter:
                    current = current._target
                setattr(sys, name, current)


def stream_router_installed() -> bool:
    return sys.stdout.__class__ is StreamRouter and sys.stderr.__class__ is StreamRouter


def bind_output(runlog: RunLog, install: bool = True) -> Token[RunLog | None]:
    """Send this context's ``sys.stdout``/``sys.stderr`` writes to ``runlog``; returns the token for
    ``unbind_output``. Threads started with ``contextvars.copy_context().run`` inherit the binding.
    ``install`` makes sure the router is in place first (a cheap check when it is)."""
    if install:
        install_stream_router()
    return _output.set(runlog)


def unbind_output(token: Token[RunLog | None]) -> None:
    """Undo ``bind_output`` and store the bound RunLog's partial lines (text not ended by a newline)."""
    runlog = _output.get()
    try:
        _output.reset(token)
    finally:
        if runlog is not None:
            runlog.flush_streams()


def current_output() -> RunLog | None:
    """The RunLog bound in this context, if any."""
    return _output.get()


class capture_output:
    """``with capture_output(runlog): ...`` — ``bind_output`` / ``unbind_output`` as a context manager."""

    __slots__ = ("runlog", "_token")

    def __init__(self, runlog: RunLog):
        self.runlog = runlog

    def __enter__(self) -> RunLog:
        self._token = bind_output(self.runlog)
        return self.runlog

    def __exit__(self, *exc_info: object) -> None:
        unbind_output(self._token)


# --------------------------------------------------------------------------------------------------
# Process-level capture: file descriptors 1 and 2 into unlinked temporary files


class FdCapture:
    """Capture everything a worker process writes to file descriptors 1 and 2, one run at a time.

    ``start()`` (once, in the worker) saves the current fds 1 and 2 (``saved_stdout_fd`` /
    ``saved_stderr_fd``) and points them with ``os.dup2`` at two temporary files, opened with
    ``O_APPEND`` and unlinked at once (nothing is left on disk, even if the worker is killed).
    ``begin()`` before each run discards anything written since the last collection; ``collect(runlog)``
    after it flushes ``sys.stdout``/``sys.stderr`` (and C stdio, so ``printf`` from extensions is in), reads
    what the run wrote to each file, stores it in the RunLog as ``"STDOUT"``/``"STDERR"`` lines with the
    collection time, and empties the files. ``stop()`` restores fds 1 and 2.

    Python ``print`` lands in fd 1 as well (after the flush), so this alone captures everything; with
    the stream router also installed and bound, Python-level writes go to the RunLog directly, with
    their own times, and FdCapture catches the rest (C extensions, child processes, ``os.write``).

    Limits:
    - Order between stdout and stderr is not kept: all of a run's stdout lines are stored, then its
      stderr lines (so the end of stderr, where a traceback is, survives truncation best); they all get
      the collection time. Relative order to ``ctx.log`` lines is not kept either (they come first).
    - Reading is bounded: at most ``runlog.max_bytes`` bytes from the start and as much from the end of
      each file; the middle is never read (the marker gives its size and an estimated line count). Disk
      use is bounded only by what the run writes, and is given back at ``collect`` / ``begin``.
    - A child process that outlives its run keeps writing into the files: its later output goes to the
      next run's capture (or is discarded by ``begin``). Output written between the reads and the
      truncation in ``collect`` (only possible from such a child) is lost.
    - POSIX only (``fcntl``, ``os.pread``). Not for a process whose fds 1 and 2 someone else needs (never
      the CLI or a process running several runs at once): it takes over the fds for the whole process.
    """

    def __init__(self, *, flush_c_stdio: bool = True):
        self.flush_c_stdio = flush_c_stdio
        self.saved_stdout_fd: int | None = None
        self.saved_stderr_fd: int | None = None
        self._files: list[int] = []  # the temporary files' fds, stdout's then stderr's
        self._started = False
        self._fflush: Callable[[Any], object] | Literal[False] | None = None  # False: no C library
        self._error: str | None = None  # from begin(), reported by the next collect()

    def start(self) -> FdCapture:
        if self._started:
            raise RuntimeError("FdCapture.start: already started")
        _flush_python_streams()
        self._flush_c()
        files: list[int] = []
        saved: list[int | None] = []
        try:
            files.append(_unlinked_append_file("anachron-stdout-"))
            files.append(_unlinked_append_file("anachron-stderr-"))
            for fd in (1, 2):
                try:
                    saved.append(os.dup(fd))  # non-inheritable: child processes never get the real stdout
                except OSError:
                    saved.append(None)  # the fd was closed
            os.dup2(files[0], 1)
            os.dup2(files[1], 2)
        except BaseException:
            for fd, old in zip((1, 2), saved):
                if old is not None:
                    os.dup2(old, fd)
                    os.close(old)
            for fd in files:
                os.close(fd)
            raise
        self._files = files
        self.saved_stdout_fd, self.saved_stderr_fd = saved
        self._started = True
        return self

    def stop(self) -> None:
        """Point fds 1 and 2 back where they were; uncollected output is discarded."""
        if not self._started:
            return
        self._started = False
        _flush_python_streams()
        self._flush_c()
        for fd, saved in ((1, self.saved_stdout_fd), (2, self.saved_stderr_fd)):
            if saved is None:
                os.close(fd)
            else:
                os.dup2(saved, fd)
                os.close(saved)
        self.saved_stdout_fd = self.saved_stderr_fd = None
        for fd in self._files:
            os.close(fd)
        self._files = []

    def __enter__(self) -> FdCapture:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def active(self) -> bool:
        return self._started

    def begin(self) -> None:
        """Before a run: forget what was written since the last collection, and point fds 1 and 2 at
        the files again (a previous run may have closed or redirected them). Never raises once started:
        an OS error is kept and reported as a line by the next ``collect``."""
        self._require_started()
        _flush_python_streams()
        self._flush_c()
        try:
            for target, fd in zip((1, 2), self._files):
                if os.fstat(fd).st_size:
                    os.ftruncate(fd, 0)
                os.dup2(fd, target)
        except OSError as exc:
            self._error = f"output capture: could not reset the capture files: {exc}"

    def collect(self, runlog: RunLog, t: float | None = None) -> tuple[int, int]:
        """After a run: store what it wrote to fds 1 and 2 in ``runlog`` and empty the files.

        Returns the byte counts written to stdout and stderr (read or not). Never raises once started:
        an OS error becomes a ``"WARNING"`` line in ``runlog`` (a broken capture must not fail the run)."""
        self._require_started()
        _flush_python_streams()
        self._flush_c()
        if t is None:
            t = _now()
        if self._error is not None:
            runlog.add("WARNING", self._error, t)
            self._error = None
        sizes = [0, 0]
        try:
            for i, (fd, level) in enumerate(zip(self._files, _STREAM_LEVELS)):
                sizes[i] = size = os.fstat(fd).st_size
                if size:
                    _read_into(fd, size, runlog, level, t, runlog.max_bytes)
                    os.ftruncate(fd, 0)
        except OSError as exc:
            runlog.add("WARNING", f"output capture: could not read the run's output: {exc}", t)
        return sizes[0], sizes[1]

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("FdCapture: call start() first")

    def _flush_c(self) -> None:
        """fflush(NULL): C stdio buffers (an extension's printf to a file is block-buffered)."""
        if not self.flush_c_stdio:
            return
        if self._fflush is None:
            try:
                import ctypes

                fflush = ctypes.CDLL(None).fflush
                fflush.argtypes = [ctypes.c_void_p]
                self._fflush = fflush
            except Exception:  # noqa: BLE001 - no C library to talk to: nothing to flush
                self._fflush = False
        if self._fflush:
            try:
                self._fflush(None)
            except Exception:  # noqa: BLE001
                pass


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream has nothing to give
                pass


def _unlinked_append_file(prefix: str) -> int:
    import fcntl
    import tempfile

    fd, path = tempfile.mkstemp(prefix=prefix)
    try:
        os.unlink(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_into(fd: int, size: int, runlog: RunLog, level: str, t: float, limit: int) -> None:
    """Store the lines of the first ``size`` bytes of ``fd``, reading at most ``limit`` bytes from each end."""
    if size <= 2 * limit:
        runlog.add_lines(level, _split(_pread(fd, size, 0)), t)
        return
    # Cut at line boundaries: the line crossing each edge of the unread middle is part of the gap.
    head = _pread(fd, limit, 0)
    cut = head.rfind(b"\n")
    if cut >= 0:
        head = head[:cut + 1]
    read, nlines = len(head), head.count(b"\n")
    runlog.add_lines(level, _split(head), t)
    del head
    tail = _pread(fd, limit, size - limit)
    cut = tail.find(b"\n")
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut + 1:]
    read, nlines = read + len(tail), nlines + tail.count(b"\n")
    gap = size - read
    runlog.add_gap(gap, max(1, round(gap * nlines / read)) if read else 1, t)  # lines: estimated
    runlog.add_lines(level, _split(tail), t)


def _pread(fd: int, n: int, offset: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _split(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [_clean(line) for line in lines]
    return lines
