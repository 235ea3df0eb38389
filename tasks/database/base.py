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
from typing import Any, ClassVar

from config.settings import DatabaseConfig, resolve_secret
from tasks.masking import mask_row

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
}

# relation -> ordered column names: what every check may rely on.
CANONICAL_COLUMNS: dict[str, list[str]] = {rel: [c for c, _ in cols] for rel, cols in CANONICAL_SCHEMA.items()}


@dataclass(frozen=True)
class TablespaceUsage:
    name: str
    kind: str  # "permanent" | "temp" | "undo"
    used_bytes: int
    max_bytes: int | None  # autoextend-aware maximum; None where the database cannot say (PostgreSQL)
    location: str | None  # filesystem path (PostgreSQL); None for Oracle
    used_pct: float | None  # None where it must be judged against the filesystem (PostgreSQL)


class DatabaseError(RuntimeError):
    """A database could not be reached or a query failed; the message names the site's DSN, never the password."""


class EbillDatabase(ABC):
    """A read-only session on one hospital's e-bill database."""

    dialect: ClassVar[str]

    def __init__(self, cfg: DatabaseConfig):
        if cfg.dialect != self.dialect:
            raise ValueError(f"database.dialect is {cfg.dialect!r}, this class reads {self.dialect!r}")
        self.cfg = cfg
        self._conn: Any = None

    # -- connection lifecycle
    def _password(self) -> str:
        return resolve_secret(self.cfg.password)

    @abstractmethod
    def _connect(self) -> Any:
        """Open a read-only connection."""

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

    def query_df(self, sql: str, params: dict | None = None):
        import pandas as pd  # only the data-quality checks need pandas

        columns, rows = self._fetch(sql, params)
        return pd.DataFrame([mask_row(dict(zip(columns, row))) for row in rows], columns=columns)

    @abstractmethod
    def tablespace_usage(self) -> list[TablespaceUsage]:
        ...

    @abstractmethod
    def server_version(self) -> str:
        ...
