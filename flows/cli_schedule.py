"""`ebops schedule SITE`: every scheduled duty of a site and its next runs, without the Prefect UI.

The rows are the deployments `ebops ui` serves and `ebops fleet yaml` writes (deployments/serve.py),
built for the site's date; each schedule is printed as written (cron or RRULE, its timezone), and
its next runs come from Prefect's own server-side schedule of the same definition, the code its
scheduler makes runs from, so what this prints and what the worker runs cannot disagree. A
deployment without a schedule is run by hand (手动触发). The pre-holiday section below the table
(the holidays, the planned dates, the RRULE) is the one `ebops schedule` always printed.

"Now" is the records' clock (tasks/core/clock.py): the tests pin it with `clock.backdated`.
Nothing of a deployment but its name and schedules is printed: parameters and descriptions stay out.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli_output import FormatOpt, OutputFormat, emit, make_console, print_table

console = make_console()
err = make_console(stderr=True)

MANUAL = "手动触发"
# Each deployment's duty as the hospital calls it, by its name without "-<site>". A deployment
# added to deployments/serve.py without a line here shows its flow's duty (tasks/report/due.py);
# tests/unit/test_cli_schedule.py asks for the line.
DEPLOYMENT_DUTY_ZH = {
    "inspection-monthly": "月度巡检（含证据链检查点）",
    "inspection-quarterly": "季度巡检",
    "holiday-precheck": "节前巡检",
    "backup-verification": "季度备份恢复验证",
    "invoice-quality": "票据数据质量检查（昨日票据）",
    "watch": "接口运维（功能、接口成功率、票据库存预警）",
    "evidence-portal": "证据门户更新",
    "service-report-half": "半年度服务报告",
    "service-report-monthly": "月度服务报告",
    "year-end": "技术年结（生成方案，待审批）",
    "migration": "服务器迁移",
}


@dataclass(frozen=True)
class PlannedDeployment:
    name: str
    flow: str
    duty: str
    schedules: list[str]       # as written ("cron 0 8 5 1,7 *", an RRULE); empty: run by hand only
    timezone: str              # "" when run by hand only
    next_runs: list[datetime]  # aware, in the schedule's timezone


def duty_zh(name: str, flow: str, site: str) -> str:
    from tasks.report.due import DUTY_ZH

    key = name[: -len(site) - 1] if name.endswith(f"-{site}") else name
    return DEPLOYMENT_DUTY_ZH.get(key) or DUTY_ZH.get(flow.replace("-", "_"), flow)


def schedule_text(schedule) -> str:
    """A Prefect schedule (the client's Cron/RRule/Interval) as written."""
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron}"
    if getattr(schedule, "rrule", None):
        return schedule.rrule
    if getattr(schedule, "interval", None):
        return f"every {schedule.interval.total_seconds():g} s"
    return repr(schedule)


def next_runs(schedule, start: datetime, n: int) -> list[datetime]:
    """The next `n` fire times from `start` on (aware), in the schedule's timezone: Prefect's
    server-side schedule of the same definition computes them (croniter, dateutil's rrule).
    `schedule` is a deployment's (client Cron/RRule/Interval) or deployments/schedules.py's."""
    from prefect.server.schemas import schedules as server

    if getattr(schedule, "cron", None):
        server_side = server.CronSchedule(cron=schedule.cron, timezone=schedule.timezone, day_or=schedule.day_or)
    elif getattr(schedule, "rrule", None):
        server_side = server.RRuleSchedule(rrule=schedule.rrule, timezone=schedule.timezone)
    else:
        server_side = server.IntervalSchedule(interval=schedule.interval, anchor_date=schedule.anchor_date,
                                              timezone=schedule.timezone)
    dates = asyncio.run(server_side.get_dates(n=n, start=start))
    tz = ZoneInfo(schedule.timezone or "UTC")
    return [datetime.fromtimestamp(d.timestamp(), tz) for d in dates]


def site_deployments(site: str, now: datetime, today: date, n: int = 3,
                     notes: dict[str, list[str]] | None = None) -> list[PlannedDeployment]:
    """Every deployment of the site as served on `today`, with its next `n` runs after `now`."""
    from deployments.serve import deployments

    out = []
    for dep in deployments(site, today=today, notes=notes):
        written, runs, zones = [], [], set()
        for s in dep.schedules:
            paused = s.active is False   # a paused schedule makes no runs
            written.append(schedule_text(s.schedule) + ("（已暂停）" if paused else ""))
            zones.add(s.schedule.timezone or "UTC")
            if not paused:
                runs += next_runs(s.schedule, now, n)
        out.append(PlannedDeployment(dep.name, dep.flow_name, duty_zh(dep.name, dep.flow_name, site), written,
                                     ", ".join(sorted(zones)), sorted(runs)[:n]))
    return out


def _runs_text(p: PlannedDeployment, sep: str) -> str:
    if not p.schedules:
        return "—"
    return sep.join(f"{r:%Y-%m-%d %a %H:%M}" for r in p.next_runs) or "none ahead (calendar not covered)"


def _print_prechecks(site: str, cfg, runs, notes: list[str]) -> None:
    """The pre-holiday section: the holidays and the dates planned from the calendar, its RRULE."""
    from deployments import schedules

    table = Table(title=f"{site}: pre-holiday checks ({cfg.precheck_workdays_before} workdays before, {schedules.TZ})")
    for col in ("holiday", "days off", "runs at", "calendar"):
        table.add_column(col)
    for r in runs:
        h = r.holiday
        table.add_row(h.name, f"{h.first_day} ~ {h.last_day} ({h.days_off})", f"{r.run_at:%Y-%m-%d %a %H:%M}",
                      "official" if h.official else "[yellow]template[/]")
    print_table(console, table)
    for n in notes:
        console.print(f"[yellow]note:[/] {escape(n)}", soft_wrap=True, highlight=False)
    sched = schedules.precheck_schedule(runs)
    console.print(f"RRULE ({schedules.TZ}): {sched.rrule if sched else 'none'}", soft_wrap=True, highlight=False)


def schedule(site: str = typer.Argument("demo", help="site name (config/sites/NAME.yaml)"),
             count: int = typer.Option(3, "--next", min=1, max=50, help="next runs shown per deployment"),
             fmt: OutputFormat = FormatOpt) -> None:
    """Every scheduled duty of SITE: schedule (cron/RRULE, Asia/Shanghai), next runs, and the pre-holiday dates."""
    from config.problems import SiteConfigError
    from config.settings import load_site
    from tasks.core import clock, timetable
    from tasks.core.holiday_files import HolidayFileError

    notes: dict[str, list[str]] = {}
    try:
        cfg = load_site(site)
        now = clock.now()
        today = now.astimezone(ZoneInfo(cfg.timezone)).date()
        planned = site_deployments(site, now, today, count, notes)
        prechecks, precheck_notes = timetable.planned_prechecks(today, cfg.precheck_workdays_before)
    except SiteConfigError as exc:   # an unknown site or a bad site file: one line each, as every command
        for p in exc.problems:
            err.print(f"[red]config:[/] {escape(str(p))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    except HolidayFileError as exc:   # a broken config/holidays/<year>.yaml: bad input, one line
        err.print(f"[red]holiday calendar:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    sep = "\n" if fmt is OutputFormat.table else "; "
    rows = [(p.name, p.duty, sep.join(p.schedules) or MANUAL, p.timezone, _runs_text(p, sep)) for p in planned]
    # in a table the pre-holiday notes are printed in their own section, below
    others = [f"note: {duty}: {n}" for duty, found in notes.items() if duty != "pre-holiday" or fmt is not OutputFormat.table
              for n in found]
    local = now.astimezone(ZoneInfo(cfg.timezone))
    data = {"site": site, "now": local.isoformat(), "deployments": [
        {"name": p.name, "flow": p.flow, "duty": p.duty, "schedules": p.schedules, "timezone": p.timezone,
         "manual_only": not p.schedules, "next_runs": [r.isoformat() for r in p.next_runs]} for p in planned],
        "prechecks": [{"holiday": r.holiday.name, "first_day": r.holiday.first_day, "last_day": r.holiday.last_day,
                       "official": r.holiday.official, "runs_at": r.run_at.isoformat()} for r in prechecks],
        "notes": notes}
    emit(fmt, console, title=f"{site}: every deployment, next {count} runs after {local:%Y-%m-%d %H:%M} ({cfg.timezone})",
         columns=("deployment", "duty", "schedule", "timezone", "next runs"), rows=rows, data=data,
         notes=others)
    if fmt is OutputFormat.table:
        console.print()
        _print_prechecks(site, cfg, prechecks, precheck_notes)
