"""The backup verification's standing plan: what a quarterly verification may do to the hospital's
servers, for an approver to read and approve once (QH 9.1.2; tasks/approvals/gate.py).

It is the same every quarter, so one approval stands for a year: the scratch database's name is
given as its pattern (`<prefix><YYYYMMDD_HHMMSS>`), and both ways of finding the backup (the newest
existing one, or one taken now in an exported snapshot) are in it. Any change of the host, the
tools, the scratch server, the prefix or the account changes its SHA-256: approve again.
"""
from __future__ import annotations

import shlex

from config.settings import Site
from tasks.approvals.plan import Plan, PlanStep
from tasks.backup.fresh import STANDING_REQUESTER
from tasks.backup.verify.backends import backend_for
from tasks.backup.verify.outputs import VerifyContext
from tasks.backup.verify.pg_steps import _target, tool

STAMP = "<YYYYMMDD_HHMMSS>"


def _pg_steps(site: Site, scratch: str) -> list[PlanStep]:
    cfg = site.backup_verification
    shost, sport, _ = _target(cfg.source)
    thost, tport, _ = _target(cfg.scratch)
    host = next((h for h in site.hosts if h.name == cfg.host), None)
    folder = host.backup.directory.rstrip("/") if host and host.backup else "<backup.directory>"
    dump = f"{folder}/{cfg.scratch.prefix}{STAMP}.dump"
    backup = "<newest backup, or the dump above>"
    return [
        PlanStep(id="take_backup", kind="command", target=cfg.host, phase="locate",
                 text=shlex.join([tool(cfg, "pg_dump"), "--snapshot", "<exported snapshot>", "-Fc", "-h", shost, "-p",
                                  sport, "-U", cfg.source.user, "-w", "-f", dump, cfg.database_name]),
                 expect=f"仅在选择“现在备份”时：在 {cfg.host} 上写入一个新的导出文件（仅属主可读）；生产库只读"),
        PlanStep(id="validate", kind="command", target=cfg.host, phase="validate",
                 text=f"{shlex.join([tool(cfg, 'pg_restore'), '--list', backup])}\n"
                      f"{shlex.join([tool(cfg, 'pg_restore'), '--file', '/dev/null', backup])}",
                 expect="只读备份文件，不改动任何数据"),
        PlanStep(id="create_scratch", kind="sql", target=f"scratch {thost}:{tport}", phase="restore",
                 text=f'CREATE DATABASE "{scratch}" TEMPLATE template0 ENCODING \'UTF8\'',
                 expect=f"在验证服务器新建临时库 {scratch}（名称必须以 {cfg.scratch.prefix} 开头，且不能是生产库）"),
        PlanStep(id="restore", kind="command", target=cfg.host, phase="restore",
                 text=shlex.join([tool(cfg, "pg_restore"), "--no-owner", "--no-privileges", "--no-tablespaces",
                                  "--exit-on-error", "--jobs", str(cfg.restore_jobs), "-h", thost, "-p", tport, "-U",
                                  cfg.scratch.user, "-w", "-d", scratch, backup]),
                 expect=f"把备份恢复到临时库 {scratch}；生产库不变"),
        PlanStep(id="verify", kind="check", target="production (read only) + scratch", phase="verify",
                 text="对象清单、行数、内容指纹、票据抽样、RPO、RTO（只读查询）", expect="不改动任何数据"),
        PlanStep(id="drop_scratch", kind="sql", target=f"scratch {thost}:{tport}", phase="cleanup",
                 text=f'DROP DATABASE "{scratch}"',
                 expect=f"删除本次创建的临时库 {scratch}（只删除 ebill-ops 标记过的库；未通过且 keep_on_failure 时保留）"),
    ]


def _generic_steps(site: Site, scratch: str) -> list[PlanStep]:
    """Other dialects: the backend's own plan, step by step (the Oracle backend's RMAN, Data Pump
    and the scratch schema's CREATE USER / DROP USER)."""
    cfg = site.backup_verification
    backend = backend_for(cfg.dialect)
    ctx = VerifyContext(site.site, site.timezone, cfg)
    taking, existing = backend.plan(ctx, True, scratch), backend.plan(ctx, False, scratch)
    steps = [PlanStep(id="take_backup", kind="command", target=cfg.host, phase="locate", text=taking["locate"][1],
                      expect="仅在选择“现在备份”时：写入一个新的导出文件；生产库只读")]
    for step, (title, text) in existing.items():
        kind = "check" if step in ("locate", "verify") else "command"
        steps.append(PlanStep(id=step, kind=kind, target=cfg.host, phase=step, text=text, expect=title))
    return steps


def standing_plan(site: Site) -> Plan | None:
    cfg = site.backup_verification
    if cfg is None:
        return None
    scratch = f"{cfg.scratch.prefix}{STAMP}"
    steps = _pg_steps(site, scratch) if cfg.dialect == "postgresql" else _generic_steps(site, scratch)
    facts = {"host": cfg.host, "dialect": cfg.dialect, "tools_dir": cfg.tools_dir, "source_dsn": cfg.source.dsn,
             "source_user": cfg.source.user, "scratch_dsn": cfg.scratch.dsn, "scratch_user": cfg.scratch.user,
             "scratch_prefix": cfg.scratch.prefix, "schema": cfg.schema_name}
    return Plan(site=site.site, duty="backup_verification", title=f"{site.name} 备份恢复验证常设方案",
                requested_by=STANDING_REQUESTER, steps=steps, facts=facts)
