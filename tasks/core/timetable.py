"""The duties' timetable in the hospital's time (Asia/Shanghai): when each duty is due.

Pure dates, no Prefect: deployments/schedules.py turns them into the schedules the worker serves,
and the service report (tasks/report/due.py) compares them with the bundles that exist, so both
read one timetable. The pre-holiday check runs N workdays before each holiday of three days or
more, the quarterly verification on the first workday of the quarter, both from the State
Council's calendar (tasks/core/calendar.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from tasks.core import calendar

TZ = "Asia/Shanghai"
PRECHECK_AT = time(9, 0)           # the engineer is on site in the morning to act on findings
MONTHLY_INSPECTION = "0 9 1 * *"   # QH: monthly on-site inspection with report
QUARTERLY_INSPECTION = "0 10 1 1,4,7,10 *"   # MZ 一.2-16: the quarterly list
VERIFICATION_AT = time(2, 0)       # 备份恢复验证: at night, after the nightly backup, before the clinics open
QUARTER_MONTHS = (1, 4, 7, 10)
DAILY_QUALITY = "0 6 * * *"        # 票据数据质量: yesterday's bills, read before the finance office's day starts
DAILY_PORTAL = "30 6 * * *"        # 证据门户: after the night's verification and the quality check have stored theirs
# 服务报告 (QH: 每半年出具半年度服务报告): the 5th, 08:00, of the month after the period, so the
# watch's last day is sealed and a late daily check (a day's grace) is in; January and July for the
# half-year just ended, every month for the month just ended (parameter period=previous-*).
HALF_YEAR_REPORT = "0 8 5 1,7 *"
MONTHLY_REPORT = "0 8 5 * *"


@dataclass(frozen=True)
class PlannedPrecheck:
    holiday: calendar.Holiday
    run_at: datetime   # naive, local time of TZ


def planned_prechecks(today: date, workdays_before: int = 2, days_ahead: int = 400,
                      at: time = PRECHECK_AT) -> tuple[list[PlannedPrecheck], list[str]]:
    """Pre-holiday runs from today on, and why some holidays could not be planned.

    The window ends early, with a note, at the first year no calendar covers: serving the other
    deployments must never depend on next year's notice having been entered.
    """
    runs, notes = [], []
    holidays, until, gap = calendar.plannable_holidays(today, today + timedelta(days=days_ahead))
    if gap is not None:
        notes.append(f"planned only up to {until}: {gap}" if until >= today else f"nothing planned: {gap}")
    for h in holidays:
        try:
            day = calendar.workdays_before(h.first_day, workdays_before) if workdays_before else h.first_day
        except calendar.CalendarGap as exc:
            notes.append(f"{h.name} {h.first_day}: not planned: {exc}")
            continue
        if day < today:
            continue
        if not h.official:
            # The run day lies in an official year, only the holiday is sketched from the law's
            # fixed days (a template file): plan it, and say so until the notice is entered.
            notes.append(f"{h.name} {h.first_day}: planned on {day} from the {h.first_day.year} template "
                         f"(hint: enter config/holidays/{h.first_day.year}.yaml with status: official)")
        runs.append(PlannedPrecheck(h, datetime.combine(day, at)))
    return runs, notes


def planned_verifications(today: date, quarters_ahead: int = 5,
                          at: time = VERIFICATION_AT) -> tuple[list[datetime], list[str]]:
    """The quarterly backup-restore verification: the first working day of January, April, July
    and October (a make-up Sunday counts; 元旦 and 国庆 push it back), from today on."""
    runs, notes = [], []
    year, month = today.year, today.month
    for _ in range(quarters_ahead + 1):
        q_month = next((m for m in QUARTER_MONTHS if m >= month), None)
        if q_month is None:
            year, q_month = year + 1, 1
        try:
            day = calendar.first_workday_of_month(year, q_month)
        except calendar.CalendarGap:
            # A quarter's verification is owed whatever the notice says: plan it on the first
            # weekday after the statutory days off (元旦 1 day, 国庆 up to the 7th), and say so.
            day = date(year, q_month, 8 if q_month == 10 else 2 if q_month == 1 else 1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            notes.append(f"{year}-{q_month:02d}: planned on {day} from weekdays, the {year} calendar is not official "
                         f"(hint: enter config/holidays/{year}.yaml with status: official)")
        if day >= today:
            runs.append(datetime.combine(day, at))
        month = q_month + 1
        if month > 12:
            year, month = year + 1, 1
    return runs[:quarters_ahead], notes


YEAR_END_PLAN_AT = time(9, 0)      # 技术年结: the plan on December's first workday; approval and execution by hand


def planned_year_end(today: date, years_ahead: int = 2, at: time = YEAR_END_PLAN_AT) -> tuple[list[datetime], list[str]]:
    """The year-end's plan runs: the first working day of December (a make-up day counts), from
    today on; a December the calendar does not cover is planned on its first weekday, with a note."""
    runs, notes = [], []
    for year in range(today.year, today.year + years_ahead + 1):
        if len(runs) == years_ahead:
            break
        try:
            day = calendar.first_workday_of_month(year, 12)
        except calendar.CalendarGap:
            day = date(year, 12, 1)
            while day.weekday() >= 5:
                day += timedelta(days=1)
            notes.append(f"{year}-12: planned on {day} from weekdays, the {year} calendar is not official "
                         f"(hint: enter config/holidays/{year}.yaml with status: official)")
        if day >= today:
            runs.append(datetime.combine(day, at))
    return runs[:years_ahead], notes
