"""Partition mappings (SPEC §8), pure: which upstream key positions a downstream window needs, and back.

Every mapping is checked both ways — ``up`` (downstream positions → upstream) and ``down`` (upstream → the
downstream positions that need them) — against the definition of the mapping written out key by key.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import anachron as ac
from anachron.index_ranges import RangeSet
from anachron.mapping_bounds import Side
from anachron.mappings import PreviousKeyMapping, infer_mapping, mapping_from_dict, past_mapping

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
NY = "America/New_York"


def bind(mapping, up, down):
    return mapping.bind(Side.of(up, NOW, {}), Side.of(down, NOW, {}), NOW, {})


def keys_of(pdef):
    return pdef.get_partition_keys(NOW)


def mapped(mapping, up, down, key):
    """The upstream keys ``key`` of ``down`` needs."""
    b, dk, uk = bind(mapping, up, down), keys_of(down), keys_of(up)
    i = dk.index(key)
    return [uk[p] for p in b.up(i, i + 1)]


def needing(mapping, up, down, key):
    """The downstream keys that need ``key`` of ``up``."""
    b, dk, uk = bind(mapping, up, down), keys_of(down), keys_of(up)
    i = uk.index(key)
    return [dk[p] for p in b.down(i, i + 1)]


def assert_inverse(mapping, up, down, sample=None):
    """``down`` is exactly the inverse of ``up``, key by key, over the downstream keys (or a sample)."""
    b = bind(mapping, up, down)
    n_down, n_up = len(keys_of(down)), len(keys_of(up))
    positions = range(n_down) if sample is None else sample
    needed = {i: set(b.up(i, i + 1)) for i in positions}
    for j in {p for ps in needed.values() for p in ps}:
        expect = {i for i, ps in needed.items() if j in ps}
        assert expect <= set(b.down(j, j + 1)), (j, expect)
    # a window of keys needs the union of what each key needs
    lo, hi = min(positions), max(positions) + 1
    assert set(b.up(lo, hi)) == set().union(*(set(b.up(i, i + 1)) for i in range(lo, hi)))
    assert n_up >= 0


# -- time windows --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("day", "hours"), [("2024-03-10", 23), ("2024-11-03", 25), ("2024-05-01", 24)])
def test_a_daily_key_needs_its_23_24_or_25_hours_in_its_timezone(day, hours):
    hourly = ac.HourlyPartitions("2024-01-01", timezone=NY)
    daily = ac.DailyPartitions("2024-01-01", timezone=NY)
    got = mapped(ac.TimeWindowMapping(), hourly, daily, day)
    assert len(got) == hours and len(set(got)) == hours
    assert got[0] == f"{day}T00:00" and got[-1] == f"{day}T23:00"
    if hours == 25:  # the repeated hour, twice, with its offsets
        assert f"{day}T01:00-04:00" in got and f"{day}T01:00-05:00" in got
    for hour in got:
        assert needing(ac.TimeWindowMapping(), hourly, daily, hour) == [day]


def test_timezones_differ_between_upstream_and_downstream():
    hourly_utc = ac.HourlyPartitions("2024-01-01")
    daily_ny = ac.DailyPartitions("2024-01-01", timezone=NY)
    got = mapped(ac.TimeWindowMapping(), hourly_utc, daily_ny, "2024-01-15")  # EST: UTC-5
    assert got[0] == "2024-01-15T05:00" and got[-1] == "2024-01-16T04:00" and len(got) == 24
    assert len(mapped(ac.TimeWindowMapping(), hourly_utc, daily_ny, "2024-03-10")) == 23
    assert needing(ac.TimeWindowMapping(), hourly_utc, daily_ny, "2024-01-16T04:00") == ["2024-01-15"]
    assert needing(ac.TimeWindowMapping(), hourly_utc, daily_ny, "2024-01-16T05:00") == ["2024-01-16"]
    # daily in UTC under daily in New York: every UTC day the NY day overlaps (two of them)
    daily_utc = ac.DailyPartitions("2024-01-01")
    assert mapped(ac.TimeWindowMapping(), daily_utc, daily_ny, "2024-01-15") == ["2024-01-15", "2024-01-16"]
    assert needing(ac.TimeWindowMapping(), daily_utc, daily_ny, "2024-01-16") == ["2024-01-15", "2024-01-16"]
    assert_inverse(ac.TimeWindowMapping(), hourly_utc, daily_ny, range(60, 80))


def test_daily_to_weekly_and_daily_to_hourly():
    daily, weekly = ac.DailyPartitions("2024-01-01"), ac.WeeklyPartitions("2024-01-01")
    week = mapped(ac.TimeWindowMapping(), daily, weekly, "2024-03-04")
    assert week == [f"2024-03-{d:02d}" for d in range(4, 11)]
    assert needing(ac.TimeWindowMapping(), daily, weekly, "2024-03-10") == ["2024-03-04"]
    hourly = ac.HourlyPartitions("2024-01-01")
    assert mapped(ac.TimeWindowMapping(), daily, hourly, "2024-03-05T17:00") == ["2024-03-05"]
    assert len(needing(ac.TimeWindowMapping(), daily, hourly, "2024-03-05")) == 24
    assert_inverse(ac.TimeWindowMapping(), daily, weekly)
    assert_inverse(ac.TimeWindowMapping(), daily, hourly, range(1000, 1100))


def test_offsets_count_upstream_windows():
    daily = ac.DailyPartitions("2024-01-01")
    assert mapped(ac.TimeWindowMapping(start_offset=-1), daily, daily, "2024-01-05") == ["2024-01-04", "2024-01-05"]
    assert mapped(ac.TimeWindowMapping(-1, -1), daily, daily, "2024-01-05") == ["2024-01-04"]
    assert mapped(ac.TimeWindowMapping(0, 1), daily, daily, "2024-01-05") == ["2024-01-05", "2024-01-06"]
    assert mapped(ac.TimeWindowMapping(-1), daily, daily, "2024-01-01") == ["2024-01-01"]  # nothing before start
    assert needing(ac.TimeWindowMapping(-1), daily, daily, "2024-01-05") == ["2024-01-05", "2024-01-06"]
    hourly = ac.HourlyPartitions("2024-01-01")
    got = mapped(ac.TimeWindowMapping(-24, 0), hourly, daily, "2024-01-05")  # the day and the 24 hours before
    assert got[0] == "2024-01-04T00:00" and len(got) == 48
    for mapping in (ac.TimeWindowMapping(-2, 0), ac.TimeWindowMapping(0, 3), ac.TimeWindowMapping(-3, -1)):
        assert_inverse(mapping, daily, daily, range(0, 40))
        assert_inverse(mapping, hourly, daily, range(0, 20))
    with pytest.raises(ValueError, match="start_offset"):
        ac.TimeWindowMapping(1, 0)
    with pytest.raises(ValueError, match="end_offset: must be an integer"):
        ac.TimeWindowMapping(0, 1.5)


def test_a_window_of_keys_maps_to_one_range_without_listing_keys(monkeypatch):
    hourly = ac.HourlyPartitions("1900-01-01")  # over a million hours
    yearly = ac.TimeWindowPartitions("0 0 1 1 *", "1900-01-01")
    n_hours, n_years = len(keys_of(hourly)), len(keys_of(yearly))
    b = bind(ac.TimeWindowMapping(), hourly, yearly)

    def no_keys(*args):
        raise AssertionError("a mapping built a key")

    monkeypatch.setattr(ac.TimeWindowPartitions, "_key_at", no_keys)  # positions only: no key text is made
    whole, back = b.up(0, n_years), b.down(0, n_hours)
    assert n_hours > 1_000_000 and len(whole.ranges) == 1 and len(back.ranges) == 1
    year_end = yearly.boundary(n_years)  # the hours of the unfinished year are needed by no yearly key yet
    assert whole == RangeSet.span(0, hourly.window_positions(year_end, year_end)[0])
    assert back == RangeSet.span(0, n_years)


# -- identity, all, last, static -------------------------------------------------------------------------------
def test_identity_on_the_same_grid_shifts_by_the_start():
    early, late = ac.DailyPartitions("2023-12-01"), ac.DailyPartitions("2024-01-01")
    assert mapped(ac.IdentityMapping(), early, late, "2024-01-03") == ["2024-01-03"]
    assert mapped(ac.IdentityMapping(), late, early, "2023-12-20") == []
    assert needing(ac.IdentityMapping(), early, late, "2023-12-20") == []
    assert needing(ac.IdentityMapping(), late, early, "2024-02-01") == ["2024-02-01"]
    with pytest.raises(ValueError, match="same form"):
        ac.IdentityMapping().check(ac.HourlyPartitions("2024-01-01"), late)
    with pytest.raises(ValueError, match="partitions on both sides"):
        ac.IdentityMapping().check(None, late)


def test_identity_and_static_match_static_keys_by_text():
    up, down = ac.StaticPartitions(["us", "eu", "asia"]), ac.StaticPartitions(["eu", "us", "mars"])
    assert mapped(ac.IdentityMapping(), up, down, "us") == ["us"]
    assert mapped(ac.IdentityMapping(), up, down, "mars") == []
    assert needing(ac.IdentityMapping(), up, down, "asia") == []
    regions = ac.StaticPartitions(["emea", "amer"])
    countries = ac.StaticPartitions(["fr", "de", "us", "ca"])
    static = ac.StaticMapping({"emea": ["fr", "de"], "amer": ["us", "ca"]})
    static.check(countries, regions)
    assert mapped(static, countries, regions, "emea") == ["fr", "de"]
    assert needing(static, countries, regions, "ca") == ["amer"]
    with pytest.raises(ValueError, match="'xx' .* not a key of the upstream"):
        ac.StaticMapping({"emea": ["xx"]}).check(countries, regions)
    with pytest.raises(ValueError, match="'apac' is not a key of the downstream"):
        ac.StaticMapping({"apac": ["fr"]}).check(countries, regions)
    with pytest.raises(ValueError, match="static or dynamic keys"):
        static.check(ac.DailyPartitions("2024-01-01"), regions)


def test_all_and_last_partitions():
    daily, static = ac.DailyPartitions("2024-01-01", "2024-01-11"), ac.StaticPartitions(["a", "b"])
    assert len(mapped(ac.AllPartitionsMapping(), daily, static, "a")) == 10
    assert needing(ac.AllPartitionsMapping(), daily, static, "2024-01-03") == ["a", "b"]
    assert mapped(ac.LastPartitionMapping(), daily, static, "b") == ["2024-01-10"]
    assert needing(ac.LastPartitionMapping(), daily, static, "2024-01-10") == ["a", "b"]
    assert needing(ac.LastPartitionMapping(), daily, static, "2024-01-09") == []
    with pytest.raises(ValueError, match="upstream with partitions"):
        ac.LastPartitionMapping().check(None, static)


# -- multi-partitions -------------------------------------------------------------------------------------------
DAYS = ac.DailyPartitions("2024-01-01", "2024-02-01")
REGIONS = ac.StaticPartitions(["us", "eu", "asia"])
GRID = ac.MultiPartitions({"date": DAYS, "region": REGIONS})


def test_multi_to_multi_maps_same_named_dimensions_by_their_own_rule():
    hours = ac.MultiPartitions({"region": REGIONS, "date": ac.HourlyPartitions("2024-01-01", "2024-02-01")})
    got = mapped(infer_mapping(hours, GRID), hours, GRID, "date=2024-01-05|region=eu")
    assert len(got) == 24 and all(k.startswith("region=eu|date=2024-01-05T") for k in got)
    assert needing(infer_mapping(hours, GRID), hours, GRID, "region=asia|date=2024-01-05T13:00") == \
        ["date=2024-01-05|region=asia"]
    assert_inverse(infer_mapping(hours, GRID), hours, GRID, range(0, 30))


def test_single_and_multi_sides_match_by_definition_or_time_and_others_need_all_keys():
    # a daily summary of every region's day
    got = mapped(infer_mapping(GRID, DAYS), GRID, DAYS, "2024-01-07")
    assert got == ["date=2024-01-07|region=us", "date=2024-01-07|region=eu", "date=2024-01-07|region=asia"]
    assert needing(infer_mapping(GRID, DAYS), GRID, DAYS, "date=2024-01-07|region=eu") == ["2024-01-07"]
    # per region, the hours of the day
    hourly = ac.HourlyPartitions("2024-01-01", "2024-02-01")
    assert len(mapped(infer_mapping(hourly, GRID), hourly, GRID, "date=2024-01-07|region=eu")) == 24
    # per region, the static list: same definition
    assert mapped(infer_mapping(REGIONS, GRID), REGIONS, GRID, "date=2024-01-07|region=eu") == ["eu"]
    # nothing matches: every upstream key
    other = ac.StaticPartitions(["x", "y"])
    assert mapped(infer_mapping(other, GRID), other, GRID, "date=2024-01-07|region=eu") == ["x", "y"]


def test_explicit_dimension_mappings_and_their_errors():
    weekly_grid = ac.MultiPartitions({"date": ac.WeeklyPartitions("2024-01-01", "2024-02-05"),
                                      "region": ac.StaticPartitions(["emea", "world"])})
    mapping = ac.DimensionMapping({"date": ac.TimeWindowMapping(),
                                   "region": ac.StaticMapping({"emea": ["eu"], "world": ["us", "eu", "asia"]})})
    mapping.check(GRID, weekly_grid)
    got = mapped(mapping, GRID, weekly_grid, "date=2024-01-08|region=emea")
    assert got == [f"date=2024-01-{d:02d}|region=eu" for d in range(8, 15)]
    assert needing(mapping, GRID, weekly_grid, "date=2024-01-09|region=eu") == \
        ["date=2024-01-08|region=emea", "date=2024-01-08|region=world"]
    with pytest.raises(ValueError, match="'hour' is not a dimension of the upstream"):
        ac.DimensionMapping({"hour": ac.IdentityMapping()}).check(GRID, weekly_grid)
    with pytest.raises(ValueError, match=r"dimension 'region': TimeWindowMapping\(\) needs time-window partitions"):
        ac.DimensionMapping({"region": ac.TimeWindowMapping()}).check(GRID, weekly_grid)
    with pytest.raises(ValueError, match="multi-partitions on at least one side"):
        ac.DimensionMapping({}).check(DAYS, DAYS)
    with pytest.raises(ValueError, match="name one dimension"):
        ac.DimensionMapping({"date": ac.TimeWindowMapping(), "region": ac.IdentityMapping()}).check(DAYS, GRID)


# -- inference, depends_on_past, JSON ---------------------------------------------------------------------------
def test_inference_follows_the_table_and_refuses_what_it_cannot_infer():
    daily, hourly = ac.DailyPartitions("2024-01-01"), ac.HourlyPartitions("2024-01-01")
    assert infer_mapping(daily, daily) == ac.IdentityMapping()
    assert infer_mapping(hourly, daily) == ac.TimeWindowMapping()
    assert infer_mapping(REGIONS, ac.StaticPartitions(["us"])) == ac.IdentityMapping()
    assert infer_mapping(GRID, daily) == ac.DimensionMapping()
    assert infer_mapping(None, daily) == ac.AllPartitionsMapping()
    assert infer_mapping(daily, None) == ac.AllPartitionsMapping()
    with pytest.raises(ValueError, match=r"inferred from StaticPartitions.* to DailyPartitions.*AllPartitionsMapping"):
        infer_mapping(REGIONS, daily)
    # an unpartitioned side is one position
    b = bind(ac.AllPartitionsMapping(), None, daily)
    assert b.up(3, 4) == RangeSet.span(0, 1) and b.down(0, 1) == RangeSet.span(0, len(keys_of(daily)))
    assert bind(ac.AllPartitionsMapping(), daily, None).up(0, 1) == RangeSet.span(0, len(keys_of(daily)))


def test_depends_on_past_is_the_key_before():
    daily = ac.DailyPartitions("2024-01-01")
    assert mapped(past_mapping(daily), daily, daily, "2024-01-05") == ["2024-01-04"]
    assert mapped(past_mapping(daily), daily, daily, "2024-01-01") == []
    assert mapped(past_mapping(GRID), GRID, GRID, "date=2024-01-05|region=eu") == ["date=2024-01-04|region=eu"]
    assert past_mapping(REGIONS) == PreviousKeyMapping()
    assert mapped(past_mapping(REGIONS), REGIONS, REGIONS, "eu") == ["us"]


@pytest.mark.parametrize("mapping", [
    ac.TimeWindowMapping(), ac.TimeWindowMapping(-2, 1), ac.IdentityMapping(), ac.AllPartitionsMapping(),
    ac.LastPartitionMapping(), ac.StaticMapping({"a": ["b", "c"]}), PreviousKeyMapping(),
    ac.DimensionMapping({"date": ac.TimeWindowMapping(-1), "region": ac.StaticMapping({"x": "y"})}),
])
def test_mappings_round_trip_through_json(mapping):
    import json

    again = mapping_from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert again == mapping and hash(again) == hash(mapping) and repr(again) == repr(mapping)


def test_unknown_mapping_json_is_refused():
    with pytest.raises(ValueError, match="unknown kind 'nope'"):
        mapping_from_dict({"kind": "nope"})
    with pytest.raises(ValueError, match="unexpected fields"):
        mapping_from_dict({"kind": "identity", "extra": 1})
