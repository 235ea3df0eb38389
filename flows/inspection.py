"""巡检 (routine inspection): MZ 一.2-16 quarterly, QH monthly on-site inspection with report.

Reads like the checklist: servers' disks, the database's tablespaces, the last backup; then the
Chinese 巡检报告 and result.json go into an evidence bundle, and a FAIL/ERROR verdict fails the run.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger

from config.settings import Site, load_site
from flows.common import RunOutcome, finish, store_evidence
from tasks.database_checks import tablespace_usage
from tasks.host_checks import disk_usage, last_backup
from tasks.hosts import HostPool
from tasks.results import CheckResult, utcnow

KIND_ZH = {"monthly": "月度巡检", "quarterly": "季度巡检", "adhoc": "临时巡检"}


def inspection_period(kind: str, when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    if kind == "quarterly":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    if kind == "monthly":
        return local.strftime("%Y-%m")
    return local.strftime("%Y-%m-%d")


def run_catalogue(site: Site, pool: HostPool) -> list[CheckResult]:
    """Every check of the catalogue for one site; each check records its own ERRORs."""
    results: list[CheckResult] = []
    for host in site.hosts:
        results += disk_usage(site.site, host, pool, site.thresholds)
    results += tablespace_usage(site, pool)
    for host in site.hosts:
        if host.backup is not None:
            results += last_backup(site.site, host, pool, site.thresholds)
    return results


@flow(name="inspection", log_prints=True)
def inspection(site: str = "demo", kind: Literal["monthly", "quarterly", "adhoc"] = "adhoc",
               engineer: str = "") -> RunOutcome:
    """巡检: run the inspection catalogue against one site and store the 巡检报告 as evidence."""
    logger = get_run_logger()
    cfg = load_site(site)
    started = utcnow()
    pool = HostPool()
    try:
        results = run_catalogue(cfg, pool)
    finally:
        pool.close_all()
    logger.info("%d checks done on %s", len(results), cfg.site)
    bundle = store_evidence(cfg, duty="inspection", period=inspection_period(kind, started, cfg.timezone),
                            form="inspection", title="巡检报告", kind_zh=KIND_ZH[kind], results=results,
                            started_at=started, engineer=engineer)
    return finish(cfg, "inspection", results, bundle)
