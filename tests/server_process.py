"""A real ``anachron server`` process on a free port, for the API, CLI and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def running_server(targets: Sequence[str], db_url: str, tmp_path: Path, *, args: Sequence[str] = (),
                   env: Mapping[str, str] | None = None, cwd: str | None = None,
                   timeout: float = 60) -> Iterator[ServerProcess]:
    """Start ``anachron server TARGETS --db DB_URL --port <free>`` and wait until it answers; SIGTERM (then
    SIGKILL) at the end. Its stdout and stderr go to a file (``ServerProcess.log()``)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("ANACHRON_API_TOKEN", "")
    if not full_env["ANACHRON_API_TOKEN"]:
        full_env.pop("ANACHRON_API_TOKEN")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "anachron.cli", "server", *targets, "--db", db_url,
                                 "--port", str(port), "--scan", "0.2", *args],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd)
    server = ServerProcess(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not answer in {timeout} s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
