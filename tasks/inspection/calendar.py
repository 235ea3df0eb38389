"""The holiday calendar as an inspection item: does it cover the next 12 months?

The State Council publishes next year's arrangement each November; until someone enters it
(config/holidays/<year>.yaml, status: official) the pre-holiday schedule is only a sketch, so the
inspection says so instead of silently planning around a guessed calendar.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo


from config.settings import Site
from tasks.core import calendar
from tasks.core.check_task import check_task
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow


def _code(ok: bool, years: list[int]) -> Code:
    # Template only: the State Council's notice for that year is not entered yet (the usual case
    # from November on); missing: no data at all for a year, a bigger gap.
    if ok:
        return Code.OK
    overrides = calendar._overrides()  # noqa: SLF001 - the same source coverage() judged from
    return Code.CALENDAR_TEMPLATE_ONLY if all(y in overrides for y in years) else Code.CALENDAR_YEAR_MISSING


def _fields(site: Site, now: datetime | None = None) -> dict:
    months = site.thresholds.calendar_months_ahead
    return dict(check="calendar_coverage", title="节假日日历覆盖", site=site.site, target=f"未来 {months} 个月")


# No retry: a broken override file is not cured by reading it again; ERROR names the file.
@check_task("calendar_coverage", error_fields=_fields, retries=0)
def calendar_coverage(site: Site, now: datetime | None = None) -> list[CheckResult]:
    started = utcnow()
    months = site.thresholds.calendar_months_ahead
    today = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(site.timezone)).date()
    base = dict(check="calendar_coverage", title="节假日日历覆盖", site=site.site,
                target=f"{today} 起 {months} 个月", threshold=f"覆盖未来 {months} 个月，否则警告")
    ok, years, reason = calendar.coverage(today, months)
    return [CheckResult(**base, value="已覆盖" if ok else "未覆盖 " + "、".join(map(str, years)),
                        status=Status.OK if ok else Status.WARN, code=_code(ok, years), reason=reason, started_at=started,
                        finished_at=utcnow())]
