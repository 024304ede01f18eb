"""anachron.capture: bounded run logs, thread-level capture of sys.stdout/sys.stderr, fd-level capture
in worker processes."""

from __future__ import annotations

import contextvars
import gc
import io
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from anachron import capture

CAPTURE_PY = Path(__file__).resolve().parent.parent / "src" / "anachron" / "capture.py"

RunLog = capture.RunLog
OVERHEAD = capture.LINE_OVERHEAD


def stored_size(lines) -> int:
    """What stored lines count toward the cap (the marker excluded)."""
    return sum(len(m.encode("utf-8")) + OVERHEAD for _, level, m in lines if not _is_marker(m))


def _is_marker(message: str) -> bool:
    return message.startswith("… ") and "of output truncated here" in message


# --------------------------------------------------------------------------------------------------
# RunLog


def test_empty_runlog_is_empty_and_cheap():
    log = RunLog(1_000_000)
    assert log.lines() == [] and not log.truncated and log.dropped_lines == 0 and log.stored_bytes == 0
    n = 20_000
    best = min(_time_per_call(lambda: RunLog(1_000_000).lines(), n) for _ in range(5))
    assert best < 5e-6, f"creating and reading an empty RunLog took {best * 1e9:.0f} ns"


def _time_per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def test_lines_under_the_cap_are_kept_as_given():
    log = RunLog(10_000)
    log.add("INFO", "one", 1.0)
    log.add("ERROR", "two\nwith a second line", 2.0)
    log.add("STDOUT", 42, 3.0)  # not a str: stored as its str()
    before = time.time()
    log.add("DEBUG", "now")
    assert log.lines()[:3] == [(1.0, "INFO", "one"), (2.0, "ERROR", "two\nwith a second line"), (3.0, "STDOUT", "42")]
    t, level, message = log.lines()[3]
    assert level == "DEBUG" and message == "now" and before <= t <= time.time()
    assert not log.truncated and log.stored_bytes == 3 + 22 + 2 + 3 + 4 * OVERHEAD
    assert log.lines() is not log.lines()  # a new list each time


def test_head_tail_and_one_marker_with_exact_counts():
    log = RunLog(1000)  # head 500 bytes, tail 500 bytes
    size = 50 - OVERHEAD  # each line costs exactly 50 bytes: 10 fit in the head, 10 in the tail
    for i in range(100):
        log.add("INFO", f"{i:0{size}d}", float(i))
    lines = log.lines()
    assert len(lines) == 21
    assert [int(m) for _, _, m in lines[:10]] == list(range(10))
    assert [int(m) for _, _, m in lines[11:]] == list(range(90, 100))
    marker = lines[10]
    assert marker == (10.0, "WARNING", "… 80 lines (1.4 kB) of output truncated here (run log limit 1.0 kB) …")
    assert log.dropped_lines == 80 and log.dropped_bytes == 80 * size and log.truncated
    assert log.stored_bytes == 1000 == stored_size(lines)
    # one more line: the tail rolls, the marker counts it
    log.add("INFO", f"{100:0{size}d}", 100.0)
    lines = log.lines()
    assert [int(m) for _, _, m in lines[11:]] == list(range(91, 101))
    assert lines[10][2].startswith("… 81 lines (1.5 kB)")


def test_a_line_that_does_not_fit_closes_the_head_for_good():
    log = RunLog(1000)
    log.add("INFO", "a" * 100, 1.0)
    log.add("INFO", "b" * 400, 2.0)  # 132 + 432 > 500: goes to the tail, and the head is closed
    log.add("INFO", "c", 3.0)  # would fit in the head, but keeps its place after b
    assert [m[0] for _, _, m in log.lines()] == ["a", "b", "c"]
    log.add("INFO", "d" * 400, 4.0)  # the tail (500) now drops b
    assert [m[0] for _, _, m in log.lines()] == ["a", "…", "c", "d"]
    assert log.lines()[1][0] == 2.0  # the marker has the time of the first dropped line


def test_600000_lines_stay_within_the_cap_in_bytes_and_memory():
    cap = 1_000_000
    log = RunLog(cap)
    payload = "payload " * 26  # about 220 bytes a line, 600,000 lines: about 131 MB logged
    for i in range(540_000):
        log.add("INFO", f"{i:>10} {payload}")
    gc.collect()
    tracemalloc.start()  # the last 60,000 lines under tracemalloc (it slows adding ten times)
    try:
        for i in range(540_000, 600_000):
            log.add("INFO", f"{i:>10} {payload}")
        gc.collect()
        grown, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # what is still allocated from those 60,000 lines (13 MB of messages) is the tail that holds them now
    assert grown < 2 * cap and peak < 2 * cap, (grown, peak)
    lines = log.lines()
    markers = [line for line in lines if _is_marker(line[2])]
    assert len(markers) == 1
    longest = max(len(m) for _, _, m in lines)
    assert stored_size(lines) <= cap
    assert sum(len(m.encode()) for _, _, m in lines) <= cap + longest + len(markers[0][2].encode())
    kept = len(lines) - 1
    assert log.dropped_lines == 600_000 - kept
    assert markers[0][2].startswith(f"… {600_000 - kept:,} lines (130.")
    at = lines.index(markers[0])
    numbers = [int(m.split()[0]) for _, _, m in lines if not _is_marker(m)]
    assert numbers[:at] == list(range(at))  # the head: the first lines
    assert numbers[at:] == list(range(600_000 - (kept - at), 600_000))  # the tail: the most recent ones
    # what the RunLog holds, as Python objects: a few times the cap, never the 131 MB that went through
    held = sum(sys.getsizeof(line) + sys.getsizeof(line[2]) + sys.getsizeof(line[0]) for line in log._head)
    held += sum(sys.getsizeof(item) + sys.getsizeof(item[2]) + sys.getsizeof(item[0]) for item in log._tail)
    held += sys.getsizeof(log._head) + sys.getsizeof(log._tail)
    assert held < 3 * cap, held


def test_an_oversized_line_is_cut_with_a_suffix():
    log = RunLog(1000)
    limit = log.line_limit
    assert limit == 500 - OVERHEAD
    log.add("INFO", "a" * 5000, 1.0)
    log.add("INFO", "é" * 3000, 2.0)  # 6000 bytes in UTF-8: cut on a character boundary
    (_, _, first), (_, _, second) = log.lines()
    assert first.startswith("a" * 100) and len(first.encode()) <= limit
    kept_a = len(first) - len(first.lstrip("a"))
    assert first.endswith(f" … [{5000 - kept_a:,} more bytes of this line truncated]")
    assert second.startswith("é" * 50) and len(second.encode()) <= limit
    kept_e = len(second) - len(second.lstrip("é"))
    assert second.endswith(f" … [{6000 - 2 * kept_e:,} more bytes of this line truncated]")
    assert not log.truncated and log.stored_bytes <= 1000


def test_marker_from_an_unread_gap_is_an_estimate():
    log = RunLog(1000)
    log.add("STDOUT", "first", 1.0)
    log.add_gap(48_000_000, 480_000, 2.0)
    log.add("STDOUT", "last", 3.0)
    assert log.lines() == [(1.0, "STDOUT", "first"),
                           (2.0, "WARNING", "… ~480,000 lines (48.0 MB) of output truncated here "
                                            "(run log limit 1.0 kB) …"),
                           (3.0, "STDOUT", "last")]


def test_runlog_is_thread_safe():
    threads, per_thread = 8, 5000
    big, small = RunLog(100_000_000), RunLog(10_000)
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            big.add("INFO", f"{k}:{i}")
            small.add("INFO", f"{k}:{i}")

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    lines = big.lines()
    assert len(lines) == threads * per_thread and not big.truncated
    for k in range(threads):  # each thread's lines are all there, in its order
        mine = [int(m.split(":")[1]) for _, _, m in lines if m.startswith(f"{k}:")]
        assert mine == list(range(per_thread))
    kept = small.lines()
    assert small.stored_bytes == stored_size(kept) <= 10_000
    assert len(kept) - 1 + small.dropped_lines == threads * per_thread  # every line stored or counted


@pytest.mark.parametrize("value, expected", [(1_000_000, 1_000_000), ("1000000", 1_000_000), ("500kB", 500_000),
                                             ("10 MB", 10_000_000), ("1MiB", 1 << 20), ("1_000", 1000)])
def test_parse_size(value, expected):
    assert capture.parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "ten", "10 parsecs", 10, True, "-1MB", "1e999"])
def test_parse_size_refuses_bad_values(value):
    with pytest.raises(ValueError, match="run log limit"):
        capture.parse_size(value)


def test_runlog_refuses_a_bad_cap():
    with pytest.raises(ValueError):
        RunLog(10)
    with pytest.raises(TypeError):
        RunLog("1MB")


# --------------------------------------------------------------------------------------------------
# logging


def test_run_logger_is_created_lazily_and_writes_into_the_runlog():
    log = RunLog(100_000)
    assert log._logger is None  # nothing built until a run logs
    logger = log.logger("run-1")
    assert log.logger("run-1") is logger and logger.name == "anachron.run.run-1"
    assert isinstance(logger.handlers[0], capture.RunLogHandler)
    seen = []

    class Spy(logging.Handler):
        def emit(self, record):
            seen.append(record)

    spy = Spy()
    logging.getLogger().addHandler(spy)
    try:
        logger.info("hello %s", "world")
        logger.debug("quiet")
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("it failed")
        logger.warning("%d items", "not a number")  # a broken log call must not break the run
    finally:
        logging.getLogger().removeHandler(spy)
    assert seen == []  # private to the run: nothing reaches the root logger
    lines = log.lines()
    assert [(level, m.splitlines()[0]) for _, level, m in lines[:2]] == [("INFO", "hello world"), ("DEBUG", "quiet")]
    assert lines[2][1] == "ERROR" and "Traceback" in lines[2][2] and "ValueError: bad" in lines[2][2]
    assert lines[3][1] == "WARNING" and lines[3][2].startswith("%d items (log call failed: TypeError")


def test_make_run_logger():
    log = RunLog(100_000)
    logger = capture.make_run_logger("r", log)
    assert not logger.propagate
    logger.error("x")
    assert [(level, m) for _, level, m in log.lines()] == [("ERROR", "x")]


# --------------------------------------------------------------------------------------------------
# Thread-level capture: the stream router


@pytest.fixture
def streams():
    """Call it at the start of a test: sys.stdout/sys.stderr become StringIOs (the "caller's output") with
    the router installed over them. (Not done in the fixture itself: pytest's own capture sets
    sys.stdout again between a test's setup and call phases.)"""
    saved = sys.stdout, sys.stderr

    def setup():
        out, err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = out, err
        capture.install_stream_router()
        return out, err

    yield setup
    capture.uninstall_stream_router()
    sys.stdout, sys.stderr = saved


def levels_and_messages(log):
    return [(level, m) for _, level, m in log.lines()]


def test_prints_in_a_bound_context_go_to_the_runlog_only(streams):
    out, err = streams()
    assert isinstance(sys.stdout, capture.StreamRouter) and sys.stdout.original is out
    log = RunLog(100_000)
    print("before")
    with capture.capture_output(log):
        print("hello", "world")
        print("oops", file=sys.stderr)
        assert sys.stdout.write("two\nlines\n") == 10
        sys.stdout.writelines(["a", "b\n"])
        sys.stdout.flush()
        assert capture.current_output() is log and not sys.stdout.isatty()
    print("after")
    assert capture.current_output() is None
    assert out.getvalue() == "before\nafter\n" and err.getvalue() == ""
    assert levels_and_messages(log) == [("STDOUT", "hello world"), ("STDERR", "oops"), ("STDOUT", "two"),
                                        ("STDOUT", "lines"), ("STDOUT", "ab")]


def test_partial_lines_are_kept_until_unbind_and_line_endings_are_cleaned(streams):
    out, _ = streams()
    log = RunLog(100_000)
    token = capture.bind_output(log)
    sys.stdout.write("partial ")
    sys.stdout.write("line")
    sys.stderr.write("err partial")
    sys.stdout.write("\r\n")  # ends the stdout line; \r\n like \n
    sys.stdout.write("progress 10%\rprogress 50%\rprogress 100%\n")  # a progress bar keeps its last state
    sys.stdout.write("no newline at the end")
    assert levels_and_messages(log) == [("STDOUT", "partial line"), ("STDOUT", "progress 100%")]
    capture.unbind_output(token)
    assert levels_and_messages(log)[2:] == [("STDOUT", "no newline at the end"), ("STDERR", "err partial")]
    assert out.getvalue() == ""


def test_a_partial_line_without_end_stays_bounded(streams):
    streams()
    log = RunLog(1000)
    with capture.capture_output(log):
        for _ in range(10_000):
            sys.stdout.write("x" * 10)  # 100 kB, never a newline
    lines = log.lines()
    assert log.stored_bytes <= 1000 and all(len(m) <= log.line_limit for _, _, m in lines)
    assert log.truncated


def test_buffer_writes_in_a_run_are_captured(streams):
    streams()
    log = RunLog(100_000)
    with capture.capture_output(log):
        assert sys.stdout.buffer.write("bytes é\n".encode()) == 9
    assert levels_and_messages(log) == [("STDOUT", "bytes é")]


def test_helper_threads_with_a_copied_context_are_captured(streams):
    out, _ = streams()
    log = RunLog(100_000)
    with capture.capture_output(log):
        ctx = contextvars.copy_context()
        helper = threading.Thread(target=ctx.run, args=(print, "from helper"))
        helper.start()
        helper.join()
        plain = threading.Thread(target=print, args=("from a plain thread",))  # no context: not the run's
        plain.start()
        plain.join()
    assert levels_and_messages(log) == [("STDOUT", "from helper")]
    assert out.getvalue() == "from a plain thread\n"


def test_two_runs_in_two_threads_get_only_their_own_lines(streams):
    out, err = streams()
    logs = {name: RunLog(1_000_000) for name in ("a", "b")}
    both = threading.Barrier(2)

    def run(name: str) -> None:
        with capture.capture_output(logs[name]):
            both.wait()
            for i in range(2000):
                print(name, i)
                if i % 100 == 0:
                    print(f"{name} err {i}", file=sys.stderr)

    threads = [threading.Thread(target=run, args=(name,)) for name in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, log in logs.items():
        lines = levels_and_messages(log)
        assert [m for level, m in lines if level == "STDOUT"] == [f"{name} {i}" for i in range(2000)]
        assert [m for level, m in lines if level == "STDERR"] == [f"{name} err {i}" for i in range(0, 2000, 100)]
    assert out.getvalue() == "" and err.getvalue() == ""


def test_writes_in_a_run_never_raise_even_when_the_real_stream_is_broken(streams):
    streams()
    class BrokenPipe(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    broken = BrokenPipe()
    sys.stdout = broken  # the caller's stdout is a closed pipe (`anachron ... | head`)
    capture.install_stream_router()
    log = RunLog(100_000)
    with capture.capture_output(log):
        print("fine", flush=True)
        sys.stdout.flush()
    assert levels_and_messages(log) == [("STDOUT", "fine")]
    with pytest.raises(BrokenPipeError):  # outside runs, writes pass through unchanged, errors included
        print("not in a run")


def test_install_is_idempotent_and_uninstall_restores(streams):
    out, err = streams()
    router = sys.stdout
    capture.install_stream_router()
    assert sys.stdout is router and capture.stream_router_installed()
    assert sys.stdout.encoding == out.encoding and sys.stdout.getvalue() == ""  # everything else is delegated
    capture.uninstall_stream_router()
    assert sys.stdout is out and sys.stderr is err and not capture.stream_router_installed()
    capture.uninstall_stream_router()  # again: nothing to do
    assert sys.stdout is out


def test_a_stream_replaced_after_install_is_wrapped_again_at_bind(streams):
    out, _ = streams()
    router = sys.stdout
    replacement = io.StringIO()  # what pytest's capsys or contextlib.redirect_stdout do
    sys.stdout = replacement
    log = RunLog(100_000)
    with capture.capture_output(log):  # bind_output installs the router over the new stream
        print("captured")
    print("to the replacement")
    assert levels_and_messages(log) == [("STDOUT", "captured")]
    assert replacement.getvalue() == "to the replacement\n"
    sys.stdout = router  # the replacer restores what it saved: the first router, which passes through
    print("to the original")
    assert out.getvalue() == "to the original\n"


def test_a_logging_stream_handler_made_after_install_is_captured_in_runs(streams):
    _, err = streams()
    handler = logging.StreamHandler()  # holds sys.stderr: the router
    logger = logging.Logger("user.library")
    logger.addHandler(handler)
    log = RunLog(100_000)
    with capture.capture_output(log):
        logger.warning("from a library")
    logger.warning("outside")
    assert levels_and_messages(log) == [("STDERR", "from a library")]
    assert err.getvalue() == "outside\n"


def test_a_missing_stream_is_routed_too(streams):
    streams()
    sys.stdout = None  # pythonw, or a closed console
    capture.install_stream_router()
    log = RunLog(100_000)
    with capture.capture_output(log):
        print("in a run")
    print("outside a run: nowhere to go, and no error")
    assert levels_and_messages(log) == [("STDOUT", "in a run")]
    capture.uninstall_stream_router()
    assert sys.stdout is None


# --------------------------------------------------------------------------------------------------
# Process-level capture: FdCapture, in real subprocesses


posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FdCapture is POSIX-only")


def run_script(body: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    prelude = textwrap.dedent(f"""
        import importlib.util, json, os, subprocess, sys, time
        _spec = importlib.util.spec_from_file_location("anachron_capture", {str(CAPTURE_PY)!r})
        capture = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(capture)
    """)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body)], capture_output=True,
                          timeout=timeout, env=env, cwd=tmp_path)


@posix_only
def test_fd_capture_catches_print_raw_writes_child_processes_and_c_stdio(tmp_path):
    proc = run_script("""
        import ctypes
        cap = capture.FdCapture().start()
        left_on_disk = os.listdir(os.environ["TMPDIR"])
        print("between runs: discarded")
        os.write(1, b"also discarded\\n")
        cap.begin()
        print("from print")
        sys.stdout.write("no newline at the end of stdout")
        sys.stdout.flush()
        os.write(1, b"\\nraw fd write\\n")
        subprocess.run(["echo", "from echo"], check=True)
        os.system("echo from os.system; echo system stderr >&2")
        print("to stderr", file=sys.stderr)
        os.write(2, b"raw stderr\\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child stderr\\\\n')"], check=True)
        ctypes.CDLL(None).printf(b"from C printf\\n")  # block-buffered C stdio: collect() flushes it
        first = capture.RunLog(100_000)
        sizes = cap.collect(first)
        cap.begin()
        print("second run")
        second = capture.RunLog(100_000)
        cap.collect(second)
        third = capture.RunLog(100_000)
        cap.begin()
        cap.collect(third)
        result = {"first": first.lines(), "second": second.lines(), "third": third.lines(), "sizes": sizes,
                  "left_on_disk": left_on_disk}
        os.write(cap.saved_stdout_fd, json.dumps(result).encode() + b"\\n")
        cap.stop()
        print("after stop", flush=True)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    first_line, rest = proc.stdout.split(b"\n", 1)
    assert rest == b"after stop\n"  # the real stdout got nothing else
    result = json.loads(first_line)
    first = [(level, m) for _, level, m in result["first"]]
    stdout = [m for level, m in first if level == "STDOUT"]
    stderr = [m for level, m in first if level == "STDERR"]
    assert sorted(stdout) == sorted(["from print", "no newline at the end of stdout", "raw fd write", "from echo",
                                     "from os.system", "from C printf"])
    assert sorted(stderr) == sorted(["system stderr", "to stderr", "raw stderr", "child stderr"])
    assert first.index(("STDOUT", "from C printf")) < first.index(("STDERR", "to stderr"))  # stdout, then stderr
    assert len({t for t, _, _ in result["first"]}) == 1  # all with the collection time
    assert result["sizes"][0] == sum(len(m) + 1 for m in stdout) and result["sizes"][1] > 0
    assert [(level, m) for _, level, m in result["second"]] == [("STDOUT", "second run")]
    assert result["third"] == []
    assert result["left_on_disk"] == []  # the temporary files were unlinked at once


@posix_only
def test_fd_capture_of_a_huge_output_reads_both_ends_only(tmp_path):
    proc = run_script("""
        import tracemalloc
        cap = capture.FdCapture().start()
        block = b"".join(b"%09d " % i + b"x" * 89 + b"\\n" for i in range(10_000))  # 1 MB

        def run():
            cap.begin()
            os.write(1, b"FIRST LINE\\n")
            for _ in range(50):
                os.write(1, block)
            os.write(1, b"LAST LINE\\n")
            os.write(2, b"a traceback at the end of stderr\\n")

        run()
        log = capture.RunLog(1_000_000)
        started = time.perf_counter()
        sizes = cap.collect(log)
        elapsed = time.perf_counter() - started
        emptied = os.fstat(cap._files[0]).st_size
        run()
        tracemalloc.start()  # again, for the memory it takes (tracemalloc makes it slower)
        cap.collect(capture.RunLog(1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        lines = log.lines()
        result = {"elapsed": elapsed, "peak": peak, "sizes": sizes, "stored": log.stored_bytes, "emptied": emptied,
                  "n": len(lines), "first": lines[:2], "last": lines[-3:],
                  "markers": [m for _, level, m in lines if level == "WARNING"]}
        os.write(cap.saved_stdout_fd, json.dumps(result).encode())
        cap.stop()
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    result = json.loads(proc.stdout)
    assert result["sizes"][0] == 50 * 1_000_000 + 21 and result["emptied"] == 0
    assert result["stored"] <= 1_000_000
    assert result["elapsed"] < 0.5, result["elapsed"]  # about 35 ms
    assert result["peak"] < 8_000_000, result["peak"]  # about 4.4 MB: 2 MB read, never the 50 MB
    assert [m for _, _, m in result["first"]][0] == "FIRST LINE"
    assert [(level, m) for _, level, m in result["last"]][-2:] == [("STDOUT", "LAST LINE"),
                                                                    ("STDERR", "a traceback at the end of stderr")]
    (marker,) = result["markers"]
    assert marker.startswith("… ~") and "(run log limit 1.0 MB)" in marker
    dropped_lines = int(marker.split()[1].lstrip("~").replace(",", ""))
    assert 490_000 < dropped_lines < 500_000 + 2  # estimated from the lines read; exactly ~490,000 here


@posix_only
def test_fd_capture_with_the_router_bound_in_the_worker(tmp_path):
    """Both together in a worker: Python-level prints reach the RunLog directly (their own times, in order
    with the run's log lines), FdCapture gets the rest."""
    proc = run_script("""
        cap = capture.FdCapture().start()
        cap.begin()
        log = capture.RunLog(100_000)
        with capture.capture_output(log):
            log.logger("r").info("logged")
            print("printed")
            os.write(1, b"raw\\n")
            subprocess.run(["echo", "child"], check=True)
        cap.collect(log)
        capture.uninstall_stream_router()
        os.write(cap.saved_stdout_fd, json.dumps(log.lines()).encode())
        cap.stop()
    """, tmp_path)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()
    lines = json.loads(proc.stdout)
    assert [(level, m) for _, level, m in lines] == [("INFO", "logged"), ("STDOUT", "printed"), ("STDOUT", "raw"),
                                                      ("STDOUT", "child")]
    assert lines[0][0] <= lines[1][0] <= lines[2][0] == lines[3][0]
