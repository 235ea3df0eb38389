"""The PostgreSQL family's verification steps: the database tools run on the backup host over SSH
(where the dump is, authenticating through that host's ~/.pgpass as the backup job does); the
scratch database is created and dropped with SQL on the verification server.

Safety: the scratch database is the only thing this module writes, and it refuses a target that
resolves to production (the same cluster, by pg_control_system()'s system identifier, and the
same database name) however the DSN spells the host; it never drops a database it did not mark.
"""
from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from config.backup_verification import BackupVerificationConfig, VerifyDatabase
from config.settings import resolve_secret
from tasks.backup.verify.locate import BackupFile
from tasks.connect.database.deadline import Deadline
from tasks.connect.database.postgresql import pg_session
from tasks.connect.ssh import CommandResult, HostSession

SCRATCH_MARK = "ebill-ops scratch copy"   # COMMENT ON DATABASE: only marked databases are ever dropped
# pg_restore --list lines: "1234; 1259 16390 TABLE DATA ebill t_bill_place ebill_app"
_TOC = re.compile(r"^\d+;\s+\d+\s+\d+\s+(?P<rest>[A-Z].*)$")
_TOC_KINDS = ("TABLE DATA", "TABLE", "INDEX", "FK CONSTRAINT", "CONSTRAINT", "SEQUENCE SET", "SEQUENCE")


class RestoreRefused(RuntimeError):
    """The target could be production, or a database ebill-ops did not create."""


@dataclass(frozen=True)
class TocSummary:
    entries: int
    kinds: dict[str, int]
    tables_with_data: tuple[str, ...]


def connect(db: VerifyDatabase, dbname: str | None = None, *, autocommit: bool = True,
            read_only: bool = True) -> psycopg.Connection:
    """A session with the verification's deadlines: a generous one per statement (a fingerprint reads a
    whole table) and a short one for waiting on another session's lock. pg_dump and pg_restore on the
    host are not bound by these: each is one long command, bounded by command_timeout_s over SSH.
    Read-only unless the caller creates or drops the scratch database (read_only=False)."""
    return pg_session(db.dsn, db.user, resolve_secret(db.password), Deadline(db.statement_timeout_s, db.lock_timeout_s),
                      connect_timeout_s=db.connect_timeout_s, read_only=read_only, dbname=dbname,
                      autocommit=autocommit, application_name="ebill-ops backup-verify")


def _target(db: VerifyDatabase, dbname: str | None = None) -> tuple[str, str, str]:
    """(host, port, dbname) as libpq would read the DSN, for the command line of the host's tools."""
    d = conninfo_to_dict(db.dsn)
    return d.get("host", "127.0.0.1"), str(d.get("port", "5432")), dbname or d.get("dbname", "postgres")


def shown(res: CommandResult, tail: int = 3000) -> str:
    """The command and its output as the record shows them (masked later by CheckResult)."""
    return f"$ {res.command}\n(exit {res.exit_code})\n{res.stdout[-tail:]}{res.stderr[-tail:]}"


def tool(cfg: BackupVerificationConfig, name: str) -> str:
    return f"{cfg.tools_dir.rstrip('/')}/{name}"


# ---------------------------------------------------------------- step 2: validate without restoring
def summarize_toc(listing: str) -> TocSummary:
    kinds: Counter = Counter()
    data = []
    entries = 0
    for line in listing.splitlines():
        m = _TOC.match(line.strip())
        if not m:
            continue
        entries += 1
        rest = m.group("rest")
        kind = next((k for k in _TOC_KINDS if rest.startswith(k + " ")), rest.split(" ", 1)[0])
        kinds[kind] += 1
        words = rest[len(kind) + 1:].split()
        if kind == "TABLE DATA" and len(words) >= 2:
            data.append(words[1])
    return TocSummary(entries, dict(kinds), tuple(data))


def validate(session: HostSession, cfg: BackupVerificationConfig, backup: BackupFile) -> tuple[bool, str, str, TocSummary]:
    """`pg_restore --list` (the archive's table of contents) and a full read of the archive to
    /dev/null (every data block readable: a truncated dump fails here, not at restore)."""
    listing = session.run([tool(cfg, "pg_restore"), "--list", backup.path], timeout=cfg.command_timeout_s)
    toc = summarize_toc(listing.stdout)
    if listing.exit_code != 0 or not toc.entries:
        return False, f"pg_restore --list 失败（退出码 {listing.exit_code}）：{listing.stderr.strip()[:300]}", \
            shown(listing, 1500), toc
    full = session.run([tool(cfg, "pg_restore"), "--file", "/dev/null", backup.path], timeout=cfg.command_timeout_s)
    raw = shown(listing, 1200) + "\n\n" + shown(full)
    if full.exit_code != 0:
        return False, f"目录可读（{toc.entries} 项），但完整读取备份失败（退出码 {full.exit_code}）：" \
                      f"{full.stderr.strip()[:300]}", raw, toc
    kinds = "、".join(f"{k} {v}" for k, v in sorted(toc.kinds.items()))
    return True, f"目录 {toc.entries} 项（{kinds}），全部数据块可读", raw, toc


# ---------------------------------------------------------------- taking a backup inside a snapshot
def dump_in_snapshot(session: HostSession, cfg: BackupVerificationConfig, snapshot_id: str,
                     dest: str) -> CommandResult:
    """pg_dump -Fc of production inside the snapshot the caller exported (and keeps open), so the
    caller's counts and fingerprints describe exactly what the dump holds. The dump holds every
    payer's personal data: it is created readable by its owner only (umask 077, before any byte)."""
    host, port, dbname = _target(cfg.source)
    return session.run_script('umask 077 && exec "$@"', [tool(cfg, "pg_dump"), "--snapshot", snapshot_id, "-Fc", "-h", host,
                              "-p", port, "-U", cfg.source.user, "-w", "-f", dest, dbname], timeout=cfg.command_timeout_s)


# ---------------------------------------------------------------- step 3: restore into a scratch database
def _identity(conn: psycopg.Connection) -> tuple[int, str]:
    ident, name = conn.execute("SELECT (SELECT system_identifier FROM pg_control_system()), current_database()").fetchone()
    return int(ident), name


def refuse_target(source: psycopg.Connection, server: psycopg.Connection, scratch: str, prefix: str) -> None:
    """Raise RestoreRefused unless `scratch` is a new, prefixed database that is not production."""
    src_id, src_db = _identity(source)
    srv_id, _ = _identity(server)
    if srv_id == src_id and scratch == src_db:
        raise RestoreRefused(f"恢复目标 {scratch} 解析为生产库（同一数据库集群 system_identifier {src_id}，同名数据库），"
                             f"拒绝恢复 (the scratch target resolves to the production database)")
    if not scratch.startswith(prefix):
        raise RestoreRefused(f"恢复目标 {scratch} 不以 {prefix} 开头，拒绝恢复：临时库只能是 ebill-ops 创建的库 "
                             f"(hint: scratch.prefix)")
    if server.execute("SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)).fetchone():
        raise RestoreRefused(f"恢复目标 {scratch} 已存在，拒绝覆盖（可能是上次保留的临时库；确认后手工删除）")


def create_scratch(server: psycopg.Connection, scratch: str, run_id: str) -> None:
    server.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(scratch)))
    server.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(scratch), sql.Literal(f"{SCRATCH_MARK}; flow run {run_id}")))


def restore(session: HostSession, cfg: BackupVerificationConfig, backup: BackupFile,
            scratch: str) -> tuple[CommandResult, float]:
    """pg_restore into the scratch database; objects owned by the verification account, no grants,
    default tablespace (the scratch copy must not land in production's tablespaces)."""
    host, port, _ = _target(cfg.scratch)
    began = time.monotonic()
    res = session.run([tool(cfg, "pg_restore"), "--no-owner", "--no-privileges", "--no-tablespaces", "--exit-on-error",
                       "--jobs", str(cfg.restore_jobs), "-h", host, "-p", port, "-U", cfg.scratch.user, "-w",
                       "-d", scratch, backup.path], timeout=cfg.command_timeout_s)
    return res, time.monotonic() - began


def drop_scratch(server: psycopg.Connection, scratch: str) -> str:
    """Drop the scratch database if, and only if, ebill-ops marked it. Returns what was done."""
    row = server.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                         (scratch,)).fetchone()
    if row is None:
        return f"临时库 {scratch} 不存在，无需清理"
    if not (row[0] or "").startswith(SCRATCH_MARK):
        raise RestoreRefused(f"数据库 {scratch} 没有 ebill-ops 的标记，拒绝删除")
    try:
        # Plain DROP first: it cancels autovacuum workers itself, which WITH (FORCE) may not do
        # for a non-superuser ("permission denied to terminate process").
        server.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(scratch)))
        return f"已删除临时库 {scratch}（DROP DATABASE）"
    except psycopg.errors.ObjectInUse:
        # a session of ours left behind (e.g. a cancelled pg_restore worker): end it
        server.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(scratch)))
        return f"已删除临时库 {scratch}（DROP DATABASE … WITH (FORCE)，结束了仍连接的会话）"

