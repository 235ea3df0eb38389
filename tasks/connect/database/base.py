"""The one interface every e-bill database is read through, whatever its dialect.

Checks read the six canonical relations (docs/ebill-reference-schema.md) through the read-only
account that config/sql/<dialect>/02_readonly_account.sql creates. Every session is read-only on
the client side too, so that a check can never change a hospital's data even if the account were
granted too much. Values of personal columns are masked before a row leaves this module
(MZ 三.5): a check that selects payer_name by mistake still cannot leak it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from config.hosts import DatabaseConfig
from config.settings import resolve_secret
from tasks.connect.database.deadline import Deadline
from tasks.core.masking import mask_row

# The canonical relations, column for column in the reference schema's order, with the PostgreSQL
# type each view must show in information_schema.columns (data_type, with length/precision).
CANONICAL_SCHEMA: dict[str, list[tuple[str, str]]] = {
    "ebill_place": [
        ("place_code", "varchar(50)"), ("place_name", "varchar(100)"), ("place_type", "varchar(20)"),
        ("active", "boolean"),
    ],
    "ebill_invoice": [
        ("bill_id", "bigint"), ("bill_code", "char(8)"), ("bill_no", "char(10)"), ("check_code", "char(6)"),
        ("bill_kind", "char(1)"), ("orig_bill_code", "char(8)"), ("orig_bill_no", "char(10)"),
        ("bus_no", "varchar(50)"), ("bus_type", "char(2)"), ("bus_time", "timestamp"), ("issue_time", "timestamp"),
        ("place_code", "varchar(50)"), ("payer_name", "varchar(100)"), ("payer_type", "char(1)"),
        ("id_card_no", "varchar(18)"), ("tel", "varchar(11)"), ("total_amt", "numeric(14,2)"),
        ("fund_pay", "numeric(14,2)"), ("other_fund_pay", "numeric(14,2)"), ("account_pay", "numeric(14,2)"),
        ("self_cash_pay", "numeric(14,2)"), ("med_care_type", "char(2)"), ("patient_id", "varchar(50)"),
        ("visit_no", "varchar(30)"), ("hospital_no", "varchar(30)"), ("in_date", "date"), ("out_date", "date"),
        ("status", "varchar(10)"), ("sign_status", "char(1)"), ("upload_status", "char(1)"),
        ("upload_time", "timestamp"), ("archive_status", "char(1)"), ("notice_status", "char(1)"),
        ("notice_time", "timestamp"),
    ],
    "ebill_invoice_item": [
        ("bill_id", "bigint"), ("sort_no", "integer"), ("charge_code", "char(2)"), ("item_code", "varchar"),
        ("item_name", "varchar"), ("unit", "varchar(20)"), ("std", "numeric(14,4)"), ("qty", "numeric(14,2)"),
        ("amt", "numeric(14,2)"), ("med_ins_class", "char(1)"),
    ],
    "his_settlement": [
        ("settle_id", "bigint"), ("bus_no", "varchar(50)"), ("visit_type", "char(1)"), ("patient_id", "varchar(50)"),
        ("settle_time", "timestamp"), ("place_code", "varchar(50)"), ("total_amt", "numeric(14,2)"),
        ("refund_flag", "char(1)"), ("orig_bus_no", "varchar(50)"),
    ],
    "ebill_call_log": [
        ("log_id", "bigint"), ("target", "varchar(20)"), ("method", "varchar(50)"), ("bus_no", "varchar(50)"),
        ("place_code", "varchar(50)"), ("req_time", "timestamp"), ("elapsed_ms", "integer"),
        ("result_code", "varchar(10)"), ("message", "varchar(500)"),
    ],
    "ebill_stock": [
        ("stock_id", "bigint"), ("place_code", "varchar(50)"), ("bill_code", "char(8)"), ("start_no", "char(10)"),
        ("end_no", "char(10)"), ("current_no", "char(10)"), ("warn_sheets", "integer"), ("status", "varchar(10)"),
    ],
    "ebill_void": [
        ("bill_code", "char(8)"), ("bill_no", "char(10)"), ("place_code", "varchar(50)"), ("void_time", "timestamp"),
        ("reason", "varchar(200)"),
    ],
}

# relation -> ordered column names: what every check may rely on.
CANONICAL_COLUMNS: dict[str, list[str]] = {rel: [c for c, _ in cols] for rel, cols in CANONICAL_SCHEMA.items()}


# The e-bill checks' queries that read the same in every dialect (tasks/connect/database/<dialect>.py holds
# the rest). Success rate and latency per interface, aggregated in the database (a busy hospital logs
# hundreds of thousands of calls a day: the rows never travel). Failed calls count in the latency
# too: a timeout is what the cashier waits for.
INTERFACE_STATS_SQL = """
SELECT target,
       COUNT(*) AS calls,
       SUM(CASE WHEN result_code = 'S0000' THEN 1 ELSE 0 END) AS ok_calls,
       AVG(elapsed_ms) AS mean_ms,
       PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY elapsed_ms) AS p95_ms,
       MAX(elapsed_ms) AS max_ms
FROM ebill_call_log
WHERE req_time > :since AND req_time <= :until
GROUP BY target
ORDER BY target
"""

# 在途票据: a bill belongs to the upload stage until the platform has supervised it (status 1),
# then to the archive stage until archived, so that no bill is counted twice. Totals come with
# the oldest max_keys bills of each stage, by business key only.
FINANCE_BACKLOG_SQL = """
SELECT stage, total, failed, bill_code, bill_no, issue_time, upload_status, archive_status
FROM (
    SELECT stage, bill_code, bill_no, issue_time, upload_status, archive_status,
           COUNT(*) OVER (PARTITION BY stage) AS total,
           SUM(CASE WHEN upload_status = '2' THEN 1 ELSE 0 END) OVER (PARTITION BY stage) AS failed,
           ROW_NUMBER() OVER (PARTITION BY stage ORDER BY issue_time, bill_code, bill_no) AS rn
    FROM (
        SELECT CASE WHEN upload_status = '1' THEN 'archive' ELSE 'upload' END AS stage,
               bill_code, bill_no, issue_time, upload_status, archive_status
        FROM ebill_invoice
        WHERE issue_time < :older_than
          AND (upload_status IS NULL OR upload_status <> '1' OR archive_status IS NULL OR archive_status <> '1')
    ) pending
) ranked
WHERE rn <= :max_keys
ORDER BY stage, rn
"""


@dataclass(frozen=True)
class TablespaceUsage:
    name: str
    kind: str  # "permanent" | "temp" | "undo"
    used_bytes: int
    max_bytes: int | None  # autoextend-aware maximum; None where the database cannot say (PostgreSQL)
    location: str | None  # filesystem path (PostgreSQL); None for Oracle
    used_pct: float | None  # None where it must be judged against the filesystem (PostgreSQL)


@dataclass(frozen=True)
class InterfaceStats:
    """Calls of one interface target in a window, aggregated in the database."""
    target: str
    calls: int
    ok_calls: int  # result_code S0000
    mean_ms: float | None
    p95_ms: float | None
    max_ms: int | None

    @property
    def success_pct(self) -> float | None:
        return 100.0 * self.ok_calls / self.calls if self.calls else None


@dataclass(frozen=True)
class BacklogBill:
    """A bill still in transit to the finance platform, by business key only (never payer data)."""
    bill_code: str
    bill_no: str
    issue_time: datetime
    upload_status: str | None
    archive_status: str | None


@dataclass(frozen=True)
class FinanceBacklog:
    """Bills of one stage (upload = 未上传/监制, archive = 已监制未归档) issued before a cut-off."""
    stage: str  # "upload" | "archive"
    count: int
    failed: int  # of which the platform refused the upload (upload_status 2)
    bills: tuple[BacklogBill, ...]  # the oldest first, at most the query's max_keys


BACKLOG_STAGES = ("upload", "archive")


@dataclass(frozen=True)
class StockLevel:
    """ACTIVE bill-number segments of one (issuing point, bill code), and that pair's recent use.

    bill_code is None for an active issuing point that holds no ACTIVE segment at all; its
    issued/first_issue are then the point's use over every code."""
    place_code: str
    bill_code: str | None
    remaining: int
    warn_sheets: int | None
    segments: int
    issued: int  # bills (blue and red: both take a number) issued in the use window
    first_issue: datetime | None  # the first of them


def _int(v: Any) -> int:
    return int(v) if v is not None else 0


def _float(v: Any) -> float | None:
    return float(v) if v is not None else None


def _text(v: Any) -> str | None:
    # CHAR columns may come back blank-padded (Oracle CHAR, PostgreSQL bpchar through some drivers)
    return str(v).strip() if v is not None else None


def interface_stats_from_rows(rows: list[dict]) -> list[InterfaceStats]:
    """Rows of INTERFACE_STATS_SQL (any dialect; lower-case keys)."""
    return [InterfaceStats(target=_text(r["target"]) or "", calls=_int(r["calls"]), ok_calls=_int(r["ok_calls"]),
                           mean_ms=_float(r["mean_ms"]), p95_ms=_float(r["p95_ms"]),
                           max_ms=int(r["max_ms"]) if r["max_ms"] is not None else None)
            for r in rows]


def finance_backlog_from_rows(rows: list[dict]) -> list[FinanceBacklog]:
    """Rows of FINANCE_BACKLOG_SQL: one per listed bill, carrying its stage's totals; every stage
    is returned, with count 0 when it has no row."""
    out = []
    for stage in BACKLOG_STAGES:
        mine = [r for r in rows if _text(r["stage"]) == stage]
        bills = tuple(BacklogBill(bill_code=_text(r["bill_code"]) or "", bill_no=_text(r["bill_no"]) or "",
                                  issue_time=r["issue_time"], upload_status=_text(r["upload_status"]),
                                  archive_status=_text(r["archive_status"])) for r in mine)
        count = _int(mine[0]["total"]) if mine else 0
        failed = _int(mine[0]["failed"]) if mine else 0
        out.append(FinanceBacklog(stage=stage, count=count, failed=failed, bills=bills))
    return out


def stock_levels_from_rows(rows: list[dict]) -> list[StockLevel]:
    """Rows of STOCK_LEVELS_SQL (any dialect)."""
    return [StockLevel(place_code=_text(r["place_code"]) or "", bill_code=_text(r["bill_code"]),
                       remaining=_int(r["remaining"]),
                       warn_sheets=int(r["warn_sheets"]) if r["warn_sheets"] is not None else None,
                       segments=_int(r["segments"]), issued=_int(r["issued"]), first_issue=r["first_issue"])
            for r in rows]


class DatabaseError(RuntimeError):
    """A database could not be reached or a query failed; the message names the site's DSN, never the password."""


class QueryDeadlineExceeded(DatabaseError):
    """A query was cut by the session's deadline (statement_timeout, lock_timeout, call_timeout)."""


class EbillDatabase(ABC):
    """A read-only session on one hospital's e-bill database."""

    dialect: ClassVar[str]

    def __init__(self, cfg: DatabaseConfig):
        if cfg.dialect != self.dialect:
            raise ValueError(f"database.dialect is {cfg.dialect!r}, this class reads {self.dialect!r}")
        self.cfg = cfg
        self._conn: Any = None
        # Every session this object opens (its own and those GX opens through engine_session) carries it.
        self.deadline = Deadline(cfg.statement_timeout_s, cfg.statement_timeout_s)

    def allow_long_queries(self, statement_s: int) -> None:
        """Queries of sessions opened from now on may run statement_s (a data-quality rule scans a
        whole period); a wait for another session's lock is still cut at the site's deadline."""
        self.close()  # an open session would keep the old deadline
        self.deadline = Deadline(statement_s, self.cfg.statement_timeout_s)

    # -- connection lifecycle
    def _password(self) -> str:
        return resolve_secret(self.cfg.password)

    @abstractmethod
    def _connect(self) -> Any:
        """Open a read-only connection."""

    def engine_session(self) -> Any:
        """A new connection of its own for a SQLAlchemy engine's `creator` (GX), read-only for every
        transaction the engine opens on it, not only the first. The dialect's _connect already is
        where the server keeps read-only as the session's default (PostgreSQL)."""
        return self._connect()

    @property
    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> "EbillDatabase":
        _ = self.connection
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading
    @abstractmethod
    def _fetch(self, sql: str, params: dict | None) -> tuple[list[str], list[tuple]]:
        """Run one read-only query; return lower-case column names and the rows."""

    def query(self, sql: str, params: dict | None = None) -> list[dict]:
        """Rows as dicts keyed by lower-case column name, personal columns masked."""
        columns, rows = self._fetch(sql, params)
        return [mask_row(dict(zip(columns, row))) for row in rows]

    @abstractmethod
    def tablespace_usage(self) -> list[TablespaceUsage]:
        ...

    @abstractmethod
    def server_version(self) -> str:
        ...

    # -- the e-bill checks (tasks/inspection/ebill.py). Times are naive local times of the hospital,
    # bound as parameters: the database server's clock and time zone are never consulted.
    # Each dialect's words for STOCK_LEVELS_SQL (the other two queries read the same in every dialect).
    stock_levels_sql: ClassVar[str]

    def interface_stats(self, since: datetime, until: datetime) -> list[InterfaceStats]:
        """Per target: calls with since < req_time <= until, successes, mean and p95 latency."""
        return interface_stats_from_rows(self.query(INTERFACE_STATS_SQL, {"since": since, "until": until}))

    def finance_backlog(self, older_than: datetime, max_keys: int = 100) -> list[FinanceBacklog]:
        """Bills issued before older_than that are not yet supervised (upload) or, supervised,
        not yet archived (archive); each bill counts in one stage only."""
        return finance_backlog_from_rows(self.query(FINANCE_BACKLOG_SQL, {"older_than": older_than,
                                                                          "max_keys": max_keys}))

    def stock_levels(self, now: datetime, use_days: int = 30) -> list[StockLevel]:
        """Remaining numbers of ACTIVE segments per (point, code) with the use of the use_days
        before now; plus active points that hold no ACTIVE segment. Inactive points are left out."""
        params = {"since": now - timedelta(days=use_days), "until": now}
        return stock_levels_from_rows(self.query(self.stock_levels_sql, params))
