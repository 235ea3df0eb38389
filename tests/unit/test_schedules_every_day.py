"""No day may break serving: every schedule builder, planned from every day of 2026-2027 and from
the real today, under each state the holiday calendar can be in.

The tests before these pinned "today", so the pre-holiday plan's 400-day look-ahead reaching 2028
(from 2026-11-27 on) crashed `make ui` on the day the 2028 year came into view. A year no calendar
covers must end the planning window with a note, never raise.
"""
from __future__ import annotations

import textwrap
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from dateutil.relativedelta import relativedelta

from deployments import schedules
from tasks.core import timetable
from tasks.core import calendar

DAYS = [date(2026, 1, 1) + timedelta(days=i) for i in range((date(2028, 1, 1) - date(2026, 1, 1)).days)]
TODAY = datetime.now(ZoneInfo(schedules.TZ)).date()   # the real clock, whatever day the suite runs

OFFICIAL_2027 = """\
    # invented arrangement, for the test only (the real 2027 notice is not entered here)
    year: 2027
    status: official
    source: "测试用安排 (not the real notice)"
    holidays:
      - name: 元旦
        days: [2027-01-01, 2027-01-02, 2027-01-03]
      - name: 春节
        days: [2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11]
      - name: 国庆节
        days: [2027-10-01, 2027-10-02, 2027-10-03, 2027-10-04, 2027-10-05, 2027-10-06, 2027-10-07]
      - name: 元旦
        days: [2027-12-31]
    workdays: [2027-01-30, 2027-09-26, 2027-10-09]
"""


def _use_calendar(state: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if state == "package-only":
        monkeypatch.setenv("EBOPS_HOLIDAYS_DIR", str(directory))
    elif state == "official-2027":
        (directory / "2027.yaml").write_text(textwrap.dedent(OFFICIAL_2027), encoding="utf-8")
        monkeypatch.setenv("EBOPS_HOLIDAYS_DIR", str(directory))


@pytest.fixture(params=["shipped", "package-only", "official-2027"])
def calendar_state(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The calendar as shipped (2027 a template), with no files at all (2027 unknown: the gap is a
    year earlier), and with an official 2027 whose 元旦 2028 holiday begins on 2027-12-31 and so
    runs into the unknown 2028."""
    _use_calendar(request.param, tmp_path, monkeypatch)
    return request.param


def _known(year: int) -> bool:
    """Does any calendar hold this year (a file of either status, or the package)? Asked here
    independently of tasks.core.calendar, so the test does not take the code's word for it."""
    if (calendar.holidays_dir() / f"{year}.yaml").exists():
        return True
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def _first_unknown_year(start: date, end: date) -> int | None:
    return next((y for y in range(start.year, end.year + 1) if not _known(y)), None)


def _check_prechecks(today: date, workdays_before: int = 2) -> None:
    end = today + timedelta(days=400)
    runs, notes = timetable.planned_prechecks(today, workdays_before)
    assert all(r.run_at.date() >= today and r.run_at.time() == timetable.PRECHECK_AT for r in runs), today
    assert [r.run_at for r in runs] == sorted(r.run_at for r in runs), today
    # a run day never lies after its holiday began
    assert all(r.run_at.date() < r.holiday.first_day or workdays_before == 0 for r in runs), today
    gap_year = _first_unknown_year(today, end)
    if gap_year is None:
        assert not any(n.startswith(("planned only up to", "nothing planned")) for n in notes), (today, notes)
    else:
        # the window ends at the unknown year, and says so with the hint to enter it
        ended = [n for n in notes if n.startswith(("planned only up to", "nothing planned"))]
        assert len(ended) == 1 and f"{gap_year}年节假日安排未覆盖" in ended[0] and "hint" in ended[0], (today, notes)
        assert all(r.holiday.last_day.year < gap_year for r in runs), today
    schedules.precheck_schedule(runs)   # the RRULE set builds (None when nothing is planned)


def test_pre_holiday_plan_from_every_day_of_2026_and_2027(calendar_state: str):
    for today in DAYS:
        _check_prechecks(today)
    # the day the issue was found on, and the real today
    _check_prechecks(date(2026, 12, 1))
    _check_prechecks(TODAY)


def test_pre_holiday_plan_with_other_workday_settings_on_every_day():
    for today in DAYS:
        _check_prechecks(today, workdays_before=0)
        _check_prechecks(today, workdays_before=5)


def test_plan_from_2026_12_01_keeps_new_year_and_ends_before_2028():
    runs, notes = timetable.planned_prechecks(date(2026, 12, 1), 2)
    assert [(r.holiday.name, r.run_at) for r in runs] == [("元旦", datetime(2026, 12, 30, 9, 0))]
    assert any(n.startswith("planned only up to 2027-12-31") and "2028年" in n for n in notes)


def test_a_holiday_running_into_an_unknown_year_is_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _use_calendar("official-2027", tmp_path, monkeypatch)   # 元旦 2028 begins on 2027-12-31
    holidays, until, gap = calendar.plannable_holidays(date(2027, 12, 1), date(2028, 2, 1))
    assert holidays == [] and until == date(2027, 12, 31) and "2028" in str(gap)
    # within the covered year the same function sees the whole official arrangement
    held, _, gap = calendar.plannable_holidays(date(2027, 1, 1), date(2027, 10, 31))
    assert [h.name for h in held] == ["元旦", "春节", "国庆节"] and gap is None


def test_a_start_in_an_unknown_year_plans_nothing_and_says_why():
    runs, notes = timetable.planned_prechecks(date(2031, 3, 1), 2)
    assert runs == [] and notes[0].startswith("nothing planned") and "2031年" in notes[0]


def _check_verifications(today: date) -> None:
    runs, notes = timetable.planned_verifications(today)
    assert len(runs) == 5, today   # the duty is owed every quarter, whatever the calendar says
    assert runs == sorted(runs) and len({(r.year, r.month) for r in runs}) == 5, today
    assert all(r.month in timetable.QUARTER_MONTHS and r.date() >= today and r.time() == time(2, 0) for r in runs), today
    official = {y for y in range(2004, 2031) if _known(y)} - _template_years()
    for r in runs:
        if r.year in official:
            assert calendar.is_workday(r.date()), (today, r)
        else:   # planned from weekdays, and said so
            assert r.weekday() < 5 and any(n.startswith(f"{r.year}-{r.month:02d}") for n in notes), (today, r, notes)


def _template_years() -> set[int]:
    return {y for y, ov in calendar._overrides().items() if ov.status != "official"}


def test_backup_verification_plan_from_every_day_of_2026_and_2027(calendar_state: str):
    for today in [*DAYS, date(2026, 12, 1), TODAY]:
        _check_verifications(today)


def test_calendar_inspection_item_warns_and_never_errors_on_any_day(calendar_state: str):
    from config.settings import load_site
    from tasks.inspection.calendar import calendar_coverage
    from tasks.core.results import Status

    site = load_site("example-oracle")
    for today in [*DAYS, TODAY]:
        now = datetime.combine(today, time(12, 0), ZoneInfo(site.timezone))
        [r] = calendar_coverage.fn(site, now)
        ok, years, _ = calendar.coverage(today, site.thresholds.calendar_months_ahead)
        assert r.status == (Status.OK if ok else Status.WARN), (today, r.reason)
        # a year the pre-holiday window cannot reach into within these months is named in the WARN
        gap_year = _first_unknown_year(today, today + relativedelta(months=site.thresholds.calendar_months_ahead))
        if gap_year is not None:
            assert r.status == Status.WARN and str(gap_year) in r.value, (today, r.value)


def test_every_deployment_is_built_on_every_day_of_2026_and_2027():
    """The full list `ebops ui` serves, from each day: every deployment, none dropped for a calendar gap."""
    from deployments.serve import deployments

    for today in [*DAYS, date(2026, 12, 1), TODAY]:
        deps = {d.name: d for d in deployments("example-oracle", today=today)}
        assert set(deps) == {f"{kind}-example-oracle" for kind in (
            "inspection-monthly", "inspection-quarterly", "holiday-precheck", "backup-verification",
            "invoice-quality", "watch", "evidence-portal", "service-report-half", "service-report-monthly",
            "year-end")}, today
        assert len(deps["backup-verification-example-oracle"].schedules) == 1, today
        assert len(deps["year-end-example-oracle"].schedules) == 1, today  # December's plan, every year
        runs, _ = timetable.planned_prechecks(today, 2)
        assert len(deps["holiday-precheck-example-oracle"].schedules) == (1 if runs else 0), today


def test_ebops_schedule_with_the_real_clock_prints_notes_and_no_traceback():
    """`ebops schedule` as a user runs it: the real clock, a real process (the demo site needs the
    sandbox's variables file, so the site here is example-oracle; tests/integration/test_ui_server.py
    runs `ebops schedule demo`)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "flows.cli", "schedule", "example-oracle"], capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "pre-holiday checks" in done.stdout and "RRULE (Asia/Shanghai)" in done.stdout
    if _first_unknown_year(TODAY, TODAY + timedelta(days=400)) is not None:
        assert "note:" in done.stdout and "planned only up to" in done.stdout
