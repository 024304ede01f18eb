"""Tests for anachron.partitions (public API only; every call passes an explicit current_time)."""

from __future__ import annotations

import pickle
import tracemalloc
from datetime import date, datetime, timedelta, timezone

import pytest

from anachron.partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    KeySequence,
    MonthlyPartitions,
    MultiPartitionKey,
    MultiPartitions,
    PartitionKeyRange,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindow,
    TimeWindowPartitions,
    WeeklyPartitions,
)

UTC = timezone.utc
NOW = datetime(2024, 12, 31, tzinfo=UTC)
NY = "America/New_York"


def hours(w: TimeWindow) -> float:
    return (w.end.timestamp() - w.start.timestamp()) / 3600


# --- time windows ---------------------------------------------------------------------------


def test_daily_keys_and_windows():
    p = DailyPartitions("2024-01-01")
    keys = p.get_partition_keys(datetime(2024, 1, 5, 12, tzinfo=UTC))
    assert list(keys) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert isinstance(keys, KeySequence) and p.is_time_based
    w = p.time_window("2024-01-03")
    assert w == TimeWindow(datetime(2024, 1, 3, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC))
    assert w.start.tzinfo is not None and isinstance(w, tuple)
    assert p.timezone == "UTC" and p.fmt == "%Y-%m-%d" and p.cron == "0 0 * * *" and p.end is None
    assert p.start == datetime(2024, 1, 1, tzinfo=UTC) and p.end_offset == 0


def test_start_accepts_date_datetime_and_iso():
    a = DailyPartitions(date(2024, 1, 1), timezone="Europe/Paris")
    b = DailyPartitions(datetime(2024, 1, 1), timezone="Europe/Paris")
    c = DailyPartitions("2024-01-01T00:00:00", timezone="Europe/Paris")
    d = DailyPartitions("2023-12-31T23:00:00Z", timezone="Europe/Paris")
    assert a == b == c == d
    assert a.start.utcoffset() == timedelta(hours=1)
    assert list(a.get_partition_keys(datetime(2024, 1, 2, 22, 30, tzinfo=UTC))) == ["2024-01-01"]
    # 2024-01-02 in Paris ends at 23:00 UTC on the 2nd
    assert len(a.get_partition_keys(datetime(2024, 1, 2, 23, tzinfo=UTC))) == 2


def test_hourly_keys():
    p = HourlyPartitions("2024-01-01", end="2024-01-02")
    keys = p.get_partition_keys(NOW)
    assert len(keys) == 24
    assert keys[0] == "2024-01-01T00:00" and keys[-1] == "2024-01-01T23:00"
    assert p.time_window("2024-01-01T05:00") == (
        datetime(2024, 1, 1, 5, tzinfo=UTC), datetime(2024, 1, 1, 6, tzinfo=UTC))


def test_weekly_starts_monday_and_monthly_first_day():
    w = WeeklyPartitions("2024-01-03")  # a Wednesday: the first full week starts Mon 8th
    assert list(w.get_partition_keys(datetime(2024, 1, 29, tzinfo=UTC))) == [
        "2024-01-08", "2024-01-15", "2024-01-22"]
    assert hours(w.time_window("2024-01-15")) == 7 * 24
    with pytest.raises(ValueError, match="2024-01-16"):
        w.time_window("2024-01-16")
    m = MonthlyPartitions("2023-11-01", timezone=NY)
    keys = m.get_partition_keys(datetime(2024, 3, 2, tzinfo=UTC))
    assert list(keys) == ["2023-11-01", "2023-12-01", "2024-01-01", "2024-02-01"]
    win = m.time_window("2024-02-01")
    assert (win.start.day, win.end.month, win.end.day) == (1, 3, 1)
    assert hours(win) == 29 * 24


def test_spring_forward_new_york():
    h = HourlyPartitions("2024-03-10", end="2024-03-11", timezone=NY)
    keys = list(h.get_partition_keys(NOW))
    assert len(keys) == 23 and len(set(keys)) == 23
    assert "2024-03-10T02:00" not in keys
    assert keys[:3] == ["2024-03-10T00:00", "2024-03-10T01:00", "2024-03-10T03:00"]
    d = DailyPartitions("2024-03-09", timezone=NY)
    assert hours(d.time_window("2024-03-10")) == 23
    assert hours(d.time_window("2024-03-09")) == 24


def test_fall_back_new_york_has_25_distinct_keys():
    h = HourlyPartitions("2024-11-03", end="2024-11-04", timezone=NY)
    seq = h.get_partition_keys(NOW)
    keys = list(seq)
    assert len(keys) == 25 and len(set(keys)) == 25
    assert keys[1:3] == ["2024-11-03T01:00-04:00", "2024-11-03T01:00-05:00"]
    assert [k for k in keys if k[16:]] == keys[1:3]  # only the ambiguous pair has a suffix
    first, second = h.time_window(keys[1]), h.time_window(keys[2])
    assert first.end == second.start or first.end.timestamp() == second.start.timestamp()
    assert first.start.astimezone(UTC) == datetime(2024, 11, 3, 5, tzinfo=UTC)
    assert second.start.astimezone(UTC) == datetime(2024, 11, 3, 6, tzinfo=UTC)
    assert seq.index(keys[2]) == 2 and keys[1] in seq
    assert "2024-11-03T01:00" not in seq
    assert hours(DailyPartitions("2024-11-01", timezone=NY).time_window("2024-11-03")) == 25


def test_windows_tile_time_across_dst():
    h = HourlyPartitions("2024-11-02", end="2024-11-05", timezone=NY)
    wins = [h.time_window(k) for k in h.get_partition_keys(NOW)]
    assert all(hours(w) == 1 for w in wins)
    assert all(a.end.timestamp() == b.start.timestamp() for a, b in zip(wins, wins[1:]))


def test_end_is_exclusive():
    p = DailyPartitions("2024-01-01", end="2024-01-05")
    assert list(p.get_partition_keys(NOW)) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert not p.has_partition_key("2024-01-05", NOW)
    with pytest.raises(ValueError, match="2024-01-05"):
        p.time_window("2024-01-05")
    # an end that is not on the grid keeps only whole windows
    q = DailyPartitions("2024-01-01", end="2024-01-03T12:00")
    assert list(q.get_partition_keys(NOW)) == ["2024-01-01", "2024-01-02"]


@pytest.mark.parametrize("pdef, key, end, after", [
    (DailyPartitions("2024-01-01", "2024-01-02"), "2024-01-01", datetime(2024, 1, 2, tzinfo=UTC), "2024-01-02"),
    (HourlyPartitions("2024-01-01T00:00", "2024-01-01T01:00"), "2024-01-01T00:00", datetime(2024, 1, 1, 1, tzinfo=UTC),
     "2024-01-01T01:00"),
    (WeeklyPartitions("2024-01-01", "2024-01-08"), "2024-01-01", datetime(2024, 1, 8, tzinfo=UTC), "2024-01-08"),
    (MonthlyPartitions("2024-01-01", "2024-02-01", timezone=NY), "2024-01-01", datetime(2024, 2, 1, 5, tzinfo=UTC),
     "2024-02-01"),
    (TimeWindowPartitions("0 6 * * 1-5", "2024-01-01T06:00", "2024-01-02T06:00"), "2024-01-01",
     datetime(2024, 1, 2, 6, tzinfo=UTC), "2024-01-02"),
])
def test_a_definition_with_exactly_one_window(pdef, key, end, after):
    assert list(pdef.get_partition_keys(NOW)) == [key]
    assert pdef.time_window(key).end == end
    assert not pdef.has_partition_key(after, NOW)
    with pytest.raises(ValueError, match="is not a window"):  # the end is not the start of a window
        pdef.time_window(after)


def test_only_ended_windows_exist_and_end_offset():
    at = datetime(2024, 1, 4, 12, tzinfo=UTC)
    assert len(DailyPartitions("2024-01-01").get_partition_keys(at)) == 3
    assert DailyPartitions("2024-01-01").get_partition_keys(datetime(2024, 1, 4, tzinfo=UTC))[-1] == "2024-01-03"
    assert DailyPartitions("2024-01-01", end_offset=1).get_partition_keys(at)[-1] == "2024-01-04"
    assert DailyPartitions("2024-01-01", end_offset=2).get_partition_keys(at)[-1] == "2024-01-05"
    assert list(DailyPartitions("2024-01-01", end_offset=-2).get_partition_keys(at)) == ["2024-01-01"]
    assert len(DailyPartitions("2024-01-01", end_offset=-9).get_partition_keys(at)) == 0
    assert len(DailyPartitions("2024-01-01").get_partition_keys(datetime(2023, 1, 1, tzinfo=UTC))) == 0
    capped = DailyPartitions("2024-01-01", end="2024-01-05", end_offset=10)
    assert len(capped.get_partition_keys(at)) == 4
    p = DailyPartitions("2024-01-01")
    assert p.has_partition_key("2024-01-03", at) and not p.has_partition_key("2024-01-04", at)
    with pytest.raises(ValueError, match="2024-01-04"):
        p.validate_key("2024-01-04", at)
    p.validate_key("2024-01-03", at)


def test_current_time_none_means_now():
    p = DailyPartitions(datetime.now(UTC).date() - timedelta(days=3))
    assert 2 <= len(p.get_partition_keys()) <= 3


def test_cron_grid_weekdays():
    p = TimeWindowPartitions("0 6 * * 1-5", "2024-01-01", timezone="Europe/Berlin")
    keys = p.get_partition_keys(datetime(2024, 1, 16, tzinfo=UTC))
    assert list(keys) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05",
                          "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11", "2024-01-12"]
    w = p.time_window("2024-01-05")  # Friday 06:00 -> Monday 06:00
    assert w.start == datetime(2024, 1, 5, 5, tzinfo=UTC) and w.end == datetime(2024, 1, 8, 5, tzinfo=UTC)
    assert "2024-01-06" not in keys
    with pytest.raises(ValueError, match="2024-01-06"):
        p.time_window("2024-01-06")


def test_generic_cron_grid():
    p = TimeWindowPartitions("0 0,12 * * *", "2024-01-01")
    assert p.fmt == "%Y-%m-%dT%H:%M"
    keys = p.get_partition_keys(datetime(2024, 1, 2, 13, tzinfo=UTC))
    assert list(keys) == ["2024-01-01T00:00", "2024-01-01T12:00", "2024-01-02T00:00"]
    assert keys.index("2024-01-01T12:00") == 1
    assert p.time_window("2024-01-01T12:00").end == datetime(2024, 1, 2, tzinfo=UTC)
    q = TimeWindowPartitions("*/15 * * * *", "2024-11-03T00:00", end="2024-11-03T03:00", timezone=NY)
    ks = list(q.get_partition_keys(NOW))
    assert len(ks) == 16 and len(set(ks)) == 16  # 4 hours of real time, incl. the repeated hour
    assert "2024-11-03T01:45-04:00" in ks and "2024-11-03T01:45-05:00" in ks


def test_time_window_round_trips():
    for p in (HourlyPartitions("2024-10-30", end="2024-11-06", timezone=NY),
              DailyPartitions("2024-01-01", end="2025-01-01", timezone="Australia/Sydney"),
              MonthlyPartitions("2020-01-01", end="2025-01-01", timezone="Asia/Kolkata")):
        keys = p.get_partition_keys(NOW)
        for i, key in enumerate(keys):
            w = p.time_window(key)
            assert w.start.tzinfo is not None
            assert keys.index(key) == i
            assert w.start.strftime(p.fmt) == key[: len(w.start.strftime(p.fmt))]


def test_time_validation_errors():
    with pytest.raises(ValueError, match="timezone"):
        DailyPartitions("2024-01-01", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="cron"):
        TimeWindowPartitions("0 25 * * *", "2024-01-01")
    with pytest.raises(ValueError, match="end"):
        DailyPartitions("2024-01-02", end="2024-01-01")
    with pytest.raises(ValueError, match="end"):
        DailyPartitions("2024-01-02", end="2024-01-02")
    with pytest.raises(ValueError, match="start"):
        DailyPartitions("not a date")
    with pytest.raises(ValueError, match="fmt"):
        DailyPartitions("2024-01-01", fmt="%Y")  # keys would not be distinct
    p = DailyPartitions("2024-01-01")
    for bad in ("2024-1-5", "2024-01-32", "banana", "2023-12-31"):
        with pytest.raises(ValueError, match=bad):
            p.time_window(bad)
        assert bad not in p.get_partition_keys(NOW)


def test_custom_fmt():
    p = HourlyPartitions("2024-01-01", fmt="%Y%m%d%H")
    assert list(p.get_partition_keys(datetime(2024, 1, 1, 2, tzinfo=UTC))) == ["2024010100", "2024010101"]
    assert p.time_window("2024010101").start == datetime(2024, 1, 1, 1, tzinfo=UTC)


def test_keys_in_time_range_inclusive():
    p = DailyPartitions("2024-01-01")
    assert list(p.keys_in_time_range("2024-01-02", "2024-01-04", current_time=NOW)) == [
        "2024-01-02", "2024-01-03", "2024-01-04"]
    assert list(p.keys_in_time_range(date(2024, 1, 2), datetime(2024, 1, 3, 23), current_time=NOW)) == [
        "2024-01-02", "2024-01-03"]
    assert list(p.keys_in_time_range("2024-01-02T00:00:01", "2024-01-03", current_time=NOW)) == ["2024-01-03"]
    # clipped to the existing keys, never before the start
    at = datetime(2024, 1, 4, tzinfo=UTC)
    assert list(p.keys_in_time_range("2023-06-01", "2030-01-01", current_time=at)) == [
        "2024-01-01", "2024-01-02", "2024-01-03"]
    assert len(p.keys_in_time_range("2025-01-01", "2024-01-01", current_time=NOW)) == 0
    # naive bounds are in the partition's timezone
    h = HourlyPartitions("2024-01-01", timezone=NY)
    ks = h.keys_in_time_range("2024-01-02T22:00", "2024-01-02T23:00", current_time=NOW)
    assert list(ks) == ["2024-01-02T22:00", "2024-01-02T23:00"]


def test_non_time_definitions_have_no_time_window():
    s = StaticPartitions(["a", "b"])
    with pytest.raises(TypeError, match="no time dimension"):
        s.time_window("a")
    with pytest.raises(TypeError, match="no time dimension"):
        s.keys_in_time_range("2024-01-01", "2024-01-02")
    assert not s.is_time_based and not DynamicPartitions("x").is_time_based


# --- static / dynamic -----------------------------------------------------------------------


def test_static_partitions():
    s = StaticPartitions(["us", "eu", "asia"])
    keys = s.get_partition_keys()
    assert list(keys) == ["us", "eu", "asia"] and keys.index("asia") == 2
    assert s.has_partition_key("eu") and not s.has_partition_key("mars")
    with pytest.raises(ValueError, match="mars"):
        s.validate_key("mars")
    assert isinstance(s, PartitionsDefinition)


@pytest.mark.parametrize(
    "keys, bad",
    [(["a", "b", "a"], "'a'"), ([], "at least one"), (["a", 3], "3"), (["a|b"], "a|b"),
     (["x=1"], "x=1"), ([""], "''")],
)
def test_static_validation(keys, bad):
    with pytest.raises(ValueError) as exc:
        StaticPartitions(keys)
    assert bad in str(exc.value)


def test_dynamic_partitions():
    d = DynamicPartitions("customers")
    assert d.name == "customers"
    dyn = {"customers": ["acme", "globex", "initech"]}
    keys = d.get_partition_keys(NOW, dyn)
    assert list(keys) == ["acme", "globex", "initech"] and keys.index("initech") == 2
    assert d.has_partition_key("globex", NOW, dyn) and not d.has_partition_key("umbrella", NOW, dyn)
    assert len(d.get_partition_keys(NOW, {})) == 0 and len(d.get_partition_keys()) == 0
    with pytest.raises(ValueError, match="umbrella"):
        d.validate_key("umbrella", NOW, dyn)
    with pytest.raises(ValueError):
        DynamicPartitions("")


# --- multi ----------------------------------------------------------------------------------


@pytest.fixture
def multi():
    return MultiPartitions({
        "date": DailyPartitions("2024-01-01", end="2024-01-04"),
        "region": StaticPartitions(["us", "eu"]),
    })


def test_multi_keys_and_order(multi):
    keys = multi.get_partition_keys(NOW)
    assert list(keys) == [
        "date=2024-01-01|region=us", "date=2024-01-01|region=eu",
        "date=2024-01-02|region=us", "date=2024-01-02|region=eu",
        "date=2024-01-03|region=us", "date=2024-01-03|region=eu",
    ]
    assert list(reversed(keys)) == list(keys)[::-1]
    assert keys.index("date=2024-01-02|region=eu") == 3
    assert "region=eu|date=2024-01-02" not in keys
    assert multi.dimension_names == ["date", "region"] and multi.time_dimension_name == "date"
    assert multi.is_time_based and set(multi.dimensions) == {"date", "region"}
    assert multi.time_window("date=2024-01-02|region=eu") == (
        datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC))


def test_multi_three_dimensions_with_dynamic():
    m = MultiPartitions({"a": StaticPartitions(["1", "2"]), "b": DynamicPartitions("b"),
                         "c": StaticPartitions(["x", "y", "z"])})
    dyn = {"b": ["p", "q"]}
    keys = m.get_partition_keys(NOW, dyn)
    expected = [f"a={a}|b={b}|c={c}" for a in "12" for b in "pq" for c in "xyz"]
    assert list(keys) == expected and len(keys) == 12
    assert [keys[i] for i in range(12)] == expected
    assert list(keys[3:10]) == expected[3:10] and list(keys[10:2:-3]) == expected[10:2:-3]
    assert all(keys.index(k) == i for i, k in enumerate(expected))
    assert not m.is_time_based
    with pytest.raises(TypeError, match="no time dimension"):
        m.time_window(expected[0])
    assert len(m.get_partition_keys(NOW, {})) == 0


def test_multi_key_text_and_multi_partition_key(multi):
    k = MultiPartitionKey({"date": "2024-01-01", "region": "us"})
    assert k == "date=2024-01-01|region=us" and isinstance(k, str)
    assert k.keys_by_dimension == {"date": "2024-01-01", "region": "us"}
    assert list(MultiPartitionKey("region=eu|date=2024-01-02").keys_by_dimension) == ["region", "date"]
    assert multi.key_for({"region": "eu", "date": "2024-01-02"}) == "date=2024-01-02|region=eu"
    parsed = multi.parse_key("region=eu|date=2024-01-02")
    assert isinstance(parsed, MultiPartitionKey) and parsed == "date=2024-01-02|region=eu"
    assert list(parsed.keys_by_dimension) == ["date", "region"]
    for bad in ("date2024-01-01", "date=2024-01-01|date=2024-01-02", "=x|region=us", "date=|region=us"):
        with pytest.raises(ValueError, match="malformed"):
            MultiPartitionKey(bad)
    with pytest.raises(ValueError, match="planet"):
        multi.key_for({"date": "2024-01-01", "region": "us", "planet": "mars"})
    with pytest.raises(ValueError, match="region"):
        multi.key_for({"date": "2024-01-01"})


def test_multi_validate_key_names_dimension(multi):
    multi.validate_key("date=2024-01-01|region=us", NOW)
    with pytest.raises(ValueError, match="'mars'.*'region'"):
        multi.validate_key("date=2024-01-01|region=mars", NOW)
    with pytest.raises(ValueError, match="date"):
        multi.validate_key("date=2024-02-01|region=us", NOW)
    assert multi.has_partition_key("date=2024-01-03|region=eu", NOW)
    assert not multi.has_partition_key("date=2024-01-04|region=eu", NOW)


def test_multi_validation():
    d1, d2 = DailyPartitions("2024-01-01"), HourlyPartitions("2024-01-01")
    s = StaticPartitions(["a"])
    with pytest.raises(ValueError, match="one time-based"):
        MultiPartitions({"d": d1, "h": d2})
    with pytest.raises(ValueError, match="nest"):
        MultiPartitions({"m": MultiPartitions({"s": s}), "d": d1})
    with pytest.raises(ValueError):
        MultiPartitions({})
    with pytest.raises(ValueError, match="a|b"):
        MultiPartitions({"a|b": s})
    assert list(MultiPartitions({"s": s}).get_partition_keys()) == ["s=a"]


def test_multi_keys_in_time_range(multi):
    ks = multi.keys_in_time_range("2024-01-02", "2024-01-03", current_time=NOW)
    assert list(ks) == ["date=2024-01-02|region=us", "date=2024-01-02|region=eu",
                        "date=2024-01-03|region=us", "date=2024-01-03|region=eu"]


# --- key ranges -----------------------------------------------------------------------------


def test_single_range():
    p = DailyPartitions("2024-01-01")
    r = PartitionKeyRange.single("2024-01-03", "2024-01-06")
    assert list(r.resolve(p, NOW)) == ["2024-01-03", "2024-01-04", "2024-01-05", "2024-01-06"]
    assert list(PartitionKeyRange.single("2024-01-03", "2024-01-03").resolve(p, NOW)) == ["2024-01-03"]
    s = StaticPartitions(["us", "eu", "asia", "af"])
    assert list(PartitionKeyRange.single("eu", "af").resolve(s)) == ["eu", "asia", "af"]


def test_single_range_errors():
    p = DailyPartitions("2024-01-01")
    with pytest.raises(ValueError, match="2023-12-25"):
        PartitionKeyRange.single("2023-12-25", "2024-01-02").resolve(p, NOW)
    with pytest.raises(ValueError, match="2099-01-01"):
        PartitionKeyRange.single("2024-01-01", "2099-01-01").resolve(p, NOW)
    with pytest.raises(ValueError, match="2024-01-05.*2024-01-02"):
        PartitionKeyRange.single("2024-01-05", "2024-01-02").resolve(p, NOW)
    with pytest.raises(ValueError):
        PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-02")}).resolve(p, NOW)


def test_single_range_on_multi(multi):
    r = PartitionKeyRange.single("date=2024-01-01|region=eu", "date=2024-01-02|region=eu")
    assert list(r.resolve(multi, NOW)) == [
        "date=2024-01-01|region=eu", "date=2024-01-02|region=us", "date=2024-01-02|region=eu"]


def test_multi_range_tuples_lists_and_omitted(multi):
    r = PartitionKeyRange.multi({"date": ("2024-01-02", "2024-01-03"), "region": ["eu"]})
    assert list(r.resolve(multi, NOW)) == ["date=2024-01-02|region=eu", "date=2024-01-03|region=eu"]
    r = PartitionKeyRange.multi({"region": ["eu", "us", "eu"]})  # given order, de-duplicated
    assert list(r.resolve(multi, NOW)) == [
        "date=2024-01-01|region=eu", "date=2024-01-01|region=us",
        "date=2024-01-02|region=eu", "date=2024-01-02|region=us",
        "date=2024-01-03|region=eu", "date=2024-01-03|region=us"]
    r = PartitionKeyRange.multi({"date": ("2024-01-03", "2024-01-03")})
    seq = r.resolve(multi, NOW)
    assert list(seq) == ["date=2024-01-03|region=us", "date=2024-01-03|region=eu"]
    assert seq.index("date=2024-01-03|region=eu") == 1 and "date=2024-01-01|region=eu" not in seq


def test_multi_range_errors(multi):
    with pytest.raises(ValueError, match="'mars'.*'region'"):
        PartitionKeyRange.multi({"region": ["us", "mars"]}).resolve(multi, NOW)
    with pytest.raises(ValueError, match="2024-01-09.*'date'"):
        PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-09")}).resolve(multi, NOW)
    with pytest.raises(ValueError, match="2024-01-03.*2024-01-01"):
        PartitionKeyRange.multi({"date": ("2024-01-03", "2024-01-01")}).resolve(multi, NOW)
    with pytest.raises(ValueError, match="planet"):
        PartitionKeyRange.multi({"planet": ["mars"]}).resolve(multi, NOW)
    with pytest.raises(ValueError):
        PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-02", "2024-01-03")})
    with pytest.raises(ValueError):
        PartitionKeyRange.multi({"region": []})


def test_key_range_dict_round_trip():
    single = PartitionKeyRange.single("a", "b")
    assert single.to_dict() == {"kind": "single", "from": "a", "to": "b"}
    multi = PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-07"), "region": ["us", "eu"]})
    assert multi.to_dict() == {"kind": "multi", "dimensions": {
        "date": {"from": "2024-01-01", "to": "2024-01-07"}, "region": ["us", "eu"]}}
    for r in (single, multi):
        assert PartitionKeyRange.from_dict(r.to_dict()) == r
    assert PartitionKeyRange.from_dict({"from": "a", "to": "b"}) == single
    assert PartitionKeyRange.from_dict({"dimensions": multi.to_dict()["dimensions"]}) == multi
    with pytest.raises(ValueError):
        PartitionKeyRange.from_dict({"kind": "weird"})


# --- sequences, pickling, laziness ----------------------------------------------------------


def test_key_sequence_from_list_and_views():
    seq = KeySequence.from_list(["a", "b", "c", "b", "d"])
    assert list(seq) == ["a", "b", "c", "d"] and len(seq) == 4
    assert seq[-1] == "d" and seq.index("c") == 2 and "z" not in seq
    assert list(seq[1:3]) == ["b", "c"] and list(seq[::-1]) == ["d", "c", "b", "a"]
    assert list(seq[::-1][1:3]) == ["c", "b"] and seq[::-1].index("a") == 3
    assert list(reversed(seq[1:])) == ["d", "c", "b"]
    assert seq[1:][::-1][0] == "d"
    with pytest.raises(ValueError, match="'z'"):
        seq.index("z")
    with pytest.raises(IndexError):
        seq[4]
    assert seq == ["a", "b", "c", "d"] and len(repr(seq)) < 200


def test_definitions_pickle_and_compare():
    defs = [DailyPartitions("2024-01-01", timezone=NY), TimeWindowPartitions("0 0,12 * * *", "2024-12-01"),
            StaticPartitions(["a", "b"]), DynamicPartitions("c"),
            MultiPartitions({"d": DailyPartitions("2024-01-01"), "r": StaticPartitions(["a", "b"])})]
    dyn = {"c": ["x"]}
    for p in defs:
        q = pickle.loads(pickle.dumps(p))
        assert q == p and hash(q) == hash(p)
        assert list(q.get_partition_keys(NOW, dyn)) == list(p.get_partition_keys(NOW, dyn))
    assert DailyPartitions("2024-01-01") != DailyPartitions("2024-01-02")


@pytest.fixture(scope="module")
def million():
    daily = DailyPartitions("2017-01-01", end="2024-07-03")  # 2740 days
    regions = StaticPartitions([f"r{i:03d}" for i in range(365)])
    return MultiPartitions({"date": daily, "region": regions})


def test_million_keys_are_lazy(million):
    keys = million.get_partition_keys(NOW)
    assert len(keys) == 2740 * 365 == 1_000_100
    assert keys[0] == "date=2017-01-01|region=r000"
    assert keys[-1] == "date=2024-07-02|region=r364"
    assert keys[500_000] == "date=2020-10-01|region=r315"
    assert keys.index("date=2020-10-01|region=r315") == 500_000
    assert "date=2020-10-01|region=r999" not in keys
    tail = keys[999_990:]
    assert len(tail) == 110 and tail[0] == keys[999_990] and tail.index(keys[-1]) == 109
    rev = keys[::-1]
    assert rev[0] == keys[-1] and rev.index(keys[0]) == 1_000_099
    assert next(iter(reversed(keys))) == keys[-1]
    assert list(keys[::100_000]) == [keys[i] for i in range(0, 1_000_100, 100_000)]


def test_million_keys_full_iteration(million):
    keys = million.get_partition_keys(NOW)
    count, last = 0, None
    for count, last in enumerate(keys, 1):  # noqa: B007 - counting by iterating is the point
        pass
    assert count == 1_000_100 and last == keys[-1]
    assert sum(1 for _ in reversed(keys)) == 1_000_100
    window = keys[365 * 1096 : 365 * 1097]
    assert list(window) == [f"date=2020-01-02|region=r{i:03d}" for i in range(365)]


def test_million_keys_allocate_little_memory(million):
    tracemalloc.start()
    try:
        keys = million.get_partition_keys(NOW)
        n = len(keys)
        pos = keys.index("date=2023-03-04|region=r123")
        key = keys[pos]
        rng = PartitionKeyRange.multi({"date": ("2018-01-01", "2023-12-31"), "region": ["r001", "r200"]})
        sub = rng.resolve(million, NOW)
        sub_len, sub_key = len(sub), sub[1001]
        single = PartitionKeyRange.single(keys[10], keys[900_000]).resolve(million, NOW)
        single_len = len(single)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 1_000_100 and key == "date=2023-03-04|region=r123"
    assert sub_len == 2191 * 2 and sub_key == "date=2019-05-16|region=r200"
    assert single_len == 899_991
    assert peak < 5 * 1024 * 1024
