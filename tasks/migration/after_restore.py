"""Oracle's after-restore checks (oracle.AFTER_RESTORE_SQL), the first thing of phase 6, verify:
the target database is OPEN READ WRITE, and no object of the vendor's schema was made invalid by
the move (impdp imports PL/SQL and views in an order that can leave them invalid; RMAN DUPLICATE
opens the copy with RESETLOGS).

Why in verify and not at the end of the restore: an Oracle DBA's first look after impdp or a
DUPLICATE is exactly these two queries, before any comparison — and verify starts right after the
transfer, with nothing between. Verify is read-only and reads the target with the verification
account (these are two SELECTs); the transfer phase is the one that changes the target through the
database tools over SSH and is run again on resume, so it stays the tools' phase. A FAIL here fails
verify like any difference found there, so the run goes to the rollback path before the cut-over.

Invalid objects are read on both sides: a vendor's schema often carries a few invalid objects for
years (a dropped package's leftovers); those invalid on the source too are named (WARN), only
those valid on the source and invalid on the target are the move's fault (FAIL).
"""
from __future__ import annotations

from tasks.backup.verify.measure import Fetch, catalog_name
from tasks.backup.verify.reading import Statement
from tasks.core.reason_codes import Code
from tasks.core.results import Status, utcnow
from tasks.migration import db, oracle
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

NAMED = 10  # objects named in a reason


def invalid_objects(fetch: Fetch, schema: str) -> list[str]:
    """`TYPE NAME` of every invalid object of the schema, in order."""
    rows = fetch(Statement(oracle.AFTER_RESTORE_SQL["invalid_objects"], {"schema": catalog_name("oracle", schema)}))
    return [f"{r['object_type']} {r['object_name']}" for r in rows]


def open_mode(fetch: Fetch) -> tuple[str, str]:
    """(database name, open mode) from v$database."""
    rows = fetch(Statement(oracle.AFTER_RESTORE_SQL["open_mode"]))
    return (str(rows[0].get("name") or ""), str(rows[0].get("open_mode") or "")) if rows else ("", "")


def judge_open_mode(name: str, mode: str) -> tuple[Status, str, str]:
    """(status, Chinese reason, code): the target must be OPEN READ WRITE."""
    if mode.upper() == "READ WRITE":
        return Status.OK, f"目标库 {name} 已打开（OPEN READ WRITE）", ""
    return (Status.FAIL, f"目标库 {name or '?'} 的打开模式为 {mode or '未读到'}，应为 READ WRITE（RMAN DUPLICATE 应以 "
            f"RESETLOGS 打开；请 DBA 检查后再校验）", Code.MIGRATION_NOT_OPEN)


def judge_invalid(schema: str, source: list[str], target: list[str]) -> tuple[Status, str, str]:
    """(status, Chinese reason, code): objects invalid on the target and valid on the source FAIL;
    those already invalid on the source are named (WARN)."""
    new = [o for o in target if o not in set(source)]
    old = [o for o in target if o in set(source)]
    if new:
        more = f" 等 {len(new)} 个" if len(new) > NAMED else ""
        return (Status.FAIL, f"模式 {schema} 在目标库有 {len(new)} 个对象恢复后失效（源库有效）：{'、'.join(new[:NAMED])}{more}"
                "（请 DBA 重新编译，如 @?/rdbms/admin/utlrp.sql，确认后再校验）", Code.MIGRATION_INVALID_OBJECTS)
    if old:
        return (Status.WARN, f"模式 {schema} 在目标库有 {len(old)} 个失效对象，源库原已失效（非迁移造成）："
                f"{'、'.join(old[:NAMED])}" + (f" 等 {len(old)} 个" if len(old) > NAMED else ""), "")
    return Status.OK, f"模式 {schema} 在目标库没有失效对象", ""


def run(m: Migration, ph: PhaseRun) -> None:
    """The two checks on an Oracle target, one record each; nothing for another dialect."""
    cfg = m.cfg
    if cfg.target.engine != "oracle" or cfg.source.engine != "oracle":
        return
    started, host, schema = utcnow(), cfg.target.db_host, cfg.target.schema
    try:
        with db.side_session(cfg, cfg.target, snapshot=False) as fetch:
            name, mode = open_mode(fetch)
            target = invalid_objects(fetch, schema)
        with db.side_session(cfg, cfg.source, snapshot=False) as fetch:
            source = invalid_objects(fetch, schema)
    except Exception as exc:  # noqa: BLE001 - the record says what could not be read
        ph.check("恢复后检查", Status.ERROR, f"{type(exc).__name__}: {exc}", host=host, started_at=started)
        return
    ph.note(host, "; ".join(oracle.AFTER_RESTORE_SQL.values()),
            f"{name} {mode}; invalid objects: target {len(target)}, source {len(source)}", 0)
    st, reason, code = judge_open_mode(name, mode)
    ph.check("恢复后检查：数据库打开模式", st, reason, value=mode, threshold="READ WRITE", host=host,
             started_at=started, code=code)
    st, reason, code = judge_invalid(schema, source, target)
    ph.check("恢复后检查：失效对象", st, reason, value=len([o for o in target if o not in set(source)]),
             unit="个新失效", threshold="0", host=host, target=schema, started_at=started, code=code)
