"""Phases 4 and 5 across engines (信创: Oracle -> a PostgreSQL-family database): the site's
`migration.cross_engine` commands instead of a dump and a restore. The backup phase runs `export`
(ora2pg on a host with the Oracle client and DBD::Oracle: the frozen source's schema as SQL files in
work_dir), the transfer phase runs `load` (psql: those files into the empty target). Each runs over
SSH as an argv list (quoted per argument), its output kept masked in the phase's record and in full
(masked) as a file of the bundle, like RMAN DUPLICATE's transcript.

The commands are the site's: `argv: ora2pg` confirms the documented template
(config.migration.ORA2PG_EXPORT / ORA2PG_LOAD), anything else is run as written. {placeholders}
are replaced per argument from the site file (config.migration.PLACEHOLDERS). A rerun of the load
after an interrupted attempt does not load over what that attempt left: the target is read first
and, if it is no longer empty, the phase refuses and a person (the DBA) empties it.
"""
from __future__ import annotations

import time

from config.migration import ORA2PG_EXPORT, ORA2PG_LOAD, CrossEngineCommand
from tasks.approvals.plan import PlanStep
from tasks.core.masking import mask_text
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from tasks.migration import db
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

TEMPLATES = {"export": ORA2PG_EXPORT, "load": ORA2PG_LOAD}
STEP_ZH = {"export": "跨引擎导出（ora2pg）", "load": "跨引擎装载到目标库"}


def placeholders(m: Migration) -> dict[str, str]:
    cfg = m.cfg
    xe = cfg.cross_engine
    assert xe is not None
    host, port = db.host_port(cfg.target.database.dsn, "postgresql")
    return {"work_dir": xe.work_dir, "ora2pg_conf": xe.ora2pg_conf, "source_schema": cfg.source.schema,
            "target_schema": cfg.target.schema, "source_dsn": cfg.source.database.dsn, "target_host": host,
            "target_port": str(port), "target_admin_user": cfg.target.admin_user,
            "target_database": cfg.target.database_name}


def command(m: Migration, step: str) -> CrossEngineCommand:
    assert m.cfg.cross_engine is not None
    return getattr(m.cfg.cross_engine, step)


def argv(m: Migration, step: str) -> list[str]:
    """The step's argv as it runs: the template when the site wrote `ora2pg`, placeholders filled."""
    cmd = command(m, step)
    values = placeholders(m)
    out = []
    for arg in TEMPLATES[step] if cmd.argv == "ora2pg" else cmd.argv:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        out.append(arg)
    return out


def _run(m: Migration, ph: PhaseRun, step: str) -> bool:
    cmd = command(m, step)
    began = time.monotonic()
    res = ph.run(m.session(cmd.host), cmd.host, argv(m, step), timeout=cmd.timeout_s or m.cfg.command_timeout_s)
    seconds = time.monotonic() - began
    m.files[f"migration_{step}.log"] = mask_text(res.stdout + res.stderr)
    ok = res.exit_code == 0
    ph.facts.update({f"{step}_seconds": round(seconds, 2), "transfer_method": "cross_engine"})
    ph.check(STEP_ZH[step], Status.OK if ok else Status.FAIL,
             (f"用时 {seconds:.1f} 秒" if ok else f"退出码 {res.exit_code}：{(res.stderr or res.stdout).strip()[-400:]}")
             + f"；完整输出见 migration_{step}.log", host=cmd.host, value=round(seconds, 1), unit="秒",
             code="" if ok else Code.MIGRATION_TRANSFER_FAILED)
    return ok


def export(m: Migration, ph: PhaseRun) -> None:
    """Phase 4 across engines: the frozen source exported (reads it only)."""
    _run(m, ph, "export")


def load(m: Migration, ph: PhaseRun, again: bool) -> None:
    """Phase 5 across engines: the exported files loaded into the target, which must still be empty."""
    cfg = m.cfg
    if again:
        with db.side_session(cfg, cfg.target, snapshot=False) as fetch:
            objects = int(db.side_one(fetch, cfg.target, "user_tables").get("n") or 0)
        if objects:
            ph.check(STEP_ZH["load"], Status.FAIL, f"上次中断的装载已在目标库留下 {objects} 个对象：不在其上再次装载。"
                     "请 DBA 确认并清空目标库后以 --resume 继续（或回退）", value=objects, unit="个对象",
                     host=cfg.target.db_host, code=Code.MIGRATION_TARGET_NOT_EMPTY)
            return
    _run(m, ph, "load")


def plan_steps(m: Migration) -> list[PlanStep]:
    """The 迁移方案's backup and transfer steps across engines, the commands as they will run."""
    import shlex

    src, tgt = m.cfg.source, m.cfg.target
    out = []
    for step, phase, expect in (("export", "backup", f"源库 {src.engine} 模式 {src.schema} 导出为 SQL 文件（只读源库，停机状态）"),
                                ("load", "transfer", f"写入目标库 {tgt.engine} 模式 {tgt.schema}（目标库须为空）")):
        cmd = command(m, step)
        how = "（站点确认采用文档中的 ora2pg 命令模板）" if cmd.argv == "ora2pg" else "（站点自定义命令）"
        out.append(PlanStep(id=f"{phase}:cross_engine_{step}", kind="command", target=cmd.host,
                            text=shlex.join(argv(m, step)), expect=expect + how, phase=phase))
    return out
