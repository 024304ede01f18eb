"""A data graph of 21 workflows for the web UI's graph tests (tests/test_ui_graph.py, tests/test_ui_browser_graph.py)
and screenshots: hourly events → daily summary → weekly report → a yearly deck, beside a small warehouse (orders,
revenue with exchange rates, a funnel, a date × region mart, a monthly close), a ``depends_on_past`` running total,
and two workflows that depend on nothing.

Every run sleeps ``$UI_GRAPH_SLEEP`` seconds (default 0) and fails when ``workflow/key`` is listed in
``$UI_GRAPH_FAIL`` (comma-separated).
"""

from __future__ import annotations

import os
import time

import anachron as ac

YEAR = ("2024-01-01", "2025-01-01")
HOURS = ac.HourlyPartitions(*YEAR)
DAYS = ac.DailyPartitions(*YEAR)
WEEKS = ac.WeeklyPartitions("2024-01-01", "2024-12-30")
MONTHS = ac.MonthlyPartitions(*YEAR)
REGIONS = ac.StaticPartitions(["us", "eu", "apac"])


def work() -> None:
    ctx = ac.context()
    keys = ",".join(ctx.partition_keys) or "-"
    if f"{ctx.workflow}/{keys}" in os.environ.get("UI_GRAPH_FAIL", "").split(","):
        raise RuntimeError(f"bad input for {keys}")
    time.sleep(float(os.environ.get("UI_GRAPH_SLEEP", "0")))
    ctx.log.info("built %s", keys)


# -- events: hourly → daily → weekly → yearly ------------------------------------------------------------
@ac.workflow(partitions=HOURS)
def raw_events():
    work()


@ac.workflow(partitions=DAYS, deps=[raw_events])
def daily_summary():
    work()


@ac.workflow(partitions=WEEKS, deps=[ac.Dep(daily_summary, ac.TimeWindowMapping())])
def weekly_report():
    work()


@ac.workflow(partitions=HOURS, deps=[ac.Dep(raw_events, ac.IdentityMapping())])
def alerts():
    work()


@ac.workflow(partitions=DAYS, deps=[ac.Dep(daily_summary, ac.TimeWindowMapping(start_offset=-6))])
def rolling_week():
    work()


@ac.workflow(partitions=HOURS)
def raw_clicks():
    work()


@ac.workflow(partitions=DAYS, deps=[raw_clicks])
def sessions():
    work()


# -- the warehouse -----------------------------------------------------------------------------------------
@ac.workflow(partitions=DAYS)
def orders():
    work()


@ac.workflow(partitions=DAYS, depends_on_past=True)
def fx_rates():
    work()


@ac.workflow(partitions=DAYS, deps=[ac.Dep(orders, ac.IdentityMapping())])
def orders_clean():
    work()


@ac.workflow(partitions=DAYS, deps=[orders_clean, fx_rates])
def revenue():
    work()


@ac.workflow(partitions=DAYS, deps=[sessions, orders_clean])
def funnel():
    work()


@ac.workflow(partitions=ac.MultiPartitions({"date": DAYS, "region": REGIONS}), deps=[revenue])
def regional_sales():
    work()


@ac.workflow(partitions=REGIONS, deps=[ac.Dep(regional_sales, ac.DimensionMapping({"region": ac.IdentityMapping()}))])
def region_dashboard():
    work()


@ac.workflow(partitions=MONTHS, deps=[revenue])
def monthly_close():
    work()


@ac.workflow(partitions=DAYS, deps=[revenue], depends_on_past=True)
def running_total():
    work()


@ac.workflow()
def customers_snapshot():
    work()


@ac.workflow(deps=[customers_snapshot, funnel])
def churn_model():
    work()


@ac.workflow(deps=[weekly_report, monthly_close])
def yearly_deck():
    work()


# -- on their own -----------------------------------------------------------------------------------------
@ac.workflow(partitions=ac.StaticPartitions(["finance", "ops"]))
def audit_log():
    work()


@ac.workflow()
def sandbox():
    work()


EVENTS = [raw_events, daily_summary, weekly_report]
WORKFLOWS = [raw_events, daily_summary, weekly_report, alerts, rolling_week, raw_clicks, sessions, orders, fx_rates,
             orders_clean, revenue, funnel, regional_sales, region_dashboard, monthly_close, running_total,
             customers_snapshot, churn_model, yearly_deck, audit_log, sandbox]

repo = ac.CodeRepository(WORKFLOWS, executor=ac.InProcessExecutor(max_workers=4))
