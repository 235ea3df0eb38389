"""How the verification reads one side (production or the restored copy): a statement and its
binds, which state of the source it describes (AsOf: an Oracle SCN, or a cut-off time for a
backup someone else took), the session settings row text depends on, and snapshots.
tasks/backup/verify/catalog.py (inventory, shapes, counts) and fingerprint.py build on it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

from tasks.backup.verify.fingerprint_names import quote

DEFAULT_CHUNK_ROWS = 10_000

_PG_SNAPSHOT = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{8}-[0-9]{1,10}$")


@dataclass(frozen=True)
class Statement:
    """One query and its bind parameters (only those it uses: python-oracledb refuses extra binds)."""
    sql: str
    params: dict = field(default_factory=dict)


# ------------------------------------------------------------------ session set-up and snapshots

# Row text depends on these settings in PostgreSQL (dates, floats, bytea, timestamptz): both sides
# are read with the same values. set_config(..., true) holds for the current transaction only.
PG_SESSION_SQL = """
SELECT set_config('DateStyle', 'ISO, YMD', true) AS datestyle,
       set_config('IntervalStyle', 'postgres', true) AS intervalstyle,
       set_config('extra_float_digits', '3', true) AS extra_float_digits,
       set_config('bytea_output', 'hex', true) AS bytea_output,
       set_config('TimeZone', 'UTC', true) AS timezone
"""

# When ebill-ops takes the backup itself: export the snapshot, give it to pg_dump --snapshot, and
# fingerprint inside the same snapshot (pg_use_snapshot_sql in another REPEATABLE READ transaction).
PG_EXPORT_SNAPSHOT_SQL = "SELECT pg_export_snapshot() AS snapshot_id"

# Oracle: expdp FLASHBACK_SCN=<scn> and the same SCN in AS OF SCN queries. Needs SELECT on
# V$DATABASE (granted to the verification account, not to the read-only checks' account).
ORACLE_CURRENT_SCN_SQL = "SELECT current_scn FROM v$database"


def pg_use_snapshot_sql(snapshot_id: str) -> str:
    """SET TRANSACTION SNAPSHOT takes no bind parameter: the id is checked against its format."""
    if not isinstance(snapshot_id, str) or not _PG_SNAPSHOT.match(snapshot_id):
        raise ValueError(f"{snapshot_id!r} is not a pg_export_snapshot() id")
    return f"SET TRANSACTION SNAPSHOT '{snapshot_id}'"


@dataclass(frozen=True)
class AsOf:
    """Which state of the source the counts and fingerprints describe.

    scn: Oracle flashback query (`AS OF SCN`), the SCN the backup was taken at.
    before + cutoff_columns: for a backup someone else took, only rows that cannot have changed
    since: those whose cut-off column (e.g. the bill's issue time) is before the backup time.
    Tables without a cut-off column are read whole; say so in the record (scope_zh).
    """
    scn: int | None = None
    before: datetime | None = None
    cutoff_columns: Mapping[str, str] = field(default_factory=dict)

    def cutoff(self, table: str) -> str | None:
        """The table's cut-off column; a table listed with an empty name is an error, not "whole"."""
        if self.before is None:
            return None
        # Oracle's catalog spells names in upper case, a site file usually in lower case
        found = [v for k, v in self.cutoff_columns.items() if k.lower() == table.lower()]
        return str(found[0] or "") if found else None  # "" (listed, no name) is refused by quote()

    def scope_zh(self, table: str) -> str:
        parts = []
        if self.scn is not None:
            parts.append(f"截至 SCN {self.scn}")
        col = self.cutoff(table)
        if col is not None:
            parts.append(f"仅比较 {col} 早于 {self.before:%Y-%m-%d %H:%M:%S} 的行（之后可能已变化）")
        elif self.before is not None:
            parts.append("此表无不变判定列，全表比较")
        return "；".join(parts) or "全表"


def source_clause(dialect: str, schema: str, table: str, as_of: AsOf | None, params: dict) -> str:
    """`schema.table [AS OF SCN :scn] t [WHERE t.cutoff < :as_of_time]`, filling params."""
    src = f"{quote(dialect, schema)}.{quote(dialect, table)}"
    if as_of is not None and as_of.scn is not None:
        if dialect != "oracle":
            raise ValueError("AS OF SCN is Oracle's; PostgreSQL reads an exported snapshot instead")
        src += " AS OF SCN :scn"
        params["scn"] = int(as_of.scn)
    src += " t"
    if as_of is not None and as_of.cutoff(table) is not None:
        src += f"\n    WHERE t.{quote(dialect, as_of.cutoff(table))} < :as_of_time"
        params["as_of_time"] = as_of.before
    return src


