"""Workflows for the benchmarks (importable by worker processes)."""

import anachron as ac

DAYS = ac.DailyPartitions("1990-01-01", "2100-01-01")


@ac.workflow(partitions=DAYS)
def noop():
    return None


MULTI = ac.MultiPartitions({
    "date": ac.DailyPartitions("1990-01-01", "2100-01-01"),
    "region": ac.StaticPartitions([f"r{i:03d}" for i in range(100)]),
})


@ac.workflow(partitions=MULTI)
def noop_multi():
    return None
