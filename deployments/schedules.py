"""When each duty runs, in the hospital's time (Asia/Shanghai), whatever the worker's timezone.

The pre-holiday check has no cron expression: it runs N workdays (site setting, default 2)
before each holiday of three days or more, and both the holidays and the workdays (调休 makes
some Saturdays workdays) come from the State Council's calendar (tasks/core/calendar.py). The dates
are computed when the deployments are served and given to Prefect as an RRULE set of RDATEs,
so the UI lists the coming pre-holiday runs like any other schedule. A holiday whose year the
calendar does not cover officially yet is left out, with a warning, rather than guessed; a year
no calendar covers at all (next year's notice comes out in November) ends the planning window there.
"""
from __future__ import annotations

from datetime import datetime

from prefect.schedules import Cron, RRule, Schedule

from tasks.core import timetable
from tasks.core.timetable import PlannedPrecheck

# The timetable itself (cron expressions, planned dates) is tasks/core/timetable.py; this module
# makes Prefect schedules of it.
TZ, DAILY_QUALITY = timetable.TZ, timetable.DAILY_QUALITY
MONTHLY_INSPECTION, QUARTERLY_INSPECTION = timetable.MONTHLY_INSPECTION, timetable.QUARTERLY_INSPECTION


def precheck_schedule(runs: list[PlannedPrecheck]) -> Schedule | None:
    """An RRULE set of the planned dates (local time, TZ); None when nothing can be planned."""
    return dates_schedule([r.run_at for r in runs])


def watch_every(minutes: int = 5) -> Schedule:
    """接口运维: every N minutes, on the clock (:00, :05, ...), day and night."""
    return Cron(f"*/{minutes} * * * *", timezone=TZ)


def monthly_inspection() -> Schedule:
    return Cron(MONTHLY_INSPECTION, timezone=TZ)


def quarterly_inspection() -> Schedule:
    return Cron(QUARTERLY_INSPECTION, timezone=TZ)


def daily_quality() -> Schedule:
    return Cron(DAILY_QUALITY, timezone=TZ)


def daily_portal() -> Schedule:
    return Cron(timetable.DAILY_PORTAL, timezone=TZ)


def half_year_report() -> Schedule:
    return Cron(timetable.HALF_YEAR_REPORT, timezone=TZ)


def monthly_report() -> Schedule:
    return Cron(timetable.MONTHLY_REPORT, timezone=TZ)


def dates_schedule(runs: list[datetime]) -> Schedule | None:
    """An RRULE set of the given local times (TZ); None when there is none."""
    if not runs:
        return None
    stamps = [r.strftime("%Y%m%dT%H%M%S") for r in runs]
    return RRule(f"DTSTART:{stamps[0]}\nRDATE:{','.join(stamps)}", timezone=TZ)
