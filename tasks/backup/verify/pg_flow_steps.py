"""Steps 1-2 of the PostgreSQL verification as Prefect tasks (locate is shared with Oracle). Each
returns a typed result (outputs.py) holding its records (CheckResult: start, end, the command run and
its output; the 备份恢复验证记录 lists them in order) and what the later steps need.

A step that cannot run because an earlier one failed says so as SKIPPED (never as passed), so
"restore skipped" can never read as "restore fine" (dbatools #1736).
"""
from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import psycopg
from prefect import task
from prefect.cache_policies import NONE

from config.hosts import BackupConfig
from tasks.backup.verify import locate, measure, pg_steps
from tasks.backup.verify.locate import BackupFile
from tasks.backup.verify.outputs import STEP_ZH, Located, Validated, VerifyContext
from tasks.backup.verify import reading as rd
from tasks.connect.database.base import QueryDeadlineExceeded
from tasks.connect.database.deadline import deadline_message, pg_timed_out
from tasks.connect.database.postgresql import pg_fetch
from tasks.connect.ssh import HostSession
from tasks.core.reason_codes import Code
from tasks.core.results import Status, error_result, utcnow

def fetcher(conn: psycopg.Connection):
    def fetch(st: rd.Statement) -> list[dict]:
        try:
            names, rows = pg_fetch(conn, st.sql, st.params)
        except psycopg.Error as exc:
            kind, deadline = pg_timed_out(exc), getattr(conn, "deadline", None)
            if kind and deadline:  # name the table and the deadline, not just "canceling statement"
                raise QueryDeadlineExceeded(deadline_message(
                    st.sql, deadline, kind, setting="backup_verification.source/scratch.statement_timeout_s or "
                    "lock_timeout_s")) from None
            raise
        return [dict(zip(names, r)) for r in rows]
    return fetch


# ---------------------------------------------------------------- 1. locate (or take) the backup
@task(name="locate_backup", cache_policy=NONE)
def locate_backup(ctx: VerifyContext, session: HostSession, backup_cfg: BackupConfig, path: str | None) -> Located:
    started = utcnow()
    try:
        found = locate.given_backup(session, path) if path else locate.newest_backup(session, backup_cfg)
        b, raw = locate.describe(session, backup_cfg, *found, timeout=ctx.cfg.command_timeout_s)
    except Exception as exc:  # noqa: BLE001 - no backup found or host unreachable: the record says which
        return Located([error_result(exc, started_at=started, check="backup_locate", title=f"{STEP_ZH['locate']}：备份文件",
                                     site=ctx.site, host=ctx.cfg.host, target=backup_cfg.directory)])
    return Located([ctx.record("locate", "备份文件", Status.OK, started=started, target=b.path, value=b.size, unit="字节",
                               reason=f"{b.name}，{b.size / 1048576:.1f} MiB，SHA-256 {b.sha256}，备份时间 "
                                      f"{b.taken_at.astimezone(ZoneInfo(ctx.tz)):%Y-%m-%d %H:%M:%S}（{b.time_source}）",
                               raw=raw)], backup=b)


@task(name="take_backup_in_snapshot", cache_policy=NONE)
def take_backup(ctx: VerifyContext, session: HostSession, backup_cfg: BackupConfig, run_stamp: str) -> Located:
    """pg_dump inside an exported snapshot, and production measured in that same snapshot, so the
    comparison is exact however busy production is (new bills, status updates)."""
    started = utcnow()
    dest = f"{backup_cfg.directory.rstrip('/')}/{ctx.cfg.scratch.prefix}{run_stamp}.dump"
    try:
        with pg_steps.connect(ctx.cfg.source, autocommit=False) as src:
            src.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = src.execute(rd.PG_EXPORT_SNAPSHOT_SQL).fetchone()[0]
            res = pg_steps.dump_in_snapshot(session, ctx.cfg, snapshot, dest)
            if res.exit_code != 0:
                src.rollback()
                return Located([ctx.record("locate", "在快照中备份", Status.FAIL,
                                           f"pg_dump 退出码 {res.exit_code}：{res.stderr.strip()[:300]}",
                                           started, target=dest, raw=pg_steps.shown(res), code=Code.DUMP_FAILED)])
            source = measure.measure(fetcher(src), "postgresql", ctx.cfg.schema_name, as_of=None,
                                     chunk_rows=ctx.cfg.chunk_rows)
            # the sample is chosen by key order, so the copy's sample names the same bills; read
            # here, production's side is the snapshot's, not a status updated since
            sample = measure.sample_bills(fetcher(src), "postgresql", ctx.cfg.schema_name, ctx.cfg.sample_bills, None)
            src.rollback()
        finished = utcnow()
        size = int(session.run(["stat", "-c", "%s", "--", dest]).stdout.strip() or 0)
        digest = locate.sha256_of(session, dest, ctx.cfg.command_timeout_s)
    except Exception as exc:  # noqa: BLE001
        return Located([error_result(exc, started_at=started, check="backup_locate", title=f"{STEP_ZH['locate']}：在快照中备份",
                                     site=ctx.site, host=ctx.cfg.host, target=dest)])
    backup = BackupFile(ctx.cfg.host, dest, size, digest, started, "ebill-ops 导出快照（pg_export_snapshot）",
                        taken_by_us=True, snapshot_id=snapshot)
    record = ctx.record("locate", "在快照中备份", Status.OK, started=started, finished_at=finished, target=dest, value=size,
                        unit="字节", raw=pg_steps.shown(res),
                        reason=f"pg_dump --snapshot={snapshot}，{size / 1048576:.1f} MiB，SHA-256 {digest}；同一快照内计算了"
                               f"生产库 {len(source.prints)} 张表的行数与内容指纹（{source.seconds:.1f} 秒）")
    return Located([record], backup=backup, source=source, source_sample=sample,
                   files={"source_fingerprints.json": json.dumps(source.to_json(), ensure_ascii=False, indent=1)})


# ---------------------------------------------------------------- 2. validate without restoring
@task(name="validate_backup", cache_policy=NONE)
def validate_backup(ctx: VerifyContext, session: HostSession, located: Located) -> Validated:
    started = utcnow()
    if located.backup is None:
        return Validated([ctx.skipped("validate", "备份可读性", "未定位到备份，无法校验")])
    try:
        ok, reason, raw, toc = pg_steps.validate(session, ctx.cfg, located.backup)
    except Exception as exc:  # noqa: BLE001
        return Validated([error_result(exc, started_at=started, check="backup_validate",
                                       title=f"{STEP_ZH['validate']}：备份可读性", site=ctx.site, host=ctx.cfg.host,
                                       target=located.backup.path)])
    return Validated([ctx.record("validate", "备份可读性", Status.OK if ok else Status.FAIL, reason, started,
                                 target=located.backup.name, value=toc.entries, unit="项", raw=raw,
                                 threshold="pg_restore --list 与完整读取均成功",
                                 # no table of contents: unreadable; a contents list but a failed full read: corrupt
                                 code=Code.OK if ok else Code.BACKUP_CORRUPT if toc.entries else Code.BACKUP_UNREADABLE)])
