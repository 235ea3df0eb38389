"""The in-process `serve` entry for a single machine: every duty's deployment with its schedule.

Schedules are in Asia/Shanghai (the hospitals' time), whatever the worker machine's timezone is
(deployments/schedules.py). `python -m deployments.serve [SITE ...]` serves them (`make ui` starts
a local Prefect server first); the Prefect UI then shows each deployment with its next run times
and a form for manual runs, as does `prefect deployment run 'holiday-precheck/holiday-precheck-demo'`.
SIGTERM (a service manager) and SIGINT (Ctrl-C) stop serving cleanly (serve_until_signal).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import sys
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from deployments.warm_runner import WarmRunner

from config.settings import load_site
from deployments import schedules
from tasks.core import timetable
from flows.backup_verification import backup_verification
from flows.holiday_precheck import holiday_precheck
from flows.inspection import inspection
from flows.invoice_quality import invoice_quality
from flows.year_end import year_end
from flows.migration import migration
from flows.watch import watch
from flows.portal import evidence_portal
from flows.service_report import service_report

log = logging.getLogger("ebops.deployments")


def deployments(site: str, today=None, notes: dict[str, list[str]] | None = None):
    """Every deployment of the site, its schedules planned from `today` (the site's date by default).

    The calendar's notes (a year not covered, a date planned from a template) go to the log, or
    into `notes` (duty -> notes) when given: `ebops schedule` prints them instead of log lines."""
    cfg = load_site(site)
    today = today or datetime.now(ZoneInfo(cfg.timezone)).date()

    def note_all(duty: str, found: list[str]) -> None:
        for note in found:
            if notes is None:
                log.warning("%s schedule of %s: %s", duty, site, note)
            else:
                notes.setdefault(duty, []).append(note)

    runs, precheck_notes = timetable.planned_prechecks(today, cfg.precheck_workdays_before)
    note_all("pre-holiday", precheck_notes)
    precheck = schedules.precheck_schedule(runs)
    planned = "；".join(f"{r.holiday.name} {r.run_at:%Y-%m-%d %H:%M}" for r in runs) or "无（日历未覆盖）"
    verify_runs, verify_notes = timetable.planned_verifications(today)
    note_all("backup verification", verify_notes)
    verify = schedules.dates_schedule(verify_runs)
    out = []
    if cfg.year_end is not None:
        ye_runs, ye_notes = timetable.planned_year_end(today)
        note_all("year-end", ye_notes)
        ye = schedules.dates_schedule(ye_runs)
        # plan only on its schedule (the group is told an approval waits); execute by hand after approval
        out.append(year_end.to_deployment(
            name=f"year-end-{site}", parameters={"params": {"site": site, "mode": "plan"}},
            schedules=[ye] if ye else [], tags=[site, "year-end"],
            description="技术年结：每年 12 月第一个工作日 09:00 自动生成方案并通知审批；审批后手动以 mode=execute 执行，"
                        "须在 12 月 31 日前完成。计划：" + ("；".join(f"{d:%Y-%m-%d %H:%M}" for d in ye_runs) or "无")))
    return out + [
        inspection.to_deployment(name=f"inspection-monthly-{site}", parameters={"site": site, "kind": "monthly"},
                                 schedules=[schedules.monthly_inspection()], tags=[site, "inspection"]),
        inspection.to_deployment(name=f"inspection-quarterly-{site}", parameters={"site": site, "kind": "quarterly"},
                                 schedules=[schedules.quarterly_inspection()], tags=[site, "inspection"]),
        # N workdays before each ≥3-day holiday, from the State Council calendar; also run by hand.
        holiday_precheck.to_deployment(
            name=f"holiday-precheck-{site}", parameters={"params": {"site": site}},
            schedules=[precheck] if precheck else [], tags=[site, "holiday-precheck"],
            description=f"节前巡检（放假前 {cfg.precheck_workdays_before} 个工作日 09:00）。计划：{planned}"),
        # the first workday of each quarter at 02:00; also run by hand (take_backup, a given file)
        backup_verification.to_deployment(
            name=f"backup-verification-{site}", parameters={"params": {"site": site}},
            schedules=[verify] if verify else [], tags=[site, "backup-verification"],
            description="季度备份恢复验证（每季度第一个工作日 02:00）。计划："
                        + ("；".join(f"{d:%Y-%m-%d %H:%M}" for d in verify_runs) or "无（日历未覆盖）")),
        # yesterday's bills against DQ01-DQ22, every day at 06:00; by hand for any date range
        invoice_quality.to_deployment(
            name=f"invoice-quality-{site}", parameters={"params": {"site": site}},
            schedules=[schedules.daily_quality()], tags=[site, "invoice-quality"],
            description="每日 06:00 票据数据质量检查（昨天开具的票据，规则 DQ01–DQ22）；也可手动指定期间"),
        # 接口运维: functions, interfaces, stock every few minutes; alerts on changes; the 日运行表 sealed daily
        watch.to_deployment(
            name=f"watch-{site}", parameters={"site": site}, schedules=[schedules.watch_every(cfg.watch.interval_minutes)],
            tags=[site, "watch"],
            description=f"接口运维：每 {cfg.watch.interval_minutes} 分钟探测电子票据功能、接口成功率与票据库存；"
                        "状态变化时告警；次日封存日运行表"),
        # the portal's presigned links live 7 days at most: rebuilt daily so none an auditor holds expires
        evidence_portal.to_deployment(
            name=f"evidence-portal-{site}", parameters={"site": site},
            schedules=[schedules.daily_portal()], tags=[site, "evidence-portal"],
            description="每日 06:30 重新生成证据门户（静态 HTML，含各证据包的校验状态和有效期 7 天的链接）"),
        # 服务报告 from the evidence store alone: the half-year just ended (the 考核 of QH 3.4), and each month's
        service_report.to_deployment(
            name=f"service-report-half-{site}", parameters={"params": {"site": site, "period": "previous-half"}},
            schedules=[schedules.half_year_report()], tags=[site, "service-report"],
            description="半年度服务报告：每年 1 月 5 日、7 月 5 日 08:00 生成上一个半年的报告（维护维修台账、可用率、"
                        "证据链检查点）；也可手动指定期间"),
        service_report.to_deployment(
            name=f"service-report-monthly-{site}", parameters={"params": {"site": site, "period": "previous-month"}},
            schedules=[schedules.monthly_report()], tags=[site, "service-report"],
            description="月度服务报告：每月 5 日 08:00 生成上个月的报告"),
    ] + ([
        # by hand only: mode plan makes the 迁移方案; execute needs its three recorded approvals
        migration.to_deployment(
            name=f"migration-{site}", parameters={"params": {"site": site, "mode": "plan"}}, tags=[site, "migration"],
            description="服务器迁移（手动）：plan 生成迁移方案供评审；execute 在三次审批后分阶段执行，可暂停、继续、回退"),
    ] if cfg.migration is not None else [])


STOP_TIMEOUT_S = 30
IN_PROCESS_FLOWS = {watch.name: watch}


def in_process(deps: list) -> dict:
    """Deployment name -> flow, for the deployments served in this process (deployments/warm_runner.py)."""
    return {d.name: IN_PROCESS_FLOWS[d.flow_name] for d in deps if d.flow_name in IN_PROCESS_FLOWS}


def serve_until_signal(deps: list) -> str:
    """Serve the deployments until SIGTERM or SIGINT; return the signal's name once serving stopped.

    Not prefect.serve(): its SIGTERM handler calls the runner's async stop() from a signal handler
    ("coroutine 'Runner.astop' was never awaited") and the process goes on serving, so a service
    manager could only SIGKILL it. Here the runner's loop runs in a thread, and the main thread,
    which receives the signals, stops it with astop() on that loop.
    """
    # The watch runs every few minutes and costs ~0.1 CPU-s; a spawned process per run would cost
    # ~3.5 CPU-s more (deployments/warm_runner.py): it runs in this process.
    runner = WarmRunner(pause_on_shutdown=True, in_process=in_process(deps))
    for d in deps:
        runner.add_deployment(d)
    box: dict = {}
    received: list[int] = []   # appended by the handler: no lock taken inside a signal handler

    def run() -> None:
        async def start() -> None:
            box["loop"] = asyncio.get_running_loop()
            await runner.start()
        try:
            asyncio.run(start())
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            box["error"] = exc

    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    # The caller's Prefect settings context (its API URL) does not cross into a new thread by
    # itself: without the copy the runner would poll a temporary server of its own.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="ebops-serve", daemon=True)
    try:
        thread.start()
        while thread.is_alive() and not received:
            thread.join(timeout=0.5)   # wakes for a signal too: the handler runs between joins
        if not received:   # the runner ended by itself
            if "error" in box:
                raise box["error"]
            return "end"
        log.info("%s received: stopping the served deployments", signal.Signals(received[0]).name)
        loop = box.get("loop")
        if loop is not None and runner.started:
            try:
                asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=STOP_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - stopping goes on: the process is ending anyway
                log.warning("runner did not stop cleanly: %s", exc)
        thread.join(timeout=STOP_TIMEOUT_S)
        return signal.Signals(received[0]).name
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO)
    sites = argv or ["demo"]
    stopped_by = serve_until_signal([d for s in sites for d in deployments(s)])
    print(f"serving stopped ({stopped_by})")


if __name__ == "__main__":
    main(sys.argv[1:])
