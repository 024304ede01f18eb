"""Edges of time partitions, cron and logical time: bulk key building matches strftime, work is
bounded by `end`, 5-field cron and macros only, malformed logical times, unstorable keys."""

from __future__ import annotations

import itertools
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

import anachron as ac
from anachron import clock
from anachron.partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    MonthlyPartitions,
    MultiPartitions,
    StaticPartitions,
    TimeWindowPartitions,
    WeeklyPartitions,
)
from anachron.partitions.base import MAX_KEY_BYTES
from anachron.partitions.time_grid import DayGrid, MinuteGrid, MonthGrid
from anachron.partitions.time_window import TimeWindowPartitions as TWP

UTC = timezone.utc
NOW = datetime(2030, 1, 1, tzinfo=UTC)


# --- 1. keys built in bulk are exactly the strftime keys ---------------------------------------

ZONES = ["US/Eastern", "Europe/Paris", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
GRIDS = [
    ("0 * * * *", None),                       # hourly: the fall-back hour gets suffixes
    ("*/30 * * * *", None),                    # Lord_Howe's 30-minute shift repeats one tick
    ("0 * * * *", "%Y%m%d%H"),
    ("0,20,45 * * * *", "%Y-%m-%d %H:%M:%S"),  # uneven minutes
    ("0 0 * * *", None),
    ("30 2 * * *", "%H:%M %d/%m/%Y"),          # 02:30 falls into spring-forward gaps; time first
    ("0 0 * * 1", None),
    ("15 1 * * 1-5", None),
    ("0 0 1 * *", None),
    ("0 0 L * *", None),                       # a cronsim-only grid
    ("0 9 * * *", "%%%Y-%m-%d %H%%"),          # literal percent signs
]


def strftime_reference(seq):
    """Key by key: `seq[i]` formats each window start with strftime (plus the offset suffix)."""
    return [seq[i] for i in range(len(seq))]


# together these hold both 2024 DST changes of every zone above (Lord_Howe: April and October)
SPANS = [("2024-03-08", "2024-04-10"), ("2024-10-04", "2024-11-05")]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("cron, fmt", GRIDS)
@pytest.mark.parametrize("start, end", SPANS)
def test_bulk_keys_match_strftime_across_dst(zone, cron, fmt, start, end):
    if cron.split()[2] != "*":  # monthly grids: a whole year
        start, end = start[:4] + "-01-01", "2025-01-01"
    p = TimeWindowPartitions(cron, start, end=end, timezone=zone, fmt=fmt)
    seq = p.get_partition_keys(NOW)
    ref = strftime_reference(seq)
    assert len(set(ref)) == len(ref) > 0
    assert list(seq) == ref
    assert list(reversed(seq)) == ref[::-1]
    assert list(seq[7:-5]) == ref[7:-5] and list(reversed(seq[7:-5])) == ref[7:-5][::-1]
    assert list(seq[::-1][3:400]) == ref[::-1][3:400]
    assert list(seq[-300:]) == ref[-300:] and list(seq[:17]) == ref[:17] and list(seq[3:3]) == []


def test_bulk_keys_keep_the_fall_back_suffixes():
    seq = HourlyPartitions("2024-11-01", end="2024-11-06", timezone="US/Eastern").get_partition_keys(NOW)
    keys = list(seq)
    assert [k for k in keys if len(k) > 16] == ["2024-11-03T01:00-04:00", "2024-11-03T01:00-05:00"]
    assert keys == strftime_reference(seq) and len(keys) == 5 * 24 + 1
    half = TimeWindowPartitions("*/30 * * * *", "2024-04-06", end="2024-04-08",
                                timezone="Australia/Lord_Howe").get_partition_keys(NOW)
    assert [k for k in half if len(k) > 16] == ["2024-04-07T01:30+11:00", "2024-04-07T01:30+10:30"]
    assert list(half) == strftime_reference(half)


@pytest.mark.parametrize("zone", ["US/Eastern", "Australia/Lord_Howe", "UTC"])
def test_bulk_keys_over_decades_and_chunk_edges(zone):
    for p in (DailyPartitions("1965-01-01", end="2031-01-01", timezone=zone),
              WeeklyPartitions("1965-01-01", end="2031-01-01", timezone=zone),
              MonthlyPartitions("1900-01-01", end="2031-01-01", timezone=zone),
              HourlyPartitions("2020-09-01", end="2021-05-01", timezone=zone)):
        seq = p.get_partition_keys(NOW)
        ref = strftime_reference(seq)
        assert list(seq) == ref and list(reversed(seq)) == ref[::-1]
        for lo, hi in ((255, 257), (256, 4100), (1000, 1016), (max(0, len(ref) - 5000), len(ref) - 1)):
            assert list(seq[lo:hi]) == ref[lo:hi] and list(reversed(seq[lo:hi])) == ref[lo:hi][::-1]


def test_a_custom_strftime_format_still_works():
    p = HourlyPartitions("2024-10-26", end="2024-10-29", timezone="Europe/Paris", fmt="%Y/%j %Hh")
    seq = p.get_partition_keys(NOW)
    assert list(seq) == strftime_reference(seq) and len(seq) == 73
    assert seq[0] == "2024/300 00h"


def test_iteration_does_not_format_key_by_key(monkeypatch):
    defs = [HourlyPartitions("2015-01-01", end="2024-12-29"),
            HourlyPartitions("2015-01-01", end="2024-12-29", timezone="US/Eastern"),
            DailyPartitions("1990-01-01", end="2024-12-29", timezone="Europe/Paris"),
            WeeklyPartitions("1990-01-01", end="2024-12-29", timezone="Europe/Paris"),
            MonthlyPartitions("1990-01-01", end="2024-12-29", timezone="Europe/Paris")]
    calls = []
    original = TWP._format_tick
    monkeypatch.setattr(TWP, "_format_tick", lambda self, i: calls.append(i) or original(self, i))
    for p in defs:
        keys = p.get_partition_keys(NOW)
        assert sum(1 for _ in keys) == len(keys) and sum(1 for _ in reversed(keys)) == len(keys)
    assert len(list(defs[0].get_partition_keys(NOW))) == 87_600
    assert calls == []  # only a repeated hour's keys take the per-key path, and not through here


def test_a_million_hourly_keys_are_built_a_chunk_at_a_time():
    seq = HourlyPartitions("1901-01-01", end="2024-01-01", timezone="US/Eastern").get_partition_keys(NOW)
    assert len(seq) > 1_000_000
    tracemalloc.start()
    try:
        first = next(iter(seq))
        last = next(iter(reversed(seq)))
        some = list(itertools.islice(iter(seq[500_000:]), 3))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (first, last) == (seq[0], seq[-1]) and some == [seq[500_000], seq[500_001], seq[500_002]]
    assert peak < 2 * 1024 * 1024


# --- 2. an `end` bounds the work, however late it is now ----------------------------------------


@pytest.mark.timeout(5)
def test_irregular_cron_with_end_never_runs_up_to_now():
    p = TimeWindowPartitions("* 9-17 * * 1-5", start="2010-03-01", end="2010-03-08")
    keys = p.get_partition_keys()  # now: 16 years after the end
    assert len(keys) == 5 * 9 * 60 - 1 and len(list(keys)) == len(keys)
    assert (keys[0], keys[-1]) == ("2010-03-01T09:00", "2010-03-05T17:58")
    assert p.time_window(keys[-1]).end == datetime(2010, 3, 5, 17, 59, tzinfo=UTC)
    assert len(p.keys_in_time_range("2010-03-05", "2030-01-01")) == 9 * 60 - 1
    assert len(p.keys_in_time_range("2029-01-01", "2030-01-01")) == 0
    assert p.has_partition_key("2010-03-03T12:34") and not p.has_partition_key("2025-03-03T12:34")
    p.validate_key(keys[-1])
    with pytest.raises(ValueError, match="2025-03-03T12:34"):
        p.time_window("2025-03-03T12:34")
    # a negative end_offset still counts from now: long after the end, every window exists
    hidden = TimeWindowPartitions("* 9-17 * * 1-5", start="2010-03-01", end="2010-03-08", end_offset=-3)
    assert len(hidden.get_partition_keys()) == len(keys)
    assert len(hidden.get_partition_keys(datetime(2010, 3, 5, 17, 30, tzinfo=UTC))) == len(keys) - 29 - 3


# --- 3. cron: 5 fields or a macro --------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 0 * * * *", "0 0 0 * * * *", "0 0 * *", "* * * * * 2024"])
def test_cron_needs_five_fields(cron):
    with pytest.raises(ValueError, match=r"cron.*5-field cron \(minute hour day month weekday\)"):
        TimeWindowPartitions(cron, "2024-01-01")
    with pytest.raises(ValueError, match=r"Schedule.cron.*5-field cron \(minute hour day month weekday\)"):
        ac.Schedule(cron)


@pytest.mark.parametrize("macro, fields, grid", [
    ("@yearly", "0 0 1 1 *", MonthGrid), ("@annually", "0 0 1 1 *", MonthGrid),
    ("@monthly", "0 0 1 * *", MonthGrid), ("@weekly", "0 0 * * 0", DayGrid),
    ("@daily", "0 0 * * *", DayGrid), ("@midnight", "0 0 * * *", DayGrid),
    ("@hourly", "0 * * * *", MinuteGrid),
])
def test_cron_macros(macro, fields, grid):
    p = TimeWindowPartitions(macro, "2020-01-01", timezone="Europe/Paris")
    q = TimeWindowPartitions(fields, "2020-01-01", timezone="Europe/Paris")
    assert p.cron == macro and p.cron_expression == fields and macro in repr(p)
    assert isinstance(p._grid, grid)  # the regular-grid fast paths apply
    assert p.fmt == q.fmt and p == q
    assert list(p.get_partition_keys(datetime(2022, 1, 1, tzinfo=UTC))) == list(
        q.get_partition_keys(datetime(2022, 1, 1, tzinfo=UTC)))
    s = ac.Schedule(macro.upper(), timezone="Europe/Paris")
    assert s.cron == macro.upper() and s.cron_expression == fields
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    assert list(s.ticks(start, end)) == list(ac.Schedule(fields, timezone="Europe/Paris").ticks(start, end))


@pytest.mark.parametrize("macro", ["@reboot", "@fortnightly", "@"])
def test_unknown_and_reboot_macros_are_refused_with_the_accepted_ones(macro):
    for make in (lambda: TimeWindowPartitions(macro, "2024-01-01"), lambda: ac.Schedule(macro)):
        with pytest.raises(ValueError, match="cron") as exc:
            make()
        assert macro in str(exc.value) and "@daily" in str(exc.value) and "@hourly" in str(exc.value)


# --- 4. malformed logical time -----------------------------------------------------------------

OUT_OF_RANGE = ["unix:1e400", "unix:nan", "unix:inf", "unix:-inf", "unix:-99999999999999",
                "unix:99999999999999", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]


@pytest.mark.parametrize("variable", ["ANACHRON_TIME", "STARLARK_TIME"])
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_out_of_range_logical_time_is_a_logical_time_error(variable, value):
    with pytest.raises(ac.LogicalTimeError) as exc:
        clock.time_from_environ({variable: value})
    text = str(exc.value)
    assert variable in text and value in text and "unix:<seconds>" in text and "ISO-8601" in text


def test_out_of_range_logical_time_fails_the_clock(monkeypatch):
    monkeypatch.delenv("ANACHRON_TIME", raising=False)
    monkeypatch.setenv("STARLARK_TIME", "unix:nan")
    with pytest.raises(ac.LogicalTimeError, match="STARLARK_TIME"):
        ac.time()
    monkeypatch.setenv("ANACHRON_TIME", "9999-12-31T23:59:59-05:00")
    with pytest.raises(ac.LogicalTimeError, match="ANACHRON_TIME"):
        ac.now()


def test_the_extremes_of_the_range_are_times():
    assert clock.parse_time_value("unix:-62135596800") == datetime(1, 1, 1, tzinfo=UTC)
    assert clock.parse_time_value("unix:253402300799") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert clock.parse_time_value("0001-01-01T05:00:00+05:00") == datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [1e400, float("nan"), float("-inf"), -1e15, 1e15,
                                   "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_to_datetime_names_its_field_instead_of_overflowing(value):
    with pytest.raises(ValueError, match="backfill start"):
        clock.to_datetime(value, "backfill start")


def test_partition_bounds_near_the_ends_of_time_name_the_field():
    with pytest.raises(ValueError, match="start"):
        DailyPartitions("0001-01-01T00:00:00+05:00")
    with pytest.raises(ValueError, match="end"):
        DailyPartitions("2024-01-01", end=datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))))
    with pytest.raises(ValueError, match="start"):
        HourlyPartitions("0001-01-01", timezone="America/New_York")


# --- 5. keys a database cannot store -----------------------------------------------------------

BAD_KEYS = ["a\x00b", "\x00", "tab\there", "new\nline", "bell\x07", "del\x7f", "x" * (MAX_KEY_BYTES + 1),
            "é" * (MAX_KEY_BYTES // 2 + 1), "\ud800"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unstorable_static_and_dynamic_keys_are_refused(key):
    for make in (lambda: StaticPartitions(["ok", key]),
                 lambda: DynamicPartitions.validate_new_keys(["ok", key])):
        with pytest.raises(ValueError) as exc:
            make()
        text = str(exc.value)
        assert repr(key[:60]) in text and len(text) < 400


def test_storable_keys_up_to_the_limit():
    assert MAX_KEY_BYTES == 1000
    longest = ["x" * MAX_KEY_BYTES, "é" * (MAX_KEY_BYTES // 2), "日本" * 166, "space and ünïcode"]
    assert StaticPartitions(longest).keys == tuple(longest)
    assert DynamicPartitions.validate_new_keys(longest) == longest
    with pytest.raises(ValueError, match="1001 bytes"):
        StaticPartitions(["x" * 1001])
    with pytest.raises(ValueError, match=r"control character '\\x00'"):
        DynamicPartitions.validate_new_keys("nul\x00")


@pytest.mark.parametrize(
    "fmt", ["%Y-%m-%d\n", "%Y%n%m-%d", "%Y-%m-%d%t", "%Y-%m-%d" + "x" * 995, "\x00%Y-%m-%d"])
def test_formats_making_unstorable_keys_are_refused(fmt):
    with pytest.raises(ValueError, match="fmt"):
        DailyPartitions("2024-01-01", fmt=fmt)


def test_a_format_is_checked_for_the_offset_suffix_of_a_repeated_hour():
    long = "%Y-%m-%dT%H:%M" + "x" * (MAX_KEY_BYTES - 16 - 2)  # 998 bytes: 1004 with a suffix
    assert HourlyPartitions("2024-01-01", fmt=long)  # no repeated hours in UTC
    with pytest.raises(ValueError, match="fmt"):
        HourlyPartitions("2024-01-01", timezone="US/Eastern", fmt=long)
    assert DailyPartitions("2024-01-01", timezone="US/Eastern", fmt="%Y-%m-%d" + "x" * 990)


def test_multi_keys_must_fit_when_every_dimension_is_known():
    date_dim = DailyPartitions("2024-01-01")  # 10-byte keys
    ok = StaticPartitions(["r" * (MAX_KEY_BYTES - len("date=") - 10 - len("|region="))])
    assert MultiPartitions({"date": date_dim, "region": ok})
    long = StaticPartitions(["us", "r" * (MAX_KEY_BYTES - len("date=") - 10 - len("|region=") + 1)])
    with pytest.raises(ValueError, match="1001 bytes.*'region'"):
        MultiPartitions({"date": date_dim, "region": long})
    small = StaticPartitions(["us"])
    assert MultiPartitions({"date": date_dim, "region": small, "c": DynamicPartitions("c")})
    assert MultiPartitions({"region": long, "customer": DynamicPartitions("c")})  # checked per key later
    with pytest.raises(ValueError, match="dimension name"):
        MultiPartitions({"da\x00te": date_dim})



def test_multi_keys_with_the_time_dimension_innermost():
    hourly = HourlyPartitions("2024-11-01", end="2024-11-06", timezone="US/Eastern")
    m = MultiPartitions({"region": StaticPartitions(["us", "eu", "asia"]), "hour": hourly})
    keys = m.get_partition_keys(NOW)
    hours = strftime_reference(hourly.get_partition_keys(NOW))
    expected = [f"region={r}|hour={h}" for r in ("us", "eu", "asia") for h in hours]
    for _ in range(2):  # the second pass reuses memoised chunks
        assert list(keys) == expected and list(reversed(keys)) == expected[::-1]
    assert list(keys[100:300]) == expected[100:300]
