"""Proof that compaction changed nothing: a partition's row count and in-database content fingerprint
(the backup verification's, tasks/backup/verify/fingerprint.py), before and after, equal.

The plan records each partition's figures when it is made (they are part of what is approved); the
compaction step measures again just before and just after it runs, and all three must agree. A
resumed run re-measures "before" on a partition an interrupted run may have moved already: the
plan's figures are the reference that survives the interruption.
"""
from __future__ import annotations

from typing import Callable

from tasks.backup.verify import catalog
from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify.fingerprint_names import quote
from tasks.backup.verify.fingerprint_rowtext import build_fingerprint_sql
from tasks.backup.verify.reading import PG_SESSION_SQL, Statement

Fetch = Callable[[Statement], list[dict]]
CHUNK_ROWS = 10_000


def parent_shapes(fetch: Fetch, dialect: str, schema: str) -> dict[str, catalog.TableShape]:
    return catalog.shapes_from_rows(fetch(catalog.columns_statement(dialect, schema)))


def partition_shape(parent: catalog.TableShape, partition: str) -> catalog.TableShape:
    """A partition has its parent's columns and key (PostgreSQL and Oracle alike)."""
    return catalog.TableShape(name=partition, columns=parent.columns, pk=parent.pk)


def source(dialect: str, schema: str, table: str, partition: str) -> str:
    """What the fingerprint reads: the partition itself (PostgreSQL: a table of its own; Oracle:
    the parent's PARTITION clause)."""
    if dialect == "postgresql":
        return f"{quote(dialect, schema)}.{quote(dialect, partition)} t"
    return f"{quote(dialect, schema)}.{quote(dialect, table)} PARTITION ({quote(dialect, partition)}) t"


def choose(fetch: Fetch, dialect: str, schema: str, shape: catalog.TableShape, table: str) -> dict:
    """Method and key-range chunking for one partition, decided once (at plan time) and reused."""
    method = "sum"
    if dialect == "postgresql":
        has = fetch(Statement(fp.PG_HAS_RECORD_HASH_SQL))
        if has and has[0]["ok"] and fp.hash_method_fits(shape):
            method = "hash"
    shift = None
    key = fp.integer_key(dialect, shape)
    if key is not None:
        k = f"t.{quote(dialect, key.name)}"
        b = fetch(Statement(f"SELECT COUNT(*) AS row_count, MIN({k}) AS lo, MAX({k}) AS hi\n"
                               f"FROM {source(dialect, schema, table, shape.name)}"))[0]
        shift = fp.key_shift_for(int(b["row_count"]), b["lo"], b["hi"], CHUNK_ROWS)
    return {"method": method, "key_shift": shift}


def fingerprint_query(dialect: str, schema: str, table: str, shape: catalog.TableShape, method: str,
                      key_shift: int | None) -> fp.FingerprintQuery:
    sql, hashed, excluded = build_fingerprint_sql(dialect, source(dialect, schema, table, shape.name), list(shape.columns),
                                                  [shape.column(k) for k in shape.pk], method, CHUNK_ROWS, key_shift)
    return fp.FingerprintQuery(sql=sql, params={}, table=shape.name, method=method, chunk_rows=CHUNK_ROWS,
                               columns=tuple(hashed), key=shape.pk, excluded=tuple(excluded), key_shift=key_shift)


def count_statement(dialect: str, schema: str, table: str, partition: str) -> Statement:
    return Statement(f"SELECT COUNT(*) AS row_count FROM {source(dialect, schema, table, partition)}")


def measure(fetch: Fetch, dialect: str, schema: str, table: str, shape: catalog.TableShape, how: dict) -> dict:
    """{"rows", "fingerprint", "method", "key_shift"} of one partition, measured in the database.
    PostgreSQL's row text depends on session settings: the caller runs this inside one transaction
    (fingerprint.PG_SESSION_SQL holds for the transaction only)."""
    if dialect == "postgresql":
        fetch(Statement(PG_SESSION_SQL))
    q = fingerprint_query(dialect, schema, table, shape, how["method"], how.get("key_shift"))
    printed = fp.fingerprint_from_rows(q, fetch(q))
    rows = int(fetch(count_statement(dialect, schema, table, shape.name))[0]["row_count"])
    return {"rows": rows, "fingerprint": printed.total, "method": how["method"], "key_shift": how.get("key_shift"),
            "chunks": len(printed.chunks), "fingerprint_rows": printed.rows}


def same(a: dict | None, b: dict | None) -> bool:
    return bool(a and b) and a["rows"] == b["rows"] and a["fingerprint"] == b["fingerprint"]
