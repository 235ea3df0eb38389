"""A deadline on every query of every database session ebill-ops opens.

Without one, a lock another session holds on a base table of the canonical views (a vendor's
ALTER TABLE, a DBA's LOCK TABLE) stalled the inspection for as long as it was held, and the run
then ended in Prefect's task timeout with the data already there. With one, the blocked query
fails after the site's deadline and its check is an ERROR that names the relation, the deadline
and the lock; the other checks go on.

PostgreSQL family: statement_timeout (every server of the family knows it) and lock_timeout
(PostgreSQL >= 9.3, KingbaseES; openGauss has none: its lockwait_timeout is for superusers, so
there statement_timeout alone bounds the wait), both in the connection's startup options, so they
hold whatever transactions the caller opens and rolls back. Oracle: python-oracledb's
call_timeout, per round trip (Oracle readers never wait for row locks; a DDL lock or a hung
network is what it cuts).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

# What the query reads, as written after FROM / JOIN (schema-qualified or not, quoted or not).
_RELATION = re.compile(r'\b(?:FROM|JOIN)\s+((?:"[^"]+"|[A-Za-z_][\w$#]*)(?:\s*\.\s*(?:"[^"]+"|[A-Za-z_][\w$#]*))?)',
                       re.IGNORECASE)
_IN_FUNCTION = re.compile(r"\b(?:EXTRACT|SUBSTRING|TRIM|OVERLAY|POSITION)\s*\([^()]*$", re.IGNORECASE)
_NOT_RELATIONS = {"dual", "lateral", "unnest", "generate_series"}

# Locks other sessions hold that a reader (AccessShareLock) must wait for, in this database.
PG_BLOCKING_LOCKS_SQL = """
SELECT l.relation::regclass::text AS relation, l.mode, l.pid
FROM pg_locks l
WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'AccessExclusiveLock'
  AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 1
LIMIT 5
"""

# python-oracledb: thin mode DPY-4024, thick mode DPI-1067 / ORA-03156; ORA-01013 when cancelled.
_ORACLE_TIMEOUT = re.compile(r"DPY-4024|DPI-1067|ORA-03156|ORA-01013")


@dataclass(frozen=True)
class Deadline:
    statement_s: int  # longest any one query may run
    lock_s: int  # longest any one query may wait for a lock another session holds

    def pg_options(self, *, lock: bool = True) -> str:
        """libpq startup options (milliseconds: the unit every server of the family accepts)."""
        opts = f"-c statement_timeout={self.statement_s * 1000}"
        return opts + (f" -c lock_timeout={min(self.lock_s, self.statement_s) * 1000}" if lock else "")

    @property
    def oracle_call_timeout_ms(self) -> int:
        return self.statement_s * 1000


def relations_read(sql: str) -> list[str]:
    """The relations a query names after FROM/JOIN, in order, once each."""
    out: list[str] = []
    for m in _RELATION.finditer(sql):
        if _IN_FUNCTION.search(sql, 0, m.start()):
            continue  # EXTRACT(YEAR FROM col), SUBSTRING(x FROM 2): a column, not a relation
        name = re.sub(r"\s+", "", m.group(1))
        if name.strip('"').lower() not in _NOT_RELATIONS and name not in out:
            out.append(name)
    return out


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection that remembers its deadline, so that an error can name it."""
    deadline: Deadline | None = None


def pg_connect(conninfo: str, deadline: Deadline, *, options: str = "", **kwargs: Any) -> DeadlineConnection:
    """psycopg.connect with the deadline in the startup options. A server of the family that does
    not know lock_timeout refuses the connection naming it; it is then opened with the statement
    deadline alone (which bounds lock waits too)."""
    try:
        conn = DeadlineConnection.connect(conninfo, options=f"{options} {deadline.pg_options()}".strip(), **kwargs)
    except psycopg.OperationalError as exc:
        if "lock_timeout" not in str(exc):
            raise
        conn = DeadlineConnection.connect(conninfo, options=f"{options} {deadline.pg_options(lock=False)}".strip(),
                                          **kwargs)
    conn.deadline = deadline
    return conn


def pg_timed_out(exc: BaseException) -> str | None:
    """'statement' or 'lock' when a psycopg error is the deadline cutting a query, else None."""
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return "lock"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "lock" if "lock timeout" in str(exc) else "statement"
    return None


def pg_blocking_locks(conn: Any) -> list[str]:
    """'relation (mode, pid N)' of the exclusive locks other sessions hold now; [] when that cannot
    be read (the explanation must never replace the error it explains)."""
    try:
        with conn.cursor() as cur:
            cur.execute(PG_BLOCKING_LOCKS_SQL)
            return [f"{r[0]} ({r[1]}, pid {r[2]})" for r in cur.fetchall()]
    except Exception:  # noqa: BLE001
        return []


def oracle_timed_out(exc: BaseException) -> bool:
    return bool(_ORACLE_TIMEOUT.search(str(exc)))


def deadline_message(sql: str, deadline: Deadline, kind: str, locks: list[str] | None = None,
                     setting: str = "database.statement_timeout_s", dialect: str = "postgresql") -> str:
    """One line for the check's ERROR: what was read, which deadline cut it, who holds a lock, a hint."""
    rels = ", ".join(relations_read(sql)) or "the database"
    if kind == "lock":
        what = (f"查询超时 (deadline exceeded): the query on {rels} waited more than {min(deadline.lock_s, deadline.statement_s)} s "
                f"for a lock (lock_timeout)")
    else:
        what = f"查询超时 (deadline exceeded): the query on {rels} did not finish within {deadline.statement_s} s (statement_timeout)"
    held = f"; locks held by other sessions: {', '.join(locks)}" if locks else ""
    views = "pg_locks and pg_stat_activity" if dialect == "postgresql" else "V$SESSION.BLOCKING_SESSION and V$LOCK"
    return (f"{what}{held} (hint: a lock held by another session blocks it, see {views} on the database "
            f"server; or the query needs longer: raise {setting} in the site file)")
