"""Workflows without a repository (the CLI builds one with a LocalExecutor: worker processes) that print,
and one whose worker process dies."""

import os
import signal
import subprocess
import sys

import anachron as ac


@ac.workflow(partitions=ac.StaticPartitions(["a", "b"]))
def noisy(word: str = "hello"):
    print(f"printed {word}", flush=True)
    sys.stderr.write(f"to stderr {word}\n")
    subprocess.run(["echo", "from a child"], check=True)
    return word


@ac.workflow
def dies():
    os.kill(os.getpid(), signal.SIGKILL)
