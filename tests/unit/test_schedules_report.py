"""The service report's deployments: half-yearly on 5 Jan and 5 Jul 08:00 Asia/Shanghai and monthly on
the 5th, each with a relative period (previous-half / previous-month) that the run resolves on its
own day. The fire times come from Prefect's own server-side schedule (what its scheduler makes runs
from), from the real clock and from pinned days."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from flows.service_report import ReportParams
from tasks.report.collect import BadPeriod, resolve_period

TZ = ZoneInfo("Asia/Shanghai")


def _fires(dep, start: datetime, n: int) -> list[datetime]:
    from prefect.server.schemas.schedules import CronSchedule

    s = dep.schedules[0].schedule
    dates = asyncio.run(CronSchedule(cron=s.cron, timezone=s.timezone).get_dates(n=n, start=start))
    return [datetime.fromtimestamp(d.timestamp(), TZ) for d in dates]


def _report_deployments(today: date | None = None) -> dict:
    from deployments.serve import deployments

    return {d.name: d for d in deployments("example-oracle", today=today) if d.flow_name == "service-report"}


def test_half_year_and_monthly_reports_are_scheduled_for_the_period_just_ended_from_a_pinned_day():
    deps = _report_deployments(date(2026, 6, 1))
    half, monthly = deps["service-report-half-example-oracle"], deps["service-report-monthly-example-oracle"]
    assert half.parameters == {"params": {"site": "example-oracle", "period": "previous-half"}}
    assert monthly.parameters == {"params": {"site": "example-oracle", "period": "previous-month"}}
    start = datetime(2026, 6, 1, tzinfo=TZ)
    fires = _fires(half, start, 3)
    assert [f.strftime("%Y-%m-%d %H:%M") for f in fires] == ["2026-07-05 08:00", "2027-01-05 08:00", "2027-07-05 08:00"]
    assert [resolve_period("previous-half", f.date()).label for f in fires] == ["2026H1", "2026H2", "2027H1"]
    months = _fires(monthly, start, 8)
    assert [resolve_period("previous-month", f.date()).label for f in months] == [
        "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"]


def test_with_the_real_clock_the_next_half_year_report_covers_the_half_now_running():
    """Whatever today is (2026-12-02 when written): the next run is on the next 5 Jan or 5 Jul at
    08:00 in the hospital's time and reports the half-year that ended just before it."""
    now = datetime.now(timezone.utc)
    [nxt] = _fires(_report_deployments()["service-report-half-example-oracle"], now, 1)
    assert (nxt.month, nxt.day, nxt.hour, nxt.minute) in ((1, 5, 8, 0), (7, 5, 8, 0)) and nxt > now
    running = resolve_period("previous-half", nxt.date())
    today = now.astimezone(TZ).date()
    assert running.first <= today < running.end or today < running.end <= nxt.date()   # the half now running (or 1-4 Jan/Jul)
    assert running.end == date(nxt.year, nxt.month, 1)


@pytest.mark.parametrize("day,text,label", [
    (date(2027, 1, 5), "previous-half", "2026H2"), (date(2026, 12, 2), "previous-half", "2026H1"),
    (date(2026, 7, 1), "previous-half", "2026H1"), (date(2026, 12, 2), "previous-month", "2026-11"),
    (date(2027, 1, 5), "previous-month", "2026-12"), (date(2027, 1, 5), "previous-quarter", "2026Q4"),
    (date(2026, 12, 2), "2026H2", "2026H2")])
def test_relative_periods_resolve_on_the_runs_day(day, text, label):
    assert resolve_period(text, day).label == label


def test_the_form_keeps_a_relative_period_and_refuses_nonsense():
    assert ReportParams(period="Previous-Half").period == "previous-half"
    assert ReportParams(period="2026h2").period == "2026H2"
    with pytest.raises(ValueError, match="previous-half"):
        ReportParams(period="last-half")
    with pytest.raises(BadPeriod):
        resolve_period("previous-year", date(2026, 12, 2))
