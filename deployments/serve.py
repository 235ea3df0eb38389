"""The in-process `serve` entry for a single machine: every duty's deployment with its schedule.

Schedules are in Asia/Shanghai (the hospitals' time), whatever the worker machine's timezone is
(deployments/schedules.py). `python -m deployments.serve [SITE ...]` serves them (`make ui` starts
a local Prefect server first); the Prefect UI then shows each deployment with its next run times
and a form for manual runs, as does `prefect deployment run 'holiday-precheck/holiday-precheck-demo'`.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from prefect import serve

from config.settings import load_site
from deployments import schedules
from flows.backup_verification import backup_verification
from flows.holiday_precheck import holiday_precheck
from flows.inspection import inspection
from flows.invoice_quality import invoice_quality

log = logging.getLogger("ebops.deployments")


def deployments(site: str, today=None):
    cfg = load_site(site)
    today = today or datetime.now(ZoneInfo(cfg.timezone)).date()
    runs, notes = schedules.planned_prechecks(today, cfg.precheck_workdays_before)
    for note in notes:
        log.warning("pre-holiday schedule of %s: %s", site, note)
    precheck = schedules.precheck_schedule(runs)
    planned = "；".join(f"{r.holiday.name} {r.run_at:%Y-%m-%d %H:%M}" for r in runs) or "无（日历未覆盖）"
    verify_runs, verify_notes = schedules.planned_verifications(today)
    for note in verify_notes:
        log.warning("backup verification schedule of %s: %s", site, note)
    verify = schedules.dates_schedule(verify_runs)
    return [
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
    ]


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO)
    sites = argv or ["demo"]
    serve(*[d for s in sites for d in deployments(s)])


if __name__ == "__main__":
    main(sys.argv[1:])
