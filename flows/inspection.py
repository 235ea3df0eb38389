"""巡检 (routine inspection): MZ 一.2-16 quarterly, QH monthly on-site inspection with report.

Reads like the checklist of duties.md ("The inspection catalogue"): servers' disks, tablespaces,
the last backup, new log errors, the e-bill functions, the interfaces, the finance platform's
backlog, the bill-number stock, certificates, the holiday calendar. Then the Chinese 巡检报告 and
result.json go into an evidence bundle, alerts go out, and a FAIL/ERROR verdict fails the run.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Literal
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from config.settings import Site, load_site
from flows.common import RunOutcome, finish, state_dir, store_evidence
from flows.duty_slot import duty_slot
from tasks.core.alerts import send_alerts
from tasks.evidence.checkpoint import checkpoint_bytes, make_checkpoint, summary_for_report
from tasks.inspection.calendar import calendar_coverage
from tasks.inspection.certs import certificate_files, tls_endpoints
from tasks.inspection.database import tablespace_usage
from tasks.inspection.ebill import bill_stock, finance_backlog, interface_calls
from tasks.inspection.health import ebill_functions
from tasks.inspection.hosts import disk_usage, last_backup
from tasks.connect.ssh import HostPool
from tasks.inspection.logs import load_positions, log_errors, save_positions
from tasks.core.results import CheckResult, error_result, utcnow

KIND_ZH = {"monthly": "月度巡检", "quarterly": "季度巡检", "adhoc": "临时巡检", "holiday": "节前巡检"}
# Checks of one run that may be in flight together: hosts answer slowly (SSH round trips), the
# database and HTTP calls are independent, so a site's catalogue takes about its slowest check.
CHECKS_IN_FLIGHT = 16


def inspection_period(kind: str, when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    if kind == "quarterly":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    if kind == "monthly":
        return local.strftime("%Y-%m")
    return local.strftime("%Y-%m-%d")


@dataclass
class Catalogue:
    """The records of one catalogue run and the log positions to keep once they are stored."""
    results: list[CheckResult]
    positions: dict = field(default_factory=dict)


def _collect(future, check: str, title: str, site_id: str, host: str | None = None) -> list[CheckResult]:
    # Every check returns ERROR records itself; this guards against a bug in one check, so the
    # report still lists the item (as ERROR) instead of the whole run dying without evidence.
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001
        return [error_result(exc, check=check, title=title, site=site_id, host=host)]


class PlainChecks:
    """Runs the checks as plain functions on threads of its own instead of as Prefect task runs.

    A fleet run uses it: twenty hospitals times fifteen task runs each made the local Prefect API
    (SQLite) answer 503 and a third of the hospitals end in ERROR, while the checks themselves only
    wait on SSH, SQL and HTTP. Each hospital is then one task run; its evidence is the same.
    """

    def __init__(self, workers: int = CHECKS_IN_FLIGHT):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")

    def __call__(self, task, *args):
        # Each check gets a copy of the caller's context, so get_run_logger() still finds the run.
        return self._pool.submit(contextvars.copy_context().run, task.fn, *args)

    def __enter__(self) -> "PlainChecks":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)


def _as_task_runs(task, *args):
    return task.submit(*args)


def run_catalogue(site: Site, pool: HostPool, positions: dict | None = None,
                  submit: Callable = _as_task_runs) -> Catalogue:
    """Every item of the inspection catalogue for one site, in the catalogue's order.

    The checks are submitted together (to the flow's bounded task runner, or to `PlainChecks`),
    so hosts and the database are read concurrently; each check records its own ERRORs and the
    rest go on.
    """
    th, sid = site.thresholds, site.site
    positions = dict(positions or {})
    planned: list[tuple[object, str, str, str | None]] = []

    def plan(task: Callable, check: str, title: str, *args, host: str | None = None) -> None:
        planned.append((submit(task, *args), check, title, host))

    for h in site.hosts:
        plan(disk_usage, "disk_usage", "服务器磁盘使用率", sid, h, pool, th, host=h.name)
    plan(tablespace_usage, "tablespace_usage", "表空间使用率", site, pool)
    for h in site.hosts:
        if h.backup is not None:
            plan(last_backup, "last_backup", "最近一次备份", sid, h, pool, th, host=h.name)
    log_runs = [(h, submit(log_errors, sid, h, pool, positions)) for h in site.hosts if h.logs]
    planned_logs_at = len(planned)
    plan(ebill_functions, "ebill_function", "电子票据功能可用性", site)
    plan(interface_calls, "interface_calls", "接口调用", site)
    plan(finance_backlog, "finance_backlog", "财政平台在途票据", site)
    plan(bill_stock, "bill_stock", "票据库存", site)
    for h in site.hosts:
        if h.certificates:
            plan(certificate_files, "certificate_expiry", "证书有效期", sid, h, pool, th, host=h.name)
    if site.tls_endpoints:
        plan(tls_endpoints, "certificate_expiry", "证书有效期", site, th)
    plan(calendar_coverage, "calendar_coverage", "节假日日历覆盖", site)

    results: list[CheckResult] = []
    new_positions = dict(positions)
    for i, (future, check, title, host) in enumerate(planned):
        if i == planned_logs_at:
            for h, fut in log_runs:
                try:
                    recs, pos = fut.result()
                    results += recs
                    new_positions.update(pos)
                except Exception as exc:  # noqa: BLE001
                    results.append(error_result(exc, check="log_errors", title="日志错误", site=sid, host=h.name))
        results += _collect(future, check, title, sid, host)
    return Catalogue(results, new_positions)


def positions_file(site: Site):
    return state_dir(site) / "log_positions.json"


def inspect_site(cfg: Site, kind: str, engineer: str = "", *, title: str = "巡检报告", form: str = "inspection",
                 duty: str = "inspection", before_catalogue: Callable[[HostPool], list[CheckResult]] | None = None,
                 context: dict | None = None, approvals: list[dict] | None = None,
                 period: str | None = None, plain: bool = False,
                 extra_files: dict[str, bytes | str] | None = None) -> RunOutcome:
    """One site's catalogue, its evidence, then the log positions and the alerts; never raises for
    a bad verdict (the caller decides: a flow fails its run, the fleet collects). `plain` runs
    the checks without task runs of their own (see PlainChecks). Holds the site's inspection slot
    (flows.duty_slot.duty_slot), so a fleet run and a single-site run of one site take turns."""
    # The inspection's slot at this site, whichever duty runs the catalogue (the pre-holiday check
    # too): from reading the saved log positions to saving the new ones, one run at a time.
    with duty_slot(cfg.site, "inspection"):
        logger = get_run_logger()
        started = utcnow()
        pf = positions_file(cfg)
        with HostPool() as pool, PlainChecks() as plain_checks:
            first = before_catalogue(pool) if before_catalogue is not None else []
            cat = run_catalogue(cfg, pool, load_positions(pf), submit=plain_checks if plain else _as_task_runs)
            cat.results = first + cat.results
        logger.info("%d checks done on %s", len(cat.results), cfg.site)
        store = store_evidence.fn if plain else store_evidence
        bundle = store(cfg, duty=duty, period=period or inspection_period(kind, started, cfg.timezone),
                       form=form, title=title, kind_zh=KIND_ZH.get(kind, kind), results=cat.results,
                       started_at=started, engineer=engineer, context=context, approvals=approvals,
                       extra_files=extra_files)
        # Only now that the findings are stored: a crash before this point re-reads the same lines.
        save_positions(pf, cat.positions)
    send_alerts(cfg, cat.results, title=title, report_url=bundle.report_url, evidence_prefix=bundle.prefix)
    return finish(cfg, duty, cat.results, bundle, raise_on_failure=False)


@flow(name="inspection", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=CHECKS_IN_FLIGHT))
def inspection(site: str = "demo", kind: Literal["monthly", "quarterly", "adhoc"] = "adhoc",
               engineer: str = "", check_task_runs: bool = True) -> RunOutcome:
    """巡检: run the inspection catalogue against one site and store the 巡检报告 as evidence.

    `check_task_runs=False` runs the checks as plain functions (PlainChecks): the same records and
    evidence without a Prefect task run per check, which costs the worker ~0.7 CPU-s and the
    Prefect server ~1.5 CPU-s per inspection (bench/pool_bench.py); the fleet's deployments use it."""
    cfg = load_site(site)
    context, files, first = {}, {}, []
    if kind == "monthly":  # the signed checkpoint the 信息科 keeps (tasks/evidence/checkpoint.py)
        try:
            cp = make_checkpoint(cfg.evidence, cfg.site)
            context["checkpoint"], files["checkpoint.json"] = summary_for_report(cp), checkpoint_bytes(cp)
        except Exception as exc:  # noqa: BLE001 - the inspection goes on; the report says what is missing
            first.append(error_result(exc, check="evidence_checkpoint", title="证据链检查点", site=cfg.site,
                                      target="checkpoint.json"))
    outcome = inspect_site(cfg, kind, engineer, context=context, extra_files=files, plain=not check_task_runs,
                           before_catalogue=(lambda _pool: first) if first else None)
    return finish(cfg, "inspection", outcome.results, outcome.bundle)
