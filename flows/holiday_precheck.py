"""节前巡检: before every holiday of three days or more, check all software and hardware and report.

QH: "重大节假日（公休日≥3天）前对所有软件及硬件设备进行巡检，并提供巡检报告"; MZ 一.19.
The checklist: take a fresh backup and check it finished, run the whole inspection catalogue, list
the holiday duty roster, then the 节前巡检报告 goes into the evidence bundle like any inspection.
Scheduled N workdays before each long holiday (deployments/schedules.py) and run by hand from the
Prefect UI's form or `prefect deployment run 'holiday-precheck/holiday-precheck-demo'`.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from config.settings import DutyEntry, Site, load_site
from flows.common import BadInput, RunOutcome, current_run_id, finish
from flows.duty_slot import duty_slot
from flows.inspection import CHECKS_IN_FLIGHT, inspect_site
from tasks.core import calendar
from tasks.approvals.standing import standing_decision
from tasks.backup.fresh import backup_hosts as database_backup_hosts, fresh_backup, standing_plan
from tasks.connect.ssh import HostPool
from tasks.core.results import CheckResult, Status


class PrecheckParams(BaseModel):
    """The form the Prefect UI shows for a manual pre-holiday check."""
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml）")
    holiday_first_day: date | None = Field(
        default=None, description="节假日放假第一天；留空则为下一个连续放假 ≥ 3 天的节假日")
    engineer: str = Field(default="", description="维护工程师（写入报告签字栏）")
    fresh_backup: Literal["run", "plan", "skip"] = Field(
        default="run", description="节前备份：run 执行站点配置的备份命令（需已记录的审批：ebops approve）；plan 只列出命令并存入方案；skip 不做")


class NoSuchHoliday(BadInput):
    pass


def pick_holiday(today: date, first_day: date | None) -> calendar.Holiday:
    """The holiday the check is for: the one beginning on first_day, or the next long one.

    Looks only as far as the calendar reaches: from each autumn on, the next holiday may lie in a
    year whose State Council notice is not entered yet, which is a message with a hint, not a crash.
    """
    coming, _, gap = calendar.plannable_holidays(today + timedelta(days=1), today + timedelta(days=400))
    if first_day is None:
        if coming:
            return coming[0]
        raise NoSuchHoliday(f"no holiday of 3 days or more is known after {today}"
                            + (f": {gap}; or give the holiday's first day" if gap else ""))
    try:
        for h in calendar.long_holidays(first_day - timedelta(days=1), first_day + timedelta(days=1)):
            if h.first_day == first_day:
                return h
    except calendar.CalendarGap as exc:
        raise NoSuchHoliday(f"holiday_first_day {first_day}: {exc}") from None
    names = ", ".join(f"{h.name} {h.first_day}" for h in coming if h.first_day <= today + timedelta(days=370))
    raise NoSuchHoliday(f"holiday_first_day {first_day}: no holiday of 3 days or more begins that day "
                        f"(hint: the coming ones are {names or 'none known'})")


def roster_for(site: Site, h: calendar.Holiday) -> tuple[list[DutyEntry], list[date]]:
    """Entries of the duty roster that overlap the holiday, and the holiday's days nobody covers."""
    entries = [d for d in site.duty_roster if d.date_from <= h.last_day and d.date_to >= h.first_day]
    days = [h.first_day + timedelta(days=i) for i in range(h.days_off)]
    gaps = [d for d in days if not any(e.date_from <= d <= e.date_to for e in entries)]
    return sorted(entries, key=lambda e: e.date_from), gaps


def roster_result(site: Site, h: calendar.Holiday, entries: list[DutyEntry], gaps: list[date]) -> CheckResult:
    names = "、".join(dict.fromkeys(e.engineer for e in entries)) or "无"
    return CheckResult(
        check="duty_roster", title="节假日值班安排", site=site.site, target=f"{h.name} {h.first_day}~{h.last_day}",
        value=f"{h.days_off - len(gaps)}/{h.days_off} 天有人值班", threshold="节日每天均有值班人员",
        status=Status.WARN if gaps else Status.OK, code="roster_gap" if gaps else "ok",
        reason=(f"值班人员：{names}" + (f"；无人值班日期：{'、'.join(map(str, gaps))}" if gaps else "")))


def holiday_context(h: calendar.Holiday, entries: list[DutyEntry], gaps: list[date]) -> dict:
    source = ("国务院办公厅节假日安排（chinesecalendar 或 config/holidays 正式文件）" if h.official else
              "模板：该年正式安排尚未录入，放假日期为估计（见节假日日历覆盖检查）")
    return {
        "holiday": {"name": h.name, "first_day": h.first_day.isoformat(), "last_day": h.last_day.isoformat(),
                    "days_off": h.days_off, "official": h.official, "source": source},
        "roster": [e.model_dump(mode="json") for e in entries],
        "roster_gaps": [d.isoformat() for d in gaps],
    }


def backup_approval(cfg: Site, params: PrecheckParams):
    """(the recorded approval of the fresh backup's standing plan, None) or (None, (code, why)).
    Without an approval (and in plan mode) the plan is stored, so that its key can be approved."""
    plan = standing_plan(cfg)
    if plan is None or params.fresh_backup == "skip":
        return None, None
    return standing_decision(cfg, plan, params.engineer, params.fresh_backup == "run", current_run_id())


@flow(name="holiday-precheck", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=CHECKS_IN_FLIGHT))
def holiday_precheck(params: PrecheckParams = PrecheckParams()) -> RunOutcome:
    """节前巡检: fresh backup, the whole catalogue, the duty roster; the 节前巡检报告 as evidence."""
    cfg = load_site(params.site)
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(cfg.timezone)).date()
    h = pick_holiday(today, params.holiday_first_day)
    entries, gaps = roster_for(cfg, h)
    backup_hosts = database_backup_hosts(cfg)
    approval, refusal = backup_approval(cfg, params)

    def before_catalogue(pool: HostPool) -> list[CheckResult]:
        # The backup runs first, so the catalogue's "last backup" and "backup space" items judge it.
        out: list[CheckResult] = []
        for host in backup_hosts:
            out += fresh_backup(cfg.site, host, pool, params.fresh_backup, approval, refusal)
        return out + [roster_result(cfg, h, entries, gaps)]

    # Two slots, always in this order: its own (one fresh backup and one 节前巡检 chain at a time),
    # then, inside inspect_site, the inspection's (the catalogue reads and saves the log positions a
    # routine inspection also keeps). A routine inspection takes only the second: no wait in a circle.
    with duty_slot(cfg.site, "holiday_precheck"):
        outcome = inspect_site(cfg, "holiday", params.engineer, title="节前巡检报告", form="holiday_precheck",
                               duty="holiday_precheck", before_catalogue=before_catalogue,
                               context=holiday_context(h, entries, gaps),
                               approvals=[approval.summary()] if approval else [],
                               period=f"{h.first_day}~{h.last_day}")
    return finish(cfg, "holiday_precheck", outcome.results, outcome.bundle)
