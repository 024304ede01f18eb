"""Running a shell task: one ``/bin/sh`` process, its output streamed into the run's log line by line.

The commands run in order in a single ``/bin/sh -c`` script that starts with ``set -e``, so the task stops
at the first failing command and state (``cd``, variables) carries from one command to the next.

Output: stdout and stderr are read from two pipes with one selector in the calling thread (no helper
threads, no deadlock when one pipe fills): every complete line goes to the run's log as it arrives —
stdout at ``INFO``, stderr at ``WARNING`` — and the last lines are kept for the error message. Bytes are
decoded as UTF-8 (undecodable bytes replaced); a line longer than ``MAX_LINE_CHARS`` is logged in pieces.
Once the shell has exited, output still in flight is read for up to ``DRAIN_SECONDS``; a background
process that keeps the pipes open longer is not waited for (nor killed).

Stopping: while it waits, the runner polls the run's cancel flag (every ``POLL_SECONDS``) and the task's
deadline. Either one ends the shell and every process it started — ``SIGTERM``, then ``SIGKILL`` after
``KILL_GRACE_SECONDS`` — and raises ``RunCanceled`` or ``TaskTimeout``; so does any exception while waiting
(a ``KeyboardInterrupt``). Where the processes live decides how they are found:

- normally the shell starts a new session (``start_new_session=True``), and its process group is killed;
- in a process that leads its own session — a ``LocalExecutor`` worker, which a cancel or the lease fence
  stops by killing its whole process group — the shell stays in the worker's group, so that kill reaches
  every process of the task too; the runner then stops the shell's process tree (found through ``/proc``).
"""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping

from ..context import RunCanceled, TaskTimeout
from .errors import FlowTaskError

__all__ = ["run_shell", "POLL_SECONDS", "TAIL_LINES"]

POLL_SECONDS = 0.05
DRAIN_SECONDS = 0.5
KILL_GRACE_SECONDS = 2.0
TAIL_LINES = 10
MAX_LINE_CHARS = 65536  # a longer line is logged in pieces (the run log caps what it stores anyway)
_READ_SIZE = 65536

#: ``on_line(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``.
LineSink = Callable[[str, str], None]


def run_shell(task: str, commands: list[str], *, cwd: str, env: Mapping[str, str], on_line: LineSink,
              canceled: Callable[[], bool], timeout: float | None = None) -> None:
    """Run ``commands`` in one ``/bin/sh`` (``set -e``); return when it exits 0, else raise ``FlowTaskError``
    naming ``task`` with the exit code (or signal) and the last lines of output."""
    if not os.path.isdir(cwd):
        raise FlowTaskError(f"task {task}: the working directory {cwd!r} does not exist (or is not a directory)")
    script = "set -e\n" + "\n".join(commands) + "\n"
    own_session = os.getsid(0) != os.getpid()
    try:
        process = subprocess.Popen(
            ["/bin/sh", "-c", script], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=own_session, close_fds=True)
    except OSError as exc:
        raise FlowTaskError(f"task {task}: the shell could not start in {cwd!r}: {exc.strerror or exc}") from None
    stopper = _Stopper(process, own_session)
    tail: deque[str] = deque(maxlen=TAIL_LINES)

    def sink(stream: str, line: str) -> None:
        tail.append(line)
        on_line(stream, line)

    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        _pump(process, sink, canceled, deadline, stopper, task, timeout)
    finally:
        if process.poll() is None:  # an exception while waiting: nothing of the task may outlive it
            stopper.stop(grace=0.0)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    code = process.returncode
    if code != 0:
        raise FlowTaskError(f"task {task} failed: {_ending(code)}" + _tail_text(tail))


def _pump(process: subprocess.Popen[bytes], sink: LineSink, canceled: Callable[[], bool], deadline: float | None,
          stopper: _Stopper, task: str, timeout: float | None) -> None:
    readers = {pipe.fileno(): _LineReader(name, sink)
               for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)) if pipe is not None}
    with selectors.DefaultSelector() as selector:
        for fd in readers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        exited_at: float | None = None
        while True:
            if selector.get_map():
                for key, _ in selector.select(POLL_SECONDS):
                    _read(key.fd, readers[key.fd], selector)
            else:
                try:
                    process.wait(POLL_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
            if process.poll() is not None:
                if not selector.get_map():
                    break
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at >= DRAIN_SECONDS:  # a background process holds the pipes
                    break
                continue
            if canceled():
                stopper.stop()
                _flush(readers)
                raise RunCanceled(f"task {task} was canceled; its shell was stopped")
            if deadline is not None and time.monotonic() >= deadline:
                stopper.stop()
                _flush(readers)
                raise TaskTimeout(f"task {task} timed out after {timeout:g} s; its shell was stopped")
        _flush(readers)


def _read(fd: int, reader: _LineReader, selector: selectors.BaseSelector) -> None:
    try:
        chunk = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return
    if chunk:
        reader.feed(chunk)
    else:
        selector.unregister(fd)
        reader.close()


def _flush(readers: Mapping[int, _LineReader]) -> None:
    for reader in readers.values():
        reader.close()


class _LineReader:
    """Bytes of one stream in, complete lines out (a last line without a newline comes out at the end)."""

    def __init__(self, stream: str, sink: LineSink):
        self.stream = stream
        self.sink = sink
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.closed = False

    def feed(self, chunk: bytes) -> None:
        text = self.pending + self.decoder.decode(chunk)
        *lines, self.pending = text.split("\n")
        for line in lines:
            self.sink(self.stream, line.removesuffix("\r"))
        while len(self.pending) >= MAX_LINE_CHARS:  # output without newlines: cut, never hold it all
            self.sink(self.stream, self.pending[:MAX_LINE_CHARS])
            self.pending = self.pending[MAX_LINE_CHARS:]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        rest = self.pending + self.decoder.decode(b"", final=True)
        self.pending = ""
        if rest:
            self.sink(self.stream, rest.removesuffix("\r"))


class _Stopper:
    """Ends the shell and the processes it started (see the module docstring for which ones)."""

    def __init__(self, process: subprocess.Popen[bytes], own_session: bool):
        self.process = process
        self.own_session = own_session

    def _send(self, targets: list[int] | None, signum: int) -> None:
        if targets is None:
            try:
                os.killpg(self.process.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass
            return
        for pid in targets:
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self, grace: float = KILL_GRACE_SECONDS) -> None:
        # in a shared group, the tree is found before the shell dies (its orphans would be reparented)
        targets = None if self.own_session else [self.process.pid, *_descendants(self.process.pid)]
        if grace > 0:
            self._send(targets, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        if targets is not None and self.process.poll() is None:
            targets += [pid for pid in _descendants(self.process.pid) if pid not in targets]
        self._send(targets, signal.SIGKILL)  # the shell's children too, even when the shell itself is gone
        self.process.wait()


def _descendants(root: int) -> list[int]:
    """The pids of ``root``'s descendants, from ``/proc`` (empty where there is no ``/proc``)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _ending(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the shell was killed by {name}"
    return f"exit code {code}"


def _tail_text(tail: deque[str]) -> str:
    if not tail:
        return " (no output)"
    return f"; last {len(tail)} line{'s' if len(tail) != 1 else ''} of output:\n" + "\n".join(
        f"  {line}" for line in tail)

