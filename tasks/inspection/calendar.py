"""The holiday calendar as an inspection item: does it cover the next 12 months?

The State Council publishes next year's arrangement each November; until someone enters it
(config/holidays/<year>.yaml, status: official) the pre-holiday schedule is only a sketch, so the
inspection says so instead of silently planning around a guessed calendar.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from prefect import task
from prefect.cache_policies import NONE

from config.settings import Site
from tasks.core import calendar
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow


def _code(ok: bool, years: list[int]) -> Code:
    # Template only: the State Council's notice for that year is not entered yet (the usual case
    # from November on); missing: no data at all for a year, a bigger gap.
    if ok:
        return Code.OK
    overrides = calendar._overrides()  # noqa: SLF001 - the same source coverage() judged from
    return Code.CALENDAR_TEMPLATE_ONLY if all(y in overrides for y in years) else Code.CALENDAR_YEAR_MISSING


@task(name="calendar_coverage", cache_policy=NONE)
def calendar_coverage(site: Site, now: datetime | None = None) -> list[CheckResult]:
    started = utcnow()
    months = site.thresholds.calendar_months_ahead
    today = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(site.timezone)).date()
    base = dict(check="calendar_coverage", title="节假日日历覆盖", site=site.site,
                target=f"{today} 起 {months} 个月", threshold=f"覆盖未来 {months} 个月，否则警告")
    try:
        ok, years, reason = calendar.coverage(today, months)
    except Exception as exc:  # noqa: BLE001 - a broken override file: say which, the run goes on
        return [error_result(exc, started_at=started, **base)]
    return [CheckResult(**base, value="已覆盖" if ok else "未覆盖 " + "、".join(map(str, years)),
                        status=Status.OK if ok else Status.WARN, code=_code(ok, years), reason=reason, started_at=started,
                        finished_at=utcnow())]
