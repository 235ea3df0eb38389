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
from dataclasses import dataclass
from typing import Iterable

from tasks.backup.verify.catalog import TableShape
from tasks.backup.verify.fingerprint_names import Column, quote
from tasks.backup.verify.fingerprint_names import checked_dialect as _dialect
from tasks.backup.verify.fingerprint_rowtext import build_fingerprint_sql
from tasks.backup.verify.reading import DEFAULT_CHUNK_ROWS, AsOf, Statement, source_clause

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
                     f"FROM {source_clause(dialect, schema, shape.name, as_of, params)}", params)


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
    source = source_clause(dialect, schema, shape.name, as_of, params)
    sql, hashed, excluded = build_fingerprint_sql(dialect, source, chosen, [shape.column(k) for k in shape.pk],
                                                  method, chunk_rows, None if key_shift is None else int(key_shift))
    return FingerprintQuery(sql=sql, params=params, table=shape.name, method=method, chunk_rows=chunk_rows,
                            columns=tuple(hashed), key=shape.pk, excluded=tuple(excluded),
                            key_shift=None if key_shift is None else int(key_shift))
