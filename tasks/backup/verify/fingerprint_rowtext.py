"""The fingerprint query of one table in each dialect: how a row becomes text, how it is hashed,
ranked by primary key, cut into chunks and aggregated (see tasks/backup/verify/fingerprint.py for why).

PostgreSQL: a row's text is ROW(col, …)::text, which quotes values that need it and writes NULL as
nothing and '' as "", so it is unambiguous; the session settings it depends on are fixed by
fingerprint.PG_SESSION_SQL.

Oracle: there is no row-to-text cast and a SQL string stops at 4000 bytes (ORA-01489), so each
column becomes a self-delimiting token, `<length>:<text>` or `-` for NULL, with explicit formats
(dates, timestamps in UTC, numbers with '.' whatever NLS_NUMERIC_CHARACTERS says). Tokens are packed
into batches of at most 4000 bytes by the column's declared size; a row with several batches is
hashed as the MD5 of its batches' MD5s. A column too wide for one batch is hashed on its own. LOBs
and LONGs cannot be read by STANDARD_HASH: they are left out and named (`excluded`) for the record.
"""
from __future__ import annotations

import re

from tasks.backup.verify.fingerprint_names import Column, quote

ORACLE_TEXT_BUDGET = 4000  # bytes of a VARCHAR2 expression with MAX_STRING_SIZE = STANDARD
_MAX_BATCHES = ORACLE_TEXT_BUDGET // 32  # batch MD5s (32 hex digits) must fit one string themselves
# First 15 hex digits (60 bits) of a row's MD5 as an integer: fits a bigint, and Oracle's NUMBER
# sums millions of them exactly.
_PG_ROW_BITS = "('x' || substr({h}, 1, 15))::bit(60)::bigint"
_ORA_ROW_BITS = "TO_NUMBER(SUBSTR(RAWTOHEX({h}), 1, 15), 'XXXXXXXXXXXXXXX')"
# PostgreSQL types with a MIN/MAX (for the chunk's key range); others are shown as text.
_PG_ORDERABLE = re.compile(r"^(smallint|integer|bigint|numeric|real|double precision|character|text|date|time)")


def build_fingerprint_sql(dialect: str, source: str, columns: list[Column], key: list[Column], method: str,
                          chunk_rows: int, key_shift: int | None = None) -> tuple[str, list[str], list[str]]:
    """(sql, hashed column names, excluded column names) for one table read from `source`
    (`schema.table [AS OF …] t [WHERE …]`); chunks by key range when key_shift is given."""
    if dialect == "postgresql":
        return _postgres(source, columns, key, method, chunk_rows, key_shift), [c.name for c in columns], []
    return _oracle(source, columns, key, chunk_rows, key_shift)


def _col(dialect: str, c: Column) -> str:
    return f"t.{quote(dialect, c.name)}"


# ------------------------------------------------------------------ PostgreSQL

def _postgres(source: str, columns: list[Column], key: list[Column], method: str, chunk_rows: int,
              key_shift: int | None = None) -> str:
    row = f"ROW({', '.join(_col('postgresql', c) for c in columns)})"
    row_hash = f"md5({row}::text)"
    order = ", ".join(_col("postgresql", c) for c in key) or row_hash  # no key: rank by the row itself
    if key:
        k = _col("postgresql", key[0])
        if not _PG_ORDERABLE.match(key[0].data_type):
            k += "::text"
    else:
        k = "CAST(NULL AS text)"
    rank = f"row_number() OVER (ORDER BY {order})"
    chunk = f"({rank} - 1) / {chunk_rows}"
    if key_shift is not None:  # by key range: no sort, the aggregate hashes rows into their chunk
        chunk = f"{_col('postgresql', key[0])}::bigint >> {key_shift}"
    if method == "ordered":
        agg, rn = "md5(string_agg(h, '' ORDER BY rn))", f",\n           {rank} AS rn"
    elif method == "hash":  # each type's own hash of the row, no text (SUM of bigint is numeric: exact)
        row_hash, agg, rn = f"hash_record_extended({row}, 0)", "SUM(h)::text", ""
    else:
        agg, rn = f"SUM({_PG_ROW_BITS.format(h='h')})::text", ""
    return f"""
SELECT chunk_no, COUNT(*) AS row_count, {agg} AS chunk_hash,
       MIN(k)::text AS first_key, MAX(k)::text AS last_key
FROM (
    SELECT {row_hash} AS h,
           {k} AS k,
           {chunk} AS chunk_no{rn}
    FROM {source}
) r
GROUP BY chunk_no
ORDER BY chunk_no
"""


# ------------------------------------------------------------------ Oracle

def oracle_text(expr: str, col: Column) -> tuple[str, int] | None:
    """(text expression, its maximum bytes) for a value of col's type; None if it cannot be hashed."""
    dt = col.data_type.upper()
    size = col.max_bytes or 4000
    if dt in ("VARCHAR2", "CHAR", "VARCHAR"):
        return expr, size
    if dt in ("NVARCHAR2", "NCHAR"):
        return f"TO_CHAR({expr})", 2 * size  # national UTF-16 to the database character set
    if dt in ("NUMBER", "FLOAT", "INTEGER", "BINARY_FLOAT", "BINARY_DOUBLE"):
        return f"TO_CHAR({expr}, 'TM9', 'NLS_NUMERIC_CHARACTERS=''.,''')", 64
    if dt == "DATE":
        return f"TO_CHAR({expr}, 'YYYY-MM-DD HH24:MI:SS')", 19
    if dt.startswith("TIMESTAMP") and "TIME ZONE" in dt:
        return f"TO_CHAR(SYS_EXTRACT_UTC({expr}), 'YYYY-MM-DD HH24:MI:SS.FF9')", 29
    if dt.startswith("TIMESTAMP"):
        return f"TO_CHAR({expr}, 'YYYY-MM-DD HH24:MI:SS.FF9')", 29
    if dt.startswith("INTERVAL"):
        return f"TO_CHAR({expr})", 64
    if dt == "RAW":
        return f"RAWTOHEX({expr})", 2 * size
    return None  # CLOB, NCLOB, BLOB, LONG, BFILE, XMLTYPE, object types


def _oracle_row_hash(columns: list[Column]) -> tuple[str, list[str], list[str]]:
    hashed, excluded, batches, current, used = [], [], [], [], 0
    for c in columns:
        ref = _col("oracle", c)
        text = oracle_text(ref, c)
        if text is None:
            excluded.append(c.name)
            continue
        expr, size = text
        token, size = f"NVL2({ref}, LENGTH({expr}) || ':' || {expr}, '-')", size + 5
        if size > ORACLE_TEXT_BUDGET:
            token, size = f"NVL2({ref}, RAWTOHEX(STANDARD_HASH({expr}, 'MD5')), '-')", 32
        if current and used + size > ORACLE_TEXT_BUDGET:
            batches.append(current)
            current, used = [], 0
        current.append(token)
        used += size
        hashed.append(c.name)
    if current:
        batches.append(current)
    if not batches:
        raise ValueError(f"no column of types Oracle can hash among {[c.name for c in columns]}")
    if len(batches) > _MAX_BATCHES:
        raise ValueError(f"{len(hashed)} columns are too wide to hash in one row text; choose fewer columns")
    texts = [" || ".join(b) for b in batches]
    if len(texts) == 1:
        return f"STANDARD_HASH({texts[0]}, 'MD5')", hashed, excluded
    inner = " || ".join(f"RAWTOHEX(STANDARD_HASH({t}, 'MD5'))" for t in texts)
    return f"STANDARD_HASH({inner}, 'MD5')", hashed, excluded


def _oracle(source: str, columns: list[Column], key: list[Column], chunk_rows: int,
            key_shift: int | None = None) -> tuple[str, list[str], list[str]]:
    row_hash, hashed, excluded = _oracle_row_hash(columns)
    order = ", ".join(_col("oracle", c) for c in key) or row_hash
    if key:
        k = _col("oracle", key[0])
        first, last = (oracle_text(f"{agg}(k)", key[0]) or ("NULL", 0) for agg in ("MIN", "MAX"))
        first, last = first[0], last[0]
    else:
        k, first, last = "NULL", "NULL", "NULL"
    chunk = f"FLOOR((ROW_NUMBER() OVER (ORDER BY {order}) - 1) / {chunk_rows})"
    if key_shift is not None:  # by key range (Oracle has no shift operator: divide by 2^s)
        chunk = f"FLOOR({_col('oracle', key[0])} / {2 ** key_shift})"
    sql = f"""
SELECT chunk_no, COUNT(*) AS row_count,
       TO_CHAR(SUM({_ORA_ROW_BITS.format(h='h')})) AS chunk_hash,
       {first} AS first_key, {last} AS last_key
FROM (
    SELECT {row_hash} AS h,
           {k} AS k,
           {chunk} AS chunk_no
    FROM {source}
) r
GROUP BY chunk_no
ORDER BY chunk_no
"""
    return sql, hashed, excluded
