"""Backup-restore verification, database side: object inventory, row counts and content fingerprints
of one schema, as SQL for PostgreSQL-family and Oracle databases and as the mapping of its rows.

Everything heavy runs inside the database: a table's rows are hashed there, cut into chunks, and only
one short row per chunk comes back. A table whose first key column is an integer is chunked by key
range: chunk n holds the keys in [n*2^s, (n+1)*2^s), s chosen from the table's count and key range so
that a chunk holds about `chunk_rows` rows. That needs no sort (a window rank over millions of rows
was most of the cost), and a missing or extra row changes only its own chunk. Other tables are cut
by primary-key rank into chunks of exactly `chunk_rows` rows. Both copies must use the same s: the
side measured first decides it (key_shift_for) and the other side is given it.
Two copies of a schema (production and its restored backup) are fingerprinted with the same call
and compared chunk by chunk (tasks/backup/verify/fingerprint_compare.py), so that a difference is named
by table and chunk, not only "the dumps differ".

Fingerprints are comparable between two databases of the same dialect (same row text rules), never
across dialects. Three methods:

- "sum" (both dialects, the default): the chunk's value is the exact SUM of the first 60 bits of each
  row's MD5. Oracle has no ordered aggregate of unbounded length without a grant: LISTAGG stops at
  4000 bytes (125 row hashes) and DBMS_CRYPTO, which could hash a CLOB, needs EXECUTE that a
  verification account should not need. The order-independence costs nothing here: chunks are cut
  by primary-key rank and every row's text contains its key, so a changed, missing, extra or moved
  row still changes its chunk's sum (the chance that a change leaves a 60-bit sum equal is ~2^-60).
- "ordered" (PostgreSQL only): MD5 of the ordered concatenation of the row MD5s (string_agg).
- "hash" (PostgreSQL 14+): the SUM of each row's 64-bit hash_record_extended(ROW(...), 0), computed
  by each column type's own hash function (the ones hash partitioning relies on, stable across
  releases) without writing the row as text: about 2.5x cheaper than "sum" and cheaper than a COPY
  of the table. Equal values hash alike (1.0 and 1.00, 'a' and 'a ' in char(n)), as they compare.
  Chosen per table when the server has the function and every column's type has a hash function;
  the side measured first decides, the other side is given the same choice.

Names are never pasted unchecked: every schema, table and column name is matched against the
dialect's plain-identifier pattern and then double-quoted, exactly as the catalog spells it
(PostgreSQL lower-case, Oracle upper-case). Values (SCN, cut-off time, schema) are bind parameters
in the `:name` style of tasks/connect/database/params.py.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Mapping

# Names and columns are shared with the row text of each dialect (fingerprint_rowtext), which this
# module builds on: they live apart so the two modules do not import each other.
from tasks.backup.verify.fingerprint_names import Column, check_name, quote
from tasks.backup.verify.fingerprint_names import checked_dialect as _dialect
from tasks.backup.verify.fingerprint_rowtext import build_fingerprint_sql

METHODS = {"postgresql": ("sum", "ordered", "hash"), "oracle": ("sum",)}
# format_type() spellings whose types have an extended hash function (for the "hash" method)
_PG_HASHABLE = re.compile(r"^(smallint|integer|bigint|numeric|real|double precision|boolean|text|bytea|uuid|jsonb|"
                          r"date|interval|character|character varying|bpchar|varchar|"
                          r"time(stamp)?( ?\(\d+\))?( with(out)? time zone)?)(\(\d+(,\d+)?\))?$")
PG_HAS_RECORD_HASH_SQL = "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'hash_record_extended') AS ok"


def hash_method_fits(shape: "TableShape", columns: "Iterable[str] | None" = None) -> bool:
    """Whether every hashed column of the table has a type hash_record_extended can hash."""
    names = set(columns) if columns is not None else {c.name for c in shape.columns}
    return all(_PG_HASHABLE.match(c.data_type) for c in shape.columns if c.name in names)
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


def _source(dialect: str, schema: str, table: str, as_of: AsOf | None, params: dict) -> str:
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


# ------------------------------------------------------------------ object inventory

@dataclass(frozen=True)
class DbObject:
    """One object of a schema. System-named Oracle constraints and indexes (SYS_C…) are named by
    what they are (table, type, columns) instead, because a restore may name them anew."""
    kind: str  # table | index | constraint | sequence | view
    name: str
    table: str | None = None


PG_INVENTORY_SQL = """
SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table'
            WHEN c.relkind IN ('i', 'I') THEN 'index'
            WHEN c.relkind = 'S' THEN 'sequence'
            ELSE 'view' END AS kind,
       c.relname AS name,
       CASE WHEN c.relkind IN ('r', 'p') THEN c.relname ELSE t.relname END AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index x ON x.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = x.indrelid
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'i', 'I', 'S', 'v', 'm')
UNION ALL
SELECT 'constraint', con.conname, rel.relname
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace n ON n.oid = rel.relnamespace
WHERE n.nspname = :schema
ORDER BY 1, 2, 3
"""

# Left out: the recycle bin (BIN$…), LOB indexes, IOT overflow and nested tables (parts of another
# object) and identity-column sequences (ISEQ$$_<object id>: renamed by every import).
ORACLE_INVENTORY_SQL = """
SELECT 'table' AS kind, t.table_name AS name, t.table_name AS table_name
FROM all_tables t
WHERE t.owner = :schema AND t.dropped = 'NO' AND t.nested = 'NO' AND t.secondary = 'N'
  AND (t.iot_type IS NULL OR t.iot_type = 'IOT')
UNION ALL
SELECT 'index',
       CASE WHEN i.generated = 'Y' THEN i.table_name || '(' ||
            (SELECT LISTAGG(ic.column_name, ',') WITHIN GROUP (ORDER BY ic.column_position)
             FROM all_ind_columns ic WHERE ic.index_owner = i.owner AND ic.index_name = i.index_name) || ')'
            ELSE i.index_name END,
       i.table_name
FROM all_indexes i
WHERE i.owner = :schema AND i.index_type <> 'LOB' AND i.table_name NOT LIKE 'BIN$%'
UNION ALL
SELECT 'constraint',
       CASE WHEN c.generated = 'GENERATED NAME' THEN c.table_name || ':' || c.constraint_type || '(' ||
            (SELECT LISTAGG(cc.column_name, ',') WITHIN GROUP (ORDER BY cc.position, cc.column_name)
             FROM all_cons_columns cc WHERE cc.owner = c.owner AND cc.constraint_name = c.constraint_name) || ')'
            ELSE c.constraint_name END,
       c.table_name
FROM all_constraints c
WHERE c.owner = :schema AND c.table_name NOT LIKE 'BIN$%'
UNION ALL
SELECT 'sequence', s.sequence_name, NULL
FROM all_sequences s
WHERE s.sequence_owner = :schema AND s.sequence_name NOT LIKE 'ISEQ$$%'
UNION ALL
SELECT 'view', v.view_name, NULL
FROM all_views v
WHERE v.owner = :schema
ORDER BY 1, 2, 3
"""


def inventory_statement(dialect: str, schema: str) -> Statement:
    sql = PG_INVENTORY_SQL if _dialect(dialect) == "postgresql" else ORACLE_INVENTORY_SQL
    return Statement(sql, {"schema": check_name(dialect, schema)})


def inventory_from_rows(rows: Iterable[dict]) -> frozenset[DbObject]:
    """Rows of the inventory query (lower-case keys) as a set, ready for set difference."""
    return frozenset(DbObject(kind=str(r["kind"]), name=str(r["name"]),
                              table=str(r["table_name"]) if r.get("table_name") is not None else None)
                     for r in rows)


# ------------------------------------------------------------------ table shapes (columns, primary key)

@dataclass(frozen=True)
class TableShape:
    name: str
    columns: tuple[Column, ...]
    pk: tuple[str, ...]  # primary-key columns in key order; () when the table has none

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name}")


# Ordinary tables and partitioned parents; partitions are read through their parent (one
# fingerprint covers every year's partition, whatever tablespace it sits in).
PG_COLUMNS_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name, a.attnum AS column_id,
       format_type(a.atttypid, a.atttypmod) AS data_type, k.ord AS pk_position
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON k.attnum = a.attnum
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""

ORACLE_COLUMNS_SQL = """
SELECT c.table_name, c.column_name, c.column_id, c.data_type, c.data_length AS max_bytes,
       k.position AS pk_position
FROM all_tab_columns c
JOIN all_tables t ON t.owner = c.owner AND t.table_name = c.table_name
LEFT JOIN (
    SELECT cc.table_name, cc.column_name, cc.position
    FROM all_constraints pk
    JOIN all_cons_columns cc ON cc.owner = pk.owner AND cc.constraint_name = pk.constraint_name
    WHERE pk.owner = :schema AND pk.constraint_type = 'P'
) k ON k.table_name = c.table_name AND k.column_name = c.column_name
WHERE c.owner = :schema AND t.dropped = 'NO' AND t.nested = 'NO' AND t.secondary = 'N'
  AND t.temporary = 'N' AND (t.iot_type IS NULL OR t.iot_type = 'IOT')
ORDER BY c.table_name, c.column_id
"""


def columns_statement(dialect: str, schema: str) -> Statement:
    sql = PG_COLUMNS_SQL if _dialect(dialect) == "postgresql" else ORACLE_COLUMNS_SQL
    return Statement(sql, {"schema": check_name(dialect, schema)})


def shapes_from_rows(rows: Iterable[dict]) -> dict[str, TableShape]:
    """Rows of the columns query (ordered by table, column id) as table name -> TableShape."""
    cols: dict[str, list[Column]] = {}
    keys: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        table = str(r["table_name"])
        cols.setdefault(table, []).append(Column(name=str(r["column_name"]), data_type=str(r["data_type"]),
                                                 max_bytes=int(r["max_bytes"]) if r.get("max_bytes") is not None else None))
        if r.get("pk_position") is not None:
            keys.setdefault(table, []).append((int(r["pk_position"]), str(r["column_name"])))
    return {t: TableShape(name=t, columns=tuple(c), pk=tuple(n for _, n in sorted(keys.get(t, []))))
            for t, c in cols.items()}


# ------------------------------------------------------------------ row counts

def row_counts_statement(dialect: str, schema: str, tables: Iterable[str], as_of: AsOf | None = None) -> Statement:
    """One statement counting every table (UNION ALL), under the same AsOf as the fingerprints."""
    params: dict = {}
    parts = [f"SELECT '{check_name(dialect, t)}' AS table_name, COUNT(*) AS row_count\n"
             f"FROM {_source(_dialect(dialect), schema, t, as_of, params)}"
             for t in sorted(tables)]
    if not parts:
        raise ValueError("no table to count")
    return Statement("\nUNION ALL\n".join(parts), params)


def row_counts_from_rows(rows: Iterable[dict]) -> dict[str, int]:
    return {str(r["table_name"]): int(r["row_count"]) for r in rows}


# ------------------------------------------------------------------ content fingerprints
# (the row text of each dialect lives in tasks/backup/verify/fingerprint_rowtext.py)

# ------------------------------------------------------------------ key-range chunks

_PG_INTEGER = re.compile(r"^(smallint|integer|bigint)$")
_ORA_INTEGER = re.compile(r"^(NUMBER|INTEGER)$")


def integer_key(dialect: str, shape: "TableShape") -> "Column | None":
    """The first primary-key column if it holds integers (chunks by key range), else None."""
    if not shape.pk:
        return None
    col = shape.column(shape.pk[0])
    pattern = _PG_INTEGER if dialect == "postgresql" else _ORA_INTEGER
    return col if pattern.match(col.data_type) else None


def key_bounds_statement(dialect: str, schema: str, shape: "TableShape", as_of: "AsOf | None" = None) -> Statement:
    """Count, lowest and highest first key of one table (under the same AsOf as its fingerprint)."""
    col = integer_key(_dialect(dialect), shape)
    if col is None:
        raise ValueError(f"table {shape.name}: its first key column is not an integer; it is chunked by rank")
    params: dict = {}
    k = f"t.{quote(dialect, col.name)}"
    return Statement(f"SELECT COUNT(*) AS row_count, MIN({k}) AS lo, MAX({k}) AS hi\n"
                     f"FROM {_source(dialect, schema, shape.name, as_of, params)}", params)


def key_shift_for(row_count: int, lo, hi, chunk_rows: int) -> int:
    """The s of chunk = key >> s giving about chunk_rows rows per chunk over [lo, hi]."""
    if not row_count or lo is None or hi is None:
        return 0
    width = (int(hi) - int(lo) + 1) * chunk_rows / int(row_count)  # keys per chunk_rows rows
    return max(0, min(62, int(width).bit_length() - 1)) if width >= 1 else 0


@dataclass(frozen=True)
class ChunkHash:
    chunk_no: int  # key range [n*2^s, (n+1)*2^s), or rows n*chunk_rows+1 … (n+1)*chunk_rows in key order
    rows: int
    hash: str
    first_key: str | None = None  # first primary-key column's lowest and highest value in the chunk
    last_key: str | None = None


@dataclass(frozen=True)
class TableFingerprint:
    table: str
    method: str
    chunk_rows: int
    columns: tuple[str, ...]  # the columns hashed, in order
    key: tuple[str, ...]  # what the rows were ranked by (the primary key; () = the row hash)
    chunks: tuple[ChunkHash, ...]
    excluded: tuple[str, ...] = ()  # columns that could not be hashed (Oracle LOBs), said in the record
    key_shift: int | None = None  # chunks by key range [n*2^s, (n+1)*2^s) of key[0]; None: by rank

    @property
    def chunking(self) -> str:
        return f"key>>{self.key_shift}" if self.key_shift is not None else f"rank/{self.chunk_rows}"

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @property
    def total(self) -> str:
        """One MD5 over the chunk lines: equal totals mean equal tables."""
        text = "\n".join(f"{c.chunk_no}:{c.rows}:{c.hash}" for c in self.chunks)
        head = f"{self.method}/{self.chunk_rows}/{','.join(self.columns)}"
        if self.key_shift is not None:
            head += f"/key>>{self.key_shift}"
        return hashlib.md5(f"{head}\n{text}".encode()).hexdigest()


def _hash_text(method: str, value) -> str:
    # Sums come back as decimal text; shown as 24 hex digits, never as a long run of digits that
    # the masking of ID numbers (tasks/core/masking.py) would take for one.
    return format(int(str(value)), "024x") if method in ("sum", "hash") else str(value)


def fingerprint_from_rows(query: "FingerprintQuery", rows: Iterable[dict]) -> TableFingerprint:
    chunks = tuple(sorted((ChunkHash(chunk_no=int(r["chunk_no"]), rows=int(r["row_count"]),
                                     hash=_hash_text(query.method, r["chunk_hash"]),
                                     first_key=None if r.get("first_key") is None else str(r["first_key"]),
                                     last_key=None if r.get("last_key") is None else str(r["last_key"]))
                           for r in rows), key=lambda c: c.chunk_no))
    return TableFingerprint(table=query.table, method=query.method, chunk_rows=query.chunk_rows,
                            columns=query.columns, key=query.key, chunks=chunks, excluded=query.excluded,
                            key_shift=query.key_shift)


@dataclass(frozen=True)
class FingerprintQuery(Statement):
    table: str = ""
    method: str = "sum"
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    columns: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    key_shift: int | None = None


def fingerprint_statement(dialect: str, schema: str, shape: TableShape, *, method: str = "sum",
                          chunk_rows: int = DEFAULT_CHUNK_ROWS, as_of: AsOf | None = None,
                          columns: Iterable[str] | None = None, key_shift: int | None = None) -> FingerprintQuery:
    """The query fingerprinting one table: one row per chunk (chunk_no, row_count, chunk_hash,
    first_key, last_key). `columns` limits the hash to those columns (e.g. the immutable ones of
    a backup someone else took); by default every column. `key_shift` chunks by key range (the
    "sum" method, an integer first key); otherwise chunks are cut by rank."""
    _dialect(dialect)
    if method not in METHODS[dialect]:
        raise ValueError(f"method {method!r} is not available for {dialect} (hint: {', '.join(METHODS[dialect])})")
    chunk_rows = int(chunk_rows)
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    chosen = [shape.column(c) for c in columns] if columns is not None else list(shape.columns)
    if not chosen:
        raise ValueError(f"table {shape.name}: no column to hash")
    if method == "hash" and not hash_method_fits(shape, [c.name for c in chosen]):
        raise ValueError(f"table {shape.name}: a column type has no hash function; use the sum method")
    if key_shift is not None and (method == "ordered" or integer_key(dialect, shape) is None or not 0 <= int(key_shift) <= 62):
        raise ValueError(f"table {shape.name}: key-range chunks need the sum or hash method, an integer first key "
                         f"and 0 <= key_shift <= 62")
    params: dict = {}
    source = _source(dialect, schema, shape.name, as_of, params)
    sql, hashed, excluded = build_fingerprint_sql(dialect, source, chosen, [shape.column(k) for k in shape.pk],
                                                  method, chunk_rows, None if key_shift is None else int(key_shift))
    return FingerprintQuery(sql=sql, params=params, table=shape.name, method=method, chunk_rows=chunk_rows,
                            columns=tuple(hashed), key=shape.pk, excluded=tuple(excluded),
                            key_shift=None if key_shift is None else int(key_shift))
