"""China's official working calendar: holidays, make-up workdays (调休) and the dates derived from them.

Tenders demand a check of all software and hardware before every major holiday (QH: 重大节假日
（公休日≥3天）前巡检), so the schedule needs the State Council's arrangement, not just weekends:
a Saturday can be a working day (调休上班) and a Wednesday a day off.

Sources, per year, first match wins:
1. config/holidays/<year>.yaml (directory: $EBOPS_HOLIDAYS_DIR) — lets a site enter a year the
   package does not know yet, or correct one; see config/holidays/README.md.
2. the `chinesecalendar` package (official arrangements; 1.11.0 knows 2004–2026).
A year in neither raises CalendarGap (plannable_holidays ends its window there instead: a schedule
looking a year ahead meets next year every December, before its notice is out). A file with `status: template` (State Council notice not yet
published) may be used to *sketch* a schedule (long_holidays), but is_workday and friends refuse it
and coverage() reports it, so an inspection never runs on a guessed calendar without a warning.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import chinese_calendar as _cc
from dateutil.relativedelta import relativedelta

from tasks.core.holiday_files import Override, parse

HOLIDAYS_DIR = Path(__file__).resolve().parents[2] / "config" / "holidays"
_ONE = timedelta(days=1)
# The package names holidays in English; the hospital and the State Council notice use these.
_CHINESE = {
    "New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
}


class CalendarGap(Exception):
    """A year neither the package nor an official override file covers."""


@dataclass(frozen=True)
class Holiday:
    name: str           # e.g. "春节" or "国庆节、中秋节"
    first_day: date
    last_day: date
    days_off: int       # consecutive days off, adjacent weekends included
    official: bool = True   # False when any day comes from a template override (sketch only)


def holidays_dir() -> Path:
    return Path(os.environ.get("EBOPS_HOLIDAYS_DIR", HOLIDAYS_DIR))


@lru_cache(maxsize=8)
def _load(directory: str, stamp: tuple[tuple[str, int], ...]) -> dict[int, Override]:
    return {int(Path(name).stem): parse(Path(directory) / name) for name, _ in stamp}


def _overrides() -> dict[int, Override]:
    directory = holidays_dir()
    if not directory.is_dir():
        return {}
    # Keyed on the files' mtimes so an edited file is re-read without restarting the worker.
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("[0-9][0-9][0-9][0-9].yaml")))
    return _load(str(directory), stamp)


@lru_cache(maxsize=64)
def _package_covers(year: int) -> bool:
    try:
        _cc.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def _gap(year: int, override: Override | None) -> CalendarGap:
    if override is not None:
        why = f"{override.path} is only a template (status: template; the State Council notice is not entered yet)"
    else:
        why = f"chinesecalendar does not know {year} and {holidays_dir()}/{year}.yaml does not exist"
    return CalendarGap(f"{year}年节假日安排未覆盖: {why}; hint: enter 国务院办公厅关于{year}年部分节假日安排的通知 "
                       f"as {year}.yaml with status: official (see config/holidays/README.md)")


def _day(d: date, allow_template: bool, overrides: dict[int, Override] | None = None) -> tuple[bool, str | None, bool]:
    """(day off?, holiday name if an official holiday day, from an official source?)

    `overrides`: the files as read once by a caller that scans many days (a year of schedule).
    """
    overrides = _overrides() if overrides is None else overrides
    for year in (d.year, d.year + 1):   # next year's notice may list late-December days
        ov = overrides.get(year)
        if ov is not None and (d in ov.holidays or d in ov.workdays):
            if ov.status != "official" and not allow_template:
                raise _gap(ov.year, ov)
            return d in ov.holidays, ov.holidays.get(d), ov.status == "official"
    ov = overrides.get(d.year)
    if ov is not None:
        if ov.status != "official" and not allow_template:
            raise _gap(d.year, ov)
        return d.weekday() >= 5, None, ov.status == "official"
    if _package_covers(d.year):
        name = _cc.holidays.get(d)
        return not _cc.is_workday(d), (_CHINESE.get(name, name) if name else None), True
    raise _gap(d.year, None)


def is_workday(d: date) -> bool:
    """A working day by the official calendar; make-up Saturdays/Sundays (调休上班) count. Raises CalendarGap."""
    return not _day(d, allow_template=False)[0]


def coverage(start: date, months: int = 12) -> tuple[bool, list[int], str]:
    """Is every day from start to start+months known officially? (ok, uncovered or template years, reason)."""
    end = start + relativedelta(months=months)   # 31 Jan + 1 month is the end of February
    overrides, bad, reasons = _overrides(), [], []
    for year in range(start.year, end.year + 1):
        ov = overrides.get(year)
        if ov is not None and ov.status != "official":
            bad.append(year)
            reasons.append(f"{year}年只有模板 {ov.path.name} (status: template)，国务院通知尚未录入")
        elif ov is None and not _package_covers(year):
            bad.append(year)
            reasons.append(f"{year}年无节假日数据 (chinesecalendar 不含该年，且无 {year}.yaml)")
    if bad:
        return False, bad, "; ".join(reasons) + "; 提示: 通知发布后按 config/holidays/README.md 写入 status: official"
    return True, [], f"{start} 至 {end} 均有官方节假日安排"


def _runs(start: date, end: date, min_days: int, horizon: date | None = None) -> Iterator[Holiday]:
    """Long holidays beginning in [start, end]; with a horizon, a run reaching past it is left out
    (its length is unknown) instead of raising CalendarGap for the day after."""
    files = _overrides()   # one snapshot for the whole scan: re-globbing per day was most of its cost
    d = start
    try:
        under_way = _day(d, True, files)[0] and _day(d - _ONE, True, files)[0]
    except CalendarGap:   # the day before lies in a year nobody covers: nothing can be under way from it
        under_way = False
    if under_way:
        while _day(d, True, files)[0]:   # a run already under way began before the window: not ours
            d += _ONE
    while d <= end:
        off, _, _ = _day(d, True, files)
        if not off:
            d += _ONE
            continue
        first, names, official = d, [], True
        while True:   # follow the run past `end` to its true last day
            if horizon is not None and d > horizon:
                return
            off, name, from_official = _day(d, True, files)
            if not off:
                break
            official = official and from_official
            if name and name not in names:
                names.append(name)
            d += _ONE
        last = d - _ONE
        days = (last - first).days + 1
        if days >= min_days and names:   # an ordinary weekend has no holiday day, so never counts
            yield Holiday("、".join(names), first, last, days, official)


def long_holidays(start: date, end: date, min_days: int = 3) -> list[Holiday]:
    """Runs of >= min_days consecutive days off containing an official holiday day, that begin in [start, end].

    Template years are used (Holiday.official is then False) so a schedule can be sketched;
    a year with no data at all raises CalendarGap.
    """
    return list(_runs(start, end, min_days))


def _has_data(year: int) -> bool:
    """Can the days of this year be looked up at all (an official or a template file, or the package)?"""
    return year in _overrides() or _package_covers(year)


def known_until(start: date, end: date) -> tuple[date, CalendarGap | None]:
    """The last day of [start, end] before the first year no calendar covers, and that year's gap.

    (end, None) when every year is known; a day before start when start's own year is unknown.
    """
    for year in range(start.year, end.year + 1):
        if not _has_data(year):
            return date(year, 1, 1) - _ONE, _gap(year, None)
    return end, None


def plannable_holidays(start: date, end: date, min_days: int = 3) -> tuple[list[Holiday], date, CalendarGap | None]:
    """long_holidays for planning: the window ends at the first year no calendar covers, never raises for it.

    Returns the holidays, the last day looked at and the gap that ended the window early (None if
    it reached `end`). A holiday that runs into the unknown year is left out: its length is unknown.
    The State Council publishes a year's arrangement only in the November before, so a schedule
    looking ~13 months ahead meets such a year every December: it is expected, not an error.
    """
    until, gap = known_until(start, end)
    if until < start:
        return [], until, gap
    reach, _ = known_until(start, until + timedelta(days=31))   # a run is at most ~9 days: follow it that far
    return list(_runs(start, until, min_days, horizon=reach)), until, gap


def next_long_holiday(after: date, min_days: int = 3) -> Holiday | None:
    """The first long holiday beginning after `after` (within about 13 months)."""
    return next(_runs(after + _ONE, after + timedelta(days=400), min_days), None)


def workdays_before(d: date, n: int) -> date:
    """The n-th working day strictly before d (make-up weekend workdays count). Raises CalendarGap."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    day, found = d, 0
    while found < n:
        day -= _ONE
        found += is_workday(day)
    return day


def first_workday_of_month(year: int, month: int) -> date:
    """The month's first working day (a make-up Sunday counts), e.g. for the quarterly backup verification."""
    day = date(year, month, 1)
    while not is_workday(day):
        day += _ONE
    return day
