"""备份恢复验证: every quarter, restore a backup and prove it holds production's data.

QH: "服务期限内每季度至少完成一次数据库备份和数据库恢复验证，并提供验证全过程详细记录报告"; MZ 一.7.
The checklist, each step recorded with start, end, the command and its output:
  1. locate the newest backup (or take one now inside an exported snapshot), SHA-256 and time;
  2. validate it without restoring (table of contents, every data block readable);
  3. restore it into a scratch database (Oracle: a scratch schema) that cannot be production;
  4. verify: objects, row counts and content fingerprints against production *as of the backup*,
     bills re-read field by field, RPO (newest bill vs backup time), RTO (restore time);
  5. drop the scratch copy (kept for diagnosis if asked and the verification failed);
  6. the 备份恢复验证记录 and result.json into the evidence bundle.
PostgreSQL family: pg_dump/pg_restore in a scratch database. Oracle: RMAN VALIDATE/PREVIEW of the
physical backups, expdp/impdp REMAP_SCHEMA into a scratch schema (tasks/backup/verify/backends.py).
Verdict PASSED only if every step passed: a skipped or unmeasured step fails the run, after the
evidence is stored. Scheduled on the first workday of each quarter at 02:00 (deployments/).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Literal
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.concurrency.sync import concurrency
from pydantic import BaseModel, Field

from config.settings import Site, load_site
from flows.duty_slot import DUTY_SLOT_WAIT_S, DutyBusy, limit_of, duty_slot
from flows.common import BadInput, RunOutcome, current_run_id, finish, store_evidence
from tasks.approvals.records import ApprovalRecord
from tasks.approvals.standing import standing_decision
from tasks.backup.verify.backends import Backend, backend_for
from tasks.backup.verify.plan import standing_plan
from tasks.backup.verify.outputs import STEP_ZH, Located, Restored, Verified, VerifyContext
from tasks.backup.verify.pg_flow_steps import locate_backup
from tasks.connect.ssh import HostPool
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow, verdict


class VerifyParams(BaseModel):
    """The form the Prefect UI shows for a manual verification."""
    site: str = Field(default="demo", description="站点（config/sites/<site>.yaml）")
    take_backup: bool = Field(default=False, description="现在在导出的快照中做一次备份并验证它（否则验证最新的已有备份）")
    backup_path: str | None = Field(default=None, description="指定要验证的备份文件（备份主机上的完整路径）；留空取最新")
    scratch_name: str | None = Field(default=None, description="临时库名（留空自动生成；必须以站点配置的前缀开头）")
    keep_on_failure: bool | None = Field(default=None, description="验证未通过时保留临时库供排查；留空按站点配置")
    mode: Literal["run", "plan"] = Field(default="run", description="run 执行；plan 只列出将执行的步骤与命令")
    engineer: str = Field(default="", description="维护工程师（写入记录签字栏）")


class NotConfigured(BadInput):
    pass


def plan_records(ctx: VerifyContext, backend: Backend, params: VerifyParams, scratch: str,
                 refusal: tuple[Code, str]) -> list[CheckResult]:
    """plan mode, or no valid recorded approval: what would be done, as SKIPPED records (not passed)."""
    code, why = refusal
    return [ctx.skipped(step, title, f"{why}：{text}", code)
            for step, (title, text) in backend.plan(ctx, params.take_backup, scratch).items()]


def verification_approval(site: Site, params: VerifyParams) -> tuple[ApprovalRecord | None, tuple[Code, str] | None]:
    """The recorded approval of the verification's standing plan, or why there is none. Without
    one (and in plan mode) the plan is stored, so that its key can be approved (`ebops approve`)."""
    return standing_decision(site, standing_plan(site), params.engineer, params.mode == "run", current_run_id())


def record_context(ctx: VerifyContext, located: Located | None, backend: Backend, scratch: str,
                   results: list[CheckResult]) -> dict:
    b = located.backup if located is not None else None
    tz = ZoneInfo(ctx.tz)
    steps = []
    for step, name in STEP_ZH.items():
        rows = [r for r in results if r.check.startswith(f"backup_{step}") or
                (step == "verify" and r.check.startswith("restore_"))]
        if rows:
            steps.append({"name": name, "status": verdict(rows).value, "status_zh": verdict(rows).label_zh,
                          "started": min(r.started_at for r in rows).astimezone(tz).strftime("%H:%M:%S"),
                          "finished": max(r.finished_at for r in rows).astimezone(tz).strftime("%H:%M:%S"),
                          "seconds": round(max(r.finished_at for r in rows).timestamp()
                                           - min(r.started_at for r in rows).timestamp(), 1), "items": len(rows)})
    passed = bool(results) and all(r.status is Status.OK for r in results)
    return {
        "backup": None if b is None else {
            "host": b.host, "path": b.path, "size_mib": round(b.size / 1048576, 2), "sha256": b.sha256,
            "taken_local": b.taken_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), "time_source": b.time_source,
            "taken_by_us": b.taken_by_us, "snapshot_id": b.snapshot_id},
        "scratch": scratch, "steps": steps, "passed": passed,
        "conclusion_zh": "通过（PASSED）" if passed else "不通过（NOT PASSED）",
        "database_zh": backend.name_zh, "scratch_kind_zh": "临时 schema" if ctx.cfg.dialect == "oracle" else "临时库",
        "scope_zh": (backend.scope_ours_zh if b is not None and b.taken_by_us else
                     "他人所做备份：只比较备份时间之前开具的行（cutoff_columns），且不比较备份后仍会变化的列"
                     f"（mutable_columns：{ctx.cfg.mutable_columns or '无'}）；其他表全表比较"),
        "quality_suite_zh": ("发票数据质量套件（DQ01–DQ22）已在恢复库上运行（备份日前 7 天的票据，截至备份时间），"
                             "结果见比对校验步骤与 restored_quality.json" if ctx.cfg.dialect == "postgresql" else
                             "Oracle 的临时 schema 只含导入的厂商表，不含规范视图（ebill_canon），"
                             "发票数据质量套件未在恢复库上运行；生产库的每日数据质量检查照常进行"),
    }


RESTORES_PER_SERVER = 1   # the limit's value when first made; an operator may raise it in the Prefect UI


def restore_server(dsn: str) -> str:
    """host:port of a verification server from its DSN (libpq conninfo or Oracle host:port/service)."""
    kv = dict(re.findall(r"(\w+)\s*=\s*(\S+)", dsn))
    if kv:
        return f"{kv.get('host', 'localhost')}:{kv.get('port', '5432')}"
    return dsn.split("/", 1)[0]


@contextmanager
def restore_slot(dsn: str):
    """One restore at a time per verification server, whichever site's run it is: a vendor's sites
    may share a verification server, and restores at once would each take longer than their RTO.
    A Prefect global concurrency limit `ebops:restore:<host:port>` (RESTORES_PER_SERVER when made)."""
    name = f"ebops:restore:{restore_server(dsn)}"
    limit_of(name, RESTORES_PER_SERVER)
    try:
        with concurrency(name, occupy=1, timeout_seconds=DUTY_SLOT_WAIT_S, raise_on_lease_renewal_failure=False):
            yield
    except TimeoutError:
        raise DutyBusy(f"restores into {restore_server(dsn)} held concurrency limit {name} for more than "
                       f"{DUTY_SLOT_WAIT_S} s (hint: prefect global-concurrency-limit inspect {name})") from None


@flow(name="backup-verification", log_prints=True)
def backup_verification(params: VerifyParams = VerifyParams()) -> RunOutcome:
    """备份恢复验证: locate, validate, restore, verify, clean up; the record as evidence."""
    site: Site = load_site(params.site)
    cfg = site.backup_verification
    if cfg is None:
        raise NotConfigured(f"site {site.site} has no backup_verification section (hint: see config/sites/demo.yaml)")
    backend = backend_for(cfg.dialect)
    host = next((h for h in site.hosts if h.name == cfg.host), None)
    if host is None:
        raise NotConfigured(f"backup_verification.host {cfg.host!r} is not one of the hosts in {site.source}")
    # One verification per site at a time: two would restore into the database server at once and
    # race for the chain (the scratch names differ, the load does not).
    with duty_slot(site.site, "backup_verification"):
        started = utcnow()
        local = started.astimezone(ZoneInfo(site.timezone))
        stamp = local.strftime("%Y%m%d_%H%M%S")
        scratch = params.scratch_name or f"{cfg.scratch.prefix}{stamp}"
        ctx = VerifyContext(site.site, site.timezone, cfg)
        try:
            location = backend.location(ctx, host.backup)
        except ValueError as exc:
            raise NotConfigured(f"{site.source}: {exc}") from None
        keep = cfg.keep_on_failure if params.keep_on_failure is None else params.keep_on_failure
        located, files, used_scratch = None, {}, scratch
        approval, refusal = verification_approval(site, params)
        approvals = [{**approval.summary(), "host": cfg.host, "scratch": scratch}] if approval else []
        if approval is None:
            results = plan_records(ctx, backend, params, scratch, refusal)
        else:
            with HostPool() as pool:
                session = pool.get(host)
                located = (backend.take_backup(ctx, session, location, stamp) if params.take_backup
                           else locate_backup(ctx, session, location, params.backup_path))
                validated = backend.validate(ctx, session, located)
                if not (located.ok and validated.ok):
                    # an unreadable backup is not restored: the later steps say why they did not run
                    restored = Restored([ctx.skipped("restore", "恢复", "前面的步骤未通过，不恢复")])
                    verified = Verified([ctx.skipped("verify", "比对校验", "未恢复，无法比对")])
                else:
                    # Restores of many sites into one verification server take turns (see restore_slot).
                    with restore_slot(cfg.scratch.dsn):
                        restored = backend.restore(ctx, session, located, scratch, current_run_id())
                        verified = backend.verify(ctx, located, restored)
                results = located.records + validated.records + restored.records + verified.records
                failed = any(r.status is not Status.OK for r in results)
                results += backend.cleanup(ctx, restored, keep and failed)
                files, used_scratch = {**located.files, **verified.files}, restored.scratch or scratch
        bundle = store_evidence(site, "backup_verification", period=f"{local.year}-Q{(local.month - 1) // 3 + 1}",
                                form="backup_verification", title="备份恢复验证记录", kind_zh="季度备份恢复验证",
                                results=results, started_at=started, engineer=params.engineer, extra_files=files,
                                approvals=approvals, context=record_context(ctx, located, backend, used_scratch, results))
    return finish(site, "backup_verification", results, bundle, strict=True)

