"""Where the pre-holiday check's schedule comes from, against the 2025 and 2026 official calendars,
and the pieces of the pre-holiday flow that need no servers (holiday choice, duty roster)."""
from __future__ import annotations

from datetime import date, timedelta, datetime

import pytest

from config.settings import DutyEntry, load_site
from deployments import schedules
from tasks.core import timetable
from flows.holiday_precheck import NoSuchHoliday, PrecheckParams, pick_holiday, roster_for, roster_result
from tasks.core.reason_codes import Code
from tasks.core.results import Status


def _runs(today: date, n: int = 2, days: int = 365) -> dict[str, str]:
    runs, _ = timetable.planned_prechecks(today, n, days)
    return {f"{r.holiday.name} {r.holiday.first_day}": r.run_at.isoformat() for r in runs}


def test_2026_prechecks_follow_the_official_calendar():
    runs = _runs(date(2026, 1, 1))
    # 春节 2026-02-15..23; Saturday 02-14 is a make-up workday (调休上班), so two workdays before is Friday 02-13
    assert runs["春节 2026-02-15"] == "2026-02-13T09:00:00"
    assert runs["国庆节 2026-10-01"] == "2026-09-29T09:00:00"
    assert runs["劳动节 2026-05-01"] == "2026-04-29T09:00:00"
    # 春节, 清明, 劳动, 端午, 中秋, 国庆, and 元旦 2027 (its run day 2026-12-30 is known; the holiday is a template)
    assert len(runs) == 7 and runs["元旦 2027-01-01"] == "2026-12-30T09:00:00"


def test_2025_prechecks_count_make_up_sundays_as_workdays():
    runs = _runs(date(2025, 1, 1))
    # 2025-01-26 is a Sunday worked in exchange for the Spring Festival: the check runs that day
    assert runs["春节 2025-01-28"] == "2025-01-26T09:00:00"
    assert runs["国庆节、中秋节 2025-10-01"] == "2025-09-29T09:00:00"
    assert runs["元旦 2026-01-01"] == "2025-12-30T09:00:00"


def test_template_year_is_planned_only_where_the_run_day_is_known_and_said_so():
    runs, notes = timetable.planned_prechecks(date(2026, 11, 26), 2)
    assert [(r.holiday.name, r.run_at) for r in runs] == [("元旦", datetime(2026, 12, 30, 9, 0))]
    assert not runs[0].holiday.official
    assert any("元旦" in n and "template" in n for n in notes)
    assert any(n.startswith("春节 2027") and "not planned" in n for n in notes)


def test_schedule_is_an_rrule_set_in_shanghai_time():
    runs, _ = timetable.planned_prechecks(date(2026, 1, 1), 2, 365)
    sched = schedules.precheck_schedule(runs)
    assert sched.timezone == "Asia/Shanghai"
    assert "20260213T090000" in sched.rrule and "20260929T090000" in sched.rrule
    assert schedules.precheck_schedule([]) is None


def test_workdays_before_is_a_site_setting():
    assert _runs(date(2026, 1, 1), n=1)["国庆节 2026-10-01"] == "2026-09-30T09:00:00"


def test_pick_holiday_default_and_named():
    assert pick_holiday(date(2026, 9, 1), None).first_day == date(2026, 9, 25)
    assert pick_holiday(date(2026, 9, 1), date(2026, 10, 1)).name == "国庆节"
    with pytest.raises(NoSuchHoliday, match="hint: the coming ones are"):
        pick_holiday(date(2026, 9, 1), date(2026, 10, 2))


def test_roster_covers_the_holiday_or_warns_with_the_gaps(tmp_path):
    h = pick_holiday(date(2026, 9, 1), date(2026, 10, 1))   # 10-01..10-07
    site = load_site("example-oracle").model_copy(update={"duty_roster": [
        DutyEntry(date_from=date(2026, 9, 30), date_to=date(2026, 10, 3), engineer="王工"),
        DutyEntry(date_from=date(2026, 10, 5), date_to=date(2026, 10, 7), engineer="李工"),
        DutyEntry(date_from=date(2026, 5, 1), date_to=date(2026, 5, 5), engineer="赵工"),
    ]})
    entries, gaps = roster_for(site, h)
    assert [e.engineer for e in entries] == ["王工", "李工"]
    assert gaps == [date(2026, 10, 4)]
    r = roster_result(site, h, entries, gaps)
    assert (r.status, r.code) == (Status.WARN, Code.ROSTER_GAP) and "2026-10-04" in r.reason


def test_params_form_validates_its_fields():
    assert PrecheckParams().fresh_backup == "run"
    with pytest.raises(ValueError):
        PrecheckParams(fresh_backup="now")
    with pytest.raises(ValueError):
        PrecheckParams(holiday_first_day="2026-13-01")


def test_deployments_load_with_their_schedules():
    from deployments.serve import deployments

    deps = {d.name: d for d in deployments("example-oracle", today=date(2026, 1, 1))}
    assert set(deps) == {"inspection-monthly-example-oracle", "inspection-quarterly-example-oracle",
                         "holiday-precheck-example-oracle", "backup-verification-example-oracle",
                         "invoice-quality-example-oracle", "watch-example-oracle",
                         "evidence-portal-example-oracle", "service-report-half-example-oracle",
                         "service-report-monthly-example-oracle", "year-end-example-oracle"}
    portal = deps["evidence-portal-example-oracle"]
    assert portal.parameters == {"site": "example-oracle"}
    assert portal.schedules[0].schedule.cron == "30 6 * * *" and portal.schedules[0].schedule.timezone == "Asia/Shanghai"
    ye = deps["year-end-example-oracle"]
    # the plan on December's first workday at 09:00 (2026-12-01, a Tuesday); execution only by hand
    assert ye.parameters == {"params": {"site": "example-oracle", "mode": "plan"}}
    assert "20261201T090000" in ye.schedules[0].schedule.rrule
    verify = deps["backup-verification-example-oracle"].schedules[0].schedule
    assert "20260104T020000" in verify.rrule and verify.timezone == "Asia/Shanghai"
    pre = deps["holiday-precheck-example-oracle"]
    assert pre.parameters == {"params": {"site": "example-oracle"}}
    rrule = pre.schedules[0].schedule.rrule
    assert "20260213T090000" in rrule
    monthly = deps["inspection-monthly-example-oracle"].schedules[0].schedule
    assert monthly.cron == "0 9 1 * *" and monthly.timezone == "Asia/Shanghai"
    quality = deps["invoice-quality-example-oracle"]
    assert quality.schedules[0].schedule.cron == "0 6 * * *" and quality.schedules[0].schedule.timezone == "Asia/Shanghai"
    assert quality.parameters == {"params": {"site": "example-oracle"}}
    watch = deps["watch-example-oracle"]  # 接口运维: every 5 minutes on the clock, day and night
    assert watch.schedules[0].schedule.cron == "*/5 * * * *" and watch.schedules[0].schedule.timezone == "Asia/Shanghai"
    assert watch.parameters == {"site": "example-oracle"}
    half = deps["service-report-half-example-oracle"].schedules[0].schedule   # tests/unit/test_schedules_report.py
    assert half.cron == "0 8 5 1,7 *" and half.timezone == "Asia/Shanghai"


def test_backup_verification_runs_on_each_quarters_first_workday_at_two():
    runs, notes = timetable.planned_verifications(date(2026, 1, 1), quarters_ahead=4)
    # 2026-01-04 is the make-up Sunday after 元旦; 国庆 pushes October's past the 7-day holiday
    assert [r.strftime("%Y-%m-%d %H:%M") for r in runs] == [
        "2026-01-04 02:00", "2026-04-01 02:00", "2026-07-01 02:00", "2026-10-08 02:00"]
    later, _ = timetable.planned_verifications(date(2026, 4, 2), quarters_ahead=1)
    assert later[0].date() == date(2026, 7, 1)  # April's has passed: the next quarter's
    # 2027 is only a template here: still planned (the duty is owed), from weekdays, with a note
    ahead, notes = timetable.planned_verifications(date(2026, 11, 26), quarters_ahead=2)
    assert [r.date() for r in ahead] == [date(2027, 1, 4), date(2027, 4, 1)]
    assert any("2027-01" in n and "not official" in n for n in notes)


def test_pick_holiday_never_crashes_on_any_day_of_2026_2027():
    """From each autumn on the next holiday may lie in a year no calendar covers (2028 here): the
    pre-holiday check then says so with a hint (NoSuchHoliday, a one-line error), never CalendarGap."""
    from tasks.core import calendar

    day, picked, refused = date(2026, 1, 1), 0, []
    while day <= date(2027, 12, 31):
        try:
            h = pick_holiday(day, None)
            assert h.first_day > day
            picked += 1
        except NoSuchHoliday as exc:
            assert "2028" in str(exc) and "hint" in str(exc)
            refused.append(day)
        except calendar.CalendarGap as exc:  # pragma: no cover - the bug this test guards against
            pytest.fail(f"pick_holiday({day}) raised CalendarGap: {exc}")
        day += timedelta(days=1)
    assert picked > 600 and all(d >= date(2027, 9, 1) for d in refused)
