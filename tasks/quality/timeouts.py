"""A rule or lane of the quality run cut by the session's deadline, said as the database checks say it.

Great Expectations turns a driver error into text of its own ("Attempt to connect to table: …
failed because the test query failed … (psycopg.errors.LockNotAvailable) canceling statement due
to lock timeout [SQL: …]"), several lines long and without the deadline or the hint. The run's
sessions carry the site's deadline (tasks/connect/database/deadline.py); when that is what cut a query,
the error becomes the deadline module's one line instead, naming the relation, the deadline, the
locks other sessions hold and the setting to raise.
"""
from __future__ import annotations

import re

from tasks.connect.database.base import EbillDatabase
from tasks.connect.database.deadline import deadline_message, oracle_timed_out, pg_blocking_locks

# PostgreSQL family, as psycopg words it (LockNotAvailable / QueryCanceled), inside GX's or SQLAlchemy's text.
_PG_CUT = re.compile(r"canceling statement due to (lock|statement) timeout")
# SQLAlchemy names the statement it ran: "[SQL: SELECT 1 FROM ebill_canon.ebill_invoice LIMIT …]".
_SQL = re.compile(r"\[SQL: (.*?)\](?:\s*\[parameters:|\s*\(Background|\s*$)", re.DOTALL)
QUALITY_SETTING = "database.quality_statement_timeout_s"


def cut_by_deadline(text: str, dialect: str) -> str | None:
    """'lock' or 'statement' when an error's text is the session's deadline cutting a query."""
    m = _PG_CUT.search(text)
    if m:
        return m.group(1)
    return "statement" if dialect == "oracle" and oracle_timed_out(text) else None  # type: ignore[arg-type]


def deadline_reason(db: EbillDatabase, error: BaseException | str) -> str | None:
    """The deadline module's one line for an error the session's deadline caused, else None."""
    text = error if isinstance(error, str) else _chain_text(error)
    kind = cut_by_deadline(text, db.dialect)
    if kind is None:
        return None
    m = _SQL.search(text)
    sql = " ".join(m.group(1).split()) if m else ""
    locks = _locks(db) if db.dialect == "postgresql" else []
    # A lock wait is cut at the site's statement_timeout_s; a long rule at the quality deadline.
    setting = "database.statement_timeout_s" if kind == "lock" else QUALITY_SETTING
    return deadline_message(sql, db.deadline, kind, locks, setting=setting, dialect=db.dialect)


def _locks(db: EbillDatabase) -> list[str]:
    try:
        return pg_blocking_locks(db.connection)
    except Exception:  # noqa: BLE001 - the explanation must never replace the error it explains
        return []


def _chain_text(exc: BaseException) -> str:
    """The exception's text and its causes' (a library may keep the driver's words only there)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen and len(parts) < 6:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)
