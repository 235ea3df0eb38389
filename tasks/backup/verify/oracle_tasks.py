"""The Oracle path of the verification (19c): the same steps and records as the PostgreSQL family's,
driving the building blocks of oracle_steps.py.

  locate    the newest Data Pump dump (steps.locate_backup), or take one now: expdp FLASHBACK_SCN
            at the current SCN, production measured AS OF that SCN (consistent however busy it is);
  validate  RMAN RESTORE DATABASE VALIDATE CHECK LOGICAL and RESTORE DATABASE PREVIEW over SSH, and
            the newest whole-database job in V$RMAN_BACKUP_JOB_DETAILS: the physical backups the
            hospital would restore from are readable, while the dump below proves the content;
  restore   impdp REMAP_SCHEMA into a new schema-only account EBOPS_VERIFY_<time> (never the
            production schema, never an existing one; jobs, grants and links left out);
  verify    steps_restore.verify_copy, with the copy's schema and production AS OF the SCN;
  cleanup   DROP USER ... CASCADE of the scratch schema this run created, and only that.

Tools on the host log on by OS authentication (no password travels); the worker reads with
python-oracledb thin mode. No Oracle server runs on our machines: tests/unit/test_backup_verify_
oracle_tasks.py drives these tasks with recorded outputs, tests/contract runs live with ORACLE_DSN.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from prefect import task
from prefect.cache_policies import NONE

from config.backup_verification import VerifyDatabase
from config.hosts import BackupConfig
from config.settings import resolve_secret
from tasks.backup.verify import locate, measure
from tasks.backup.verify import oracle_steps as ora
from tasks.backup.verify.locate import BackupFile
from tasks.backup.verify.outputs import STEP_ZH, Located, Restored, Validated, Verified, VerifyContext, cleanup_records
from tasks.backup.verify.pg_restore_steps import verify_copy
from tasks.backup.verify import reading as rd
from tasks.connect.ssh import CommandResult, HostSession
from tasks.core.masking import mask_text
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow

# The scratch schema must be created in the instance impdp imports into (ORACLE_SID on the host).
INSTANCE_SQL = "SELECT SYS_CONTEXT('USERENV', 'INSTANCE_NAME') AS instance_name FROM dual"


def connect(db: VerifyDatabase) -> Any:
    """The verification's Oracle session, generous deadline (a fingerprint reads a whole table).
    Not in a read-only transaction: one would hold a single snapshot across the whole measurement of
    a busy production (ORA-01555 on long reads); production is read AS OF an SCN instead, and the
    scratch server's session creates and drops the scratch schema."""
    import oracledb

    from tasks.connect.database.oracle import oracle_session
    try:
        return oracle_session(db.dsn, db.user, resolve_secret(db.password), connect_timeout_s=db.connect_timeout_s,
                              call_timeout_ms=db.statement_timeout_s * 1000)
    except oracledb.Error as exc:
        raise ConnectionError(f"cannot connect to Oracle ({db.dsn}) as {db.user}: {mask_text(str(exc)).strip()} "
                              f"(hint: config/sql/oracle/03_verify_account.sql creates the account)") from None


def fetcher(conn: Any) -> measure.Fetch:
    from tasks.connect.database.oracle import oracle_fetch

    def fetch(st: rd.Statement) -> list[dict]:
        names, rows = oracle_fetch(conn, st.sql, st.params)
        return [dict(zip(names, r)) for r in rows]
    return fetch


def execute(conn: Any, statements: list[str]) -> None:
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)


def dump_config(ctx: VerifyContext, host_backup: BackupConfig | None) -> BackupConfig:
    """Where the dumps are: the directory object's path on the host."""
    c = ctx.cfg
    directory = c.oracle_dump_directory or (host_backup.directory if host_backup else None)
    if not directory:
        raise ValueError("backup_verification.oracle_dump_directory is not set and the host has no backup section "
                         "(hint: the OS path of the Data Pump directory object, e.g. /backup/dpump)")
    return BackupConfig(directory=directory, pattern=c.oracle_dump_pattern, log=c.oracle_dump_log)


def _shown(res: CommandResult, tail: int = 3000) -> str:
    return f"$ {res.command}\n(exit {res.exit_code})\n{res.stdout[-tail:]}{res.stderr[-tail:]}"


def _error(ctx: VerifyContext, step: str, title: str, exc: BaseException, started: datetime, target: str = "") -> CheckResult:
    return error_result(exc, started_at=started, check=f"backup_{step}", title=f"{STEP_ZH[step]}：{title}",
                        site=ctx.site, host=ctx.cfg.host, target=target)


# ---------------------------------------------------------------- 1. take a dump at an SCN
@task(name="oracle_export_at_scn", cache_policy=NONE)
def take_backup(ctx: VerifyContext, session: HostSession, dumps: BackupConfig, run_stamp: str) -> Located:
    c, started = ctx.cfg, utcnow()
    dumpfile = f"{c.scratch.prefix}{run_stamp}.dmp".lower()
    path = f"{dumps.directory.rstrip('/')}/{dumpfile}"
    try:
        with connect(c.source) as src:
            fetch = fetcher(src)
            scn = ora.scn_from_rows(fetch(rd.Statement(rd.ORACLE_CURRENT_SCN_SQL)))
            script, args = ora.expdp_invocation(c.tools_dir, c.oracle_sid, c.schema_name, c.oracle_directory, dumpfile,
                                                dumpfile[:-4] + "_exp.log", scn, c.oracle_datapump_login)
            res = session.run_script(script, args, timeout=c.command_timeout_s)
            out = ora.parse_datapump_log(res.stdout + "\n" + res.stderr)
            if res.exit_code != 0 or not out.ok:
                why = "；".join(out.errors[:5]) or out.job_line or "没有作业结束行"
                return Located([ctx.record("locate", "按 SCN 导出", Status.FAIL, f"expdp 退出码 {res.exit_code}：{why}",
                                           started, target=path, raw=_shown(res), code=Code.DUMP_FAILED)])
            as_of = rd.AsOf(scn=scn)
            source = measure.measure(fetch, "oracle", c.schema_name, as_of=as_of, chunk_rows=c.chunk_rows)
            sample = measure.sample_bills(fetch, "oracle", c.schema_name, c.sample_bills, as_of)
        finished = utcnow()
        size = int(session.run(["stat", "-c", "%s", "--", path]).stdout.strip() or 0)
        digest = locate.sha256_of(session, path, c.command_timeout_s)
    except Exception as exc:  # noqa: BLE001
        return Located([_error(ctx, "locate", "按 SCN 导出", exc, started, path)])
    backup = BackupFile(c.host, path, size, digest, started, f"ebill-ops 导出（expdp FLASHBACK_SCN={scn}）",
                        taken_by_us=True, snapshot_id=f"SCN {scn}")
    files = {"source_fingerprints.json": json.dumps(source.to_json(), ensure_ascii=False, indent=1)}
    return Located([ctx.record("locate", "按 SCN 导出", Status.OK, started=started, finished_at=finished, target=path,
                       value=size, unit="字节", raw=_shown(res),
                       reason=f"expdp FLASHBACK_SCN={scn}，{len(out.rows_per_table)} 张表，{size / 1048576:.1f} MiB，"
                              f"SHA-256 {digest}；以 AS OF SCN {scn} 计算了生产库 {len(source.prints)} 张表的行数与"
                              f"内容指纹（{source.seconds:.1f} 秒）")],
                   backup=backup, source=source, source_sample=sample, files=files)


# ---------------------------------------------------------------- 2. validate (RMAN)
@task(name="oracle_rman_validate", cache_policy=NONE)
def validate_backup(ctx: VerifyContext, session: HostSession, located: Located) -> Validated:
    if located.backup is None:
        return Validated([ctx.skipped("validate", "备份可读性", "未定位到备份，无法校验")])
    c, out = ctx.cfg, []
    for kind, title in (("validate", "RMAN 恢复校验（VALIDATE CHECK LOGICAL）"), ("preview", "RMAN 恢复预演（PREVIEW）")):
        started = utcnow()
        try:
            script, args = ora.rman_invocation(kind, c.tools_dir, c.oracle_sid)
            res = session.run_script(script, args, timeout=c.command_timeout_s)
        except Exception as exc:  # noqa: BLE001
            out.append(_error(ctx, "validate", title, exc, started, c.oracle_sid or ""))
            continue
        r = ora.parse_rman_output(res.stdout + "\n" + res.stderr)
        ok = r.ok and res.exit_code == 0  # both: an exit code that disagrees with the output is a failure
        detail = ("；".join(r.errors[:5]) or ("RMAN 未运行到结束" if not r.complete else "")
                  or (f"{r.corrupt_blocks} 个坏块" if r.corrupt_blocks else ""))
        reason = (f"通过：{'；'.join(r.summary[-3:]) or 'Recovery Manager complete.'}"
                  + (f"，坏块 {r.corrupt_blocks}" if r.corrupt_blocks is not None else "") if ok
                  else f"未通过（退出码 {res.exit_code}）：{detail or '输出与退出码不一致'}")
        out.append(ctx.record("validate", title, Status.OK if ok else Status.FAIL, reason, started, target=c.oracle_sid,
                              value=r.corrupt_blocks, unit="坏块", threshold="RMAN 完成、无错误、无坏块", raw=_shown(res),
                              code=Code.OK if ok else Code.BACKUP_CORRUPT if r.corrupt_blocks else Code.BACKUP_UNREADABLE))
    out.append(_rman_jobs(ctx))
    return Validated(out)


def _rman_jobs(ctx: VerifyContext) -> CheckResult:
    started, tz = utcnow(), ZoneInfo(ctx.tz)
    now = started.astimezone(tz).replace(tzinfo=None)
    try:
        with connect(ctx.cfg.source) as src:
            rows = fetcher(src)(rd.Statement(ora.RMAN_JOB_DETAILS_SQL, {"since": now - timedelta(days=8)}))
    except Exception as exc:  # noqa: BLE001
        return _error(ctx, "validate", "RMAN 备份作业状态", exc, started)
    ok, why = ora.judge_rman_jobs(ora.rman_jobs_from_rows(rows), now=now)
    return ctx.record("validate", "RMAN 备份作业状态（V$RMAN_BACKUP_JOB_DETAILS）", Status.OK if ok else Status.FAIL,
                      why, started, value=len(rows), unit="个作业（近 8 天）", threshold="最新整库备份 COMPLETED",
                      code=Code.OK if ok else Code.RMAN_JOB_FAILED)


# ---------------------------------------------------------------- 3. restore (impdp into a scratch schema)
@task(name="oracle_import_to_scratch", cache_policy=NONE)
def restore_to_scratch(ctx: VerifyContext, session: HostSession, located: Located, scratch: str) -> Restored:
    if located.backup is None:
        return Restored([ctx.skipped("restore", "恢复", "未定位到备份，无法恢复")])
    c, started, scratch, created = ctx.cfg, utcnow(), scratch.upper(), False
    try:
        why = ora.refuse_scratch(scratch, c.schema_name, c.scratch.prefix)
        with connect(c.scratch) as server:
            fetch = fetcher(server)
            instance = fetch(rd.Statement(INSTANCE_SQL))[0]["instance_name"]
            if why is None and str(instance).upper() != str(c.oracle_sid).upper():
                why = (f"验证账号连接的实例 {instance} 不是 impdp 导入的实例 {c.oracle_sid}，拒绝执行"
                       f"（scratch.dsn and oracle_sid name different instances）")
            if why is None and fetch(rd.Statement(ora.SCRATCH_EXISTS_SQL, {"name": scratch})):
                why = f"临时 schema {scratch} 已存在，拒绝覆盖（it exists already; only a new schema is imported into）"
            if why is not None:
                return Restored([ctx.record("restore", "恢复目标安全检查", Status.FAIL, why, started, target=scratch,
                                            code=Code.RESTORE_TARGET_REFUSED)])
            execute(server, ora.create_scratch_schema_sql(scratch, c.scratch.oracle_tablespace, c.scratch.prefix))
        created = True
        script, args = ora.impdp_invocation(c.tools_dir, c.oracle_sid, c.schema_name, scratch, c.oracle_directory,
                                            located.backup.name, f"{scratch.lower()}_imp.log", c.oracle_remap_tablespaces,
                                            c.oracle_datapump_login, c.scratch.prefix)
        began = time.monotonic()
        res = session.run_script(script, args, timeout=c.command_timeout_s)
        seconds = time.monotonic() - began
    except Exception as exc:  # noqa: BLE001
        return Restored([_error(ctx, "restore", "恢复", exc, started, scratch)],
                        scratch=scratch if created else None, created=created)
    out = ora.parse_datapump_log(res.stdout + "\n" + res.stderr)
    # impdp exits 5 when the job "completed with N error(s)": accepted only when all N are
    # compilation warnings (out.ok); any other exit code fails whatever the log says
    if not out.ok or res.exit_code not in (0, 5):
        why = "；".join(out.errors[:5]) or out.job_line or "没有作业结束行"
        return Restored([ctx.record("restore", "恢复", Status.FAIL, f"impdp 退出码 {res.exit_code}：{why}", started,
                                    target=scratch, value=round(seconds, 1), unit="秒", raw=_shown(res),
                                    code=Code.RESTORE_FAILED)], scratch=scratch, created=True, seconds=seconds)
    warn = f"；{len(out.warnings)} 个对象带编译警告（ORA-39082，数据不受影响）" if out.warnings else ""
    return Restored([ctx.record("restore", "恢复", Status.OK, f"impdp REMAP_SCHEMA={c.schema_name.upper()}:{scratch} 导入 "
                       f"{len(out.rows_per_table)} 张表，用时 {seconds:.1f} 秒（独立 schema，无登录权限，不导入作业、授权与数据库链接）{warn}",
                       started, target=scratch, value=round(seconds, 1), unit="秒", raw=_shown(res))],
                    scratch=scratch, created=True, seconds=seconds)


# ---------------------------------------------------------------- 4. verify
@contextmanager
def _side(db: VerifyDatabase, schema: str) -> Iterator[tuple[measure.Fetch, str]]:
    with connect(db) as conn:
        yield fetcher(conn), schema.upper()


@task(name="oracle_verify_restored_copy", cache_policy=NONE)
def verify_restored(ctx: VerifyContext, located: Located, restored: Restored) -> Verified:
    c = ctx.cfg
    return verify_copy(ctx, located, restored, lambda: _side(c.scratch, restored.scratch or ""),
                       lambda: _side(c.source, c.schema_name))


# ---------------------------------------------------------------- 5. clean up
@task(name="oracle_drop_scratch", cache_policy=NONE)
def cleanup(ctx: VerifyContext, restored: Restored, keep: bool) -> list[CheckResult]:
    def drop(scratch: str) -> str:
        statements = ora.drop_scratch_schema_sql(scratch, ctx.cfg.scratch.prefix)  # refuses a name without the prefix
        with connect(ctx.cfg.scratch) as server:
            execute(server, statements)
        return f"已删除本次创建的临时 schema {scratch}（DROP USER CASCADE）"

    return cleanup_records(ctx, restored, keep, "临时 schema", drop)
