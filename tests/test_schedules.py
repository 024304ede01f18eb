"""Schedule math, pure: ticks across DST in two timezones, missed-tick recovery, overlap, tick keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import anachron as ac
from anachron.schedules import overlap_allows, plan_ticks, run_key, schedule_of_key

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(ticks, tz: str) -> list[str]:
    from zoneinfo import ZoneInfo

    return [t.astimezone(ZoneInfo(tz)).strftime("%m-%d %H:%M%z") for t in ticks]


# -- ticks across DST, as classic cron does it ------------------------------------------------------
def test_a_daily_time_inside_the_spring_gap_runs_right_after_it():
    paris = ac.Schedule("30 2 * * *", timezone="Europe/Paris")  # 02:30 does not exist on 2024-03-31
    ticks = list(paris.ticks(at("2024-03-30T00:00:00+00:00"), at("2024-04-02T00:00:00+00:00")))
    assert local(ticks, "Europe/Paris") == ["03-30 02:30+0100", "03-31 03:00+0200", "04-01 02:30+0200"]
    ny = ac.Schedule("30 2 * * *", timezone="America/New_York")  # 02:30 does not exist on 2024-03-10
    ticks = list(ny.ticks(at("2024-03-09T00:00:00+00:00"), at("2024-03-12T00:00:00+00:00")))
    assert local(ticks, "America/New_York") == ["03-09 02:30-0500", "03-10 03:00-0400", "03-11 02:30-0400"]


def test_a_fixed_time_in_the_repeated_hour_runs_once_a_wildcard_hour_twice():
    paris = ac.Schedule("30 2 * * *", timezone="Europe/Paris")  # 02:30 happens twice on 2024-10-27
    ticks = list(paris.ticks(at("2024-10-26T12:00:00+00:00"), at("2024-10-28T12:00:00+00:00")))
    assert local(ticks, "Europe/Paris") == ["10-27 02:30+0200", "10-28 02:30+0100"]
    ny = ac.Schedule("30 * * * *", timezone="America/New_York")  # 01:30 twice on 2024-11-03
    ticks = list(ny.ticks(at("2024-11-03T04:00:00+00:00"), at("2024-11-03T08:00:00+00:00")))
    assert local(ticks, "America/New_York") == ["11-03 00:30-0400", "11-03 01:30-0400", "11-03 01:30-0500",
                                               "11-03 02:30-0500"]
    assert len(set(ticks)) == 4  # distinct instants: two runs, neither lost


def test_next_and_latest_tick():
    s = ac.Schedule("*/15 * * * *")
    assert s.next_tick(at("2024-01-01T10:00:00+00:00")) == at("2024-01-01T10:15:00+00:00")
    assert s.next_tick(at("2024-01-01T10:07:30.5+00:00")) == at("2024-01-01T10:15:00+00:00")
    assert s.latest_tick(at("2024-01-01T10:15:00+00:00")) == at("2024-01-01T10:15:00+00:00")
    assert s.latest_tick(at("2024-01-01T10:14:59.9+00:00")) == at("2024-01-01T10:00:00+00:00")


# -- which ticks run now ----------------------------------------------------------------------------
HALF_HOURLY = "*/30 * * * *"
NOW = at("2024-01-01T03:00:10+00:00")


def test_a_new_schedule_starts_from_now():
    plan = plan_ticks(ac.Schedule(HALF_HOURLY), None, NOW)
    assert plan.fire == () and plan.cursor == NOW and plan.due_again == at("2024-01-01T03:30:00+00:00")


def test_the_tick_on_time_runs_under_every_policy():
    for policy in ("all", "last", "none"):
        plan = plan_ticks(ac.Schedule(HALF_HOURLY, recover_missed=policy), at("2024-01-01T02:30:00+00:00"), NOW)
        assert plan.fire == (at("2024-01-01T03:00:00+00:00"),) and plan.skipped is None, policy
        assert plan.cursor == at("2024-01-01T03:00:00+00:00")


def test_nothing_due_leaves_the_cursor():
    cursor = at("2024-01-01T03:00:00+00:00")
    plan = plan_ticks(ac.Schedule(HALF_HOURLY), cursor, NOW)
    assert plan.fire == () and plan.cursor == cursor and plan.due_again == at("2024-01-01T03:30:00+00:00")


def test_missed_ticks_all_oldest_first():
    plan = plan_ticks(ac.Schedule(HALF_HOURLY, recover_missed="all"), at("2024-01-01T00:00:00+00:00"), NOW)
    assert [t.strftime("%H:%M") for t in plan.fire] == ["00:30", "01:00", "01:30", "02:00", "02:30", "03:00"]
    assert plan.skipped is None and plan.cursor == at("2024-01-01T03:00:00+00:00")


def test_missed_ticks_all_in_bounded_evaluations():
    cursor = at("2023-12-01T00:00:00+00:00")  # a month down: 31 × 48 + 6 = 1,494 ticks
    plan = plan_ticks(ac.Schedule(HALF_HOURLY), cursor, NOW, limit=1000)
    assert len(plan.fire) == 1000 and plan.due_again == NOW  # the rest at once, in the next evaluation
    again = plan_ticks(ac.Schedule(HALF_HOURLY), plan.cursor, NOW, limit=1000)
    assert len(again.fire) == 494 and again.fire[0] == plan.fire[-1] + timedelta(minutes=30)
    assert again.cursor == at("2024-01-01T03:00:00+00:00")


def test_missed_ticks_last_runs_only_the_latest():
    plan = plan_ticks(ac.Schedule(HALF_HOURLY, recover_missed="last"), at("2024-01-01T00:00:00+00:00"),
                      NOW + timedelta(minutes=20))
    assert plan.fire == (at("2024-01-01T03:00:00+00:00"),)  # 20 minutes late: still the one to run
    assert plan.skipped == (at("2024-01-01T00:30:00+00:00"), at("2024-01-01T02:30:00+00:00"))


def test_missed_ticks_none_runs_only_a_tick_on_time():
    s = ac.Schedule(HALF_HOURLY, recover_missed="none")
    on_time = plan_ticks(s, at("2024-01-01T00:00:00+00:00"), NOW)
    assert on_time.fire == (at("2024-01-01T03:00:00+00:00"),)
    assert on_time.skipped == (at("2024-01-01T00:30:00+00:00"), at("2024-01-01T02:30:00+00:00"))
    late = plan_ticks(s, at("2024-01-01T00:00:00+00:00"), NOW + timedelta(minutes=20))
    assert late.fire == () and late.skipped == (at("2024-01-01T00:30:00+00:00"), at("2024-01-01T03:00:00+00:00"))
    assert late.cursor == at("2024-01-01T03:00:00+00:00")


def test_overlap_policies():
    assert overlap_allows("skip", previous_active=False)
    assert not overlap_allows("skip", previous_active=True)
    assert overlap_allows("buffer", previous_active=True) and overlap_allows("allow", previous_active=True)


def test_tick_run_keys_name_their_schedule():
    tick = at("2024-01-01T00:00:00+00:00")
    assert run_key("schedule", tick) == "schedule:schedule:2024-01-01T00:00:00+00:00"
    assert schedule_of_key(run_key("nightly:eu", tick)) == "nightly:eu"
    assert schedule_of_key("backfill:abc:2024-01-01") is None and schedule_of_key(None) is None
    assert schedule_of_key("schedule:x") is None


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"cron": "* * * * * *"}, "Schedule.cron"), ({"cron": "@reboot"}, "Schedule.cron"),
    ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"cron": "0 * * * *", "recover_missed": "some"}, "recover_missed"),
    ({"cron": "0 * * * *", "overlap": "queue"}, "overlap"), ({"cron": "0 * * * *", "id": ""}, "Schedule.id"),
])
def test_bad_schedules_are_refused_naming_the_field(kwargs, named):
    with pytest.raises(ValueError, match=named):
        ac.Schedule(**kwargs)
