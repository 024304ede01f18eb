"""Workflows without a repository: the CLI builds one with a LocalExecutor (worker processes)."""

import anachron as ac


@ac.task
def square(x: int) -> int:
    return x * x


@ac.workflow(partitions=ac.StaticPartitions(["a", "b", "c", "d"]))
def squares(x: int = 3):
    key = ac.context().partition_key
    if key == "d":
        raise RuntimeError("d is broken")
    return {"key": key, "value": square(x), "pid": __import__("os").getpid()}
