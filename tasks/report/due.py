"""Duties due in a period, as the deployments schedule them, against the bundles that exist.

What is due comes from the timetable the worker's schedules are built from (tasks/core/timetable.py: the cron
expressions, the pre-holiday dates from the holiday calendar, the quarterly verification), so the
report and the worker cannot disagree about what was owed. A due run is matched to a bundle of
its duty by the bundle's period label (a monthly inspection "2026-11", a day's quality check
"2026-11-20", a pre-holiday check "2026-10-01~2026-10-08"): done on time when the bundle started
before the run's deadline, late when after, missing when no bundle has that period.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from tasks.core import timetable

DUTY_ZH = {"inspection": "巡检", "invoice_quality": "票据数据质量检查", "holiday_precheck": "节前巡检",
           "backup_verification": "备份恢复验证", "watch": "接口与功能监测", "year_end": "技术年结",
           "migration": "服务器迁移", "service_report": "服务报告"}
KIND_ZH = {"monthly": "月度巡检", "quarterly": "季度巡检", "daily": "每日检查", "holiday": "节前巡检",
           "quarter": "季度验证"}


@dataclass(frozen=True)
class DueRun:
    duty: str
    kind: str
    due_at: datetime          # aware, the hospital's time
    deadline: datetime        # a bundle started after it is late
    period: str               # the period label the duty's bundle carries
    covers: date | None = None  # the quality check's day, the holiday's first day

    @property
    def title_zh(self) -> str:
        return f"{DUTY_ZH.get(self.duty, self.duty)}（{KIND_ZH.get(self.kind, self.kind)}）"


@dataclass
class DueStatus:
    due: DueRun
    state: str                # on_time | late | missing
    prefix: str = ""
    started_at: str = ""
    verdict: str = ""


@dataclass
class DueSummary:
    rows: list[DueStatus] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)   # bundles no due run asked for (ad-hoc runs)

    def counts(self, duty: str | None = None, kind: str | None = None) -> dict[str, int]:
        rows = [r for r in self.rows if (duty is None or r.due.duty == duty) and (kind is None or r.due.kind == kind)]
        out = {"due": len(rows), "on_time": 0, "late": 0, "missing": 0}
        for r in rows:
            out[r.state] += 1
        return out


def _cron(expr: str, start: datetime, end: datetime):
    it = CronSim(expr, start - timedelta(seconds=1))
    for at in it:
        if at >= end:
            return
        yield at


def _month_end(at: datetime) -> datetime:
    nxt = (at.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(nxt, time(0), at.tzinfo)


def _quarter_end(at: datetime) -> datetime:
    m = ((at.month - 1) // 3 + 1) * 3
    return _month_end(at.replace(month=m, day=1))


def _quarter(at: datetime) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def due_runs(start: datetime, end: datetime, workdays_before: int = 2) -> list[DueRun]:
    """Every scheduled run from `start` to `end` (aware, the schedules' timezone), oldest first."""
    tz = ZoneInfo(timetable.TZ)
    start, end = start.astimezone(tz), end.astimezone(tz)
    runs: list[DueRun] = []
    for at in _cron(timetable.MONTHLY_INSPECTION, start, end):
        # QH: "每月一次": any day of the month is the month's inspection
        runs.append(DueRun("inspection", "monthly", at, _month_end(at), at.strftime("%Y-%m")))
    for at in _cron(timetable.QUARTERLY_INSPECTION, start, end):
        runs.append(DueRun("inspection", "quarterly", at, _quarter_end(at), _quarter(at)))
    for at in _cron(timetable.DAILY_QUALITY, start, end):
        day = at.date() - timedelta(days=1)   # yesterday's bills; a day late is a day late
        runs.append(DueRun("invoice_quality", "daily", at, at + timedelta(days=1), day.isoformat(), day))
    prechecks, _ = timetable.planned_prechecks(start.date(), workdays_before, days_ahead=(end - start).days + 1)
    for p in prechecks:
        at = p.run_at.replace(tzinfo=tz)
        if start <= at < end:
            h = p.holiday   # late once the holiday has begun: the check is for before it
            runs.append(DueRun("holiday_precheck", "holiday", at, datetime.combine(h.first_day, time(0), tz),
                               f"{h.first_day}~{h.last_day}", h.first_day))
    verifications, _ = timetable.planned_verifications(start.date(), quarters_ahead=3)
    for v in verifications:
        at = v.replace(tzinfo=tz)
        if start <= at < end:
            runs.append(DueRun("backup_verification", "quarter", at, _quarter_end(at), _quarter(at)))
    return sorted(runs, key=lambda r: (r.due_at, r.duty))


def compare(due: list[DueRun], bundles: list[dict]) -> DueSummary:
    """Each due run against the bundles (manifest dicts with `prefix`): the earliest bundle of the
    duty with the run's period answers it; bundles left over are listed as extra runs."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for b in sorted(bundles, key=lambda b: b["started_at"]):
        by_key.setdefault((b["duty"], b["period"]), []).append(b)
    used: set[str] = set()
    out = DueSummary()
    for d in due:
        found = next((b for b in by_key.get((d.duty, d.period), []) if b["prefix"] not in used), None)
        if found is None:
            out.rows.append(DueStatus(d, "missing"))
            continue
        used.add(found["prefix"])
        started = datetime.fromisoformat(found["started_at"].replace("Z", "+00:00"))
        out.rows.append(DueStatus(d, "on_time" if started <= d.deadline else "late", found["prefix"],
                                  found["started_at"], found["verdict"]))
    scheduled = {d.duty for d in due} | {"inspection", "invoice_quality", "holiday_precheck", "backup_verification"}
    out.extra = [b for b in bundles if b["duty"] in scheduled and b["prefix"] not in used]
    return out
