"""Key-range chunks of the content fingerprints (no sort): the shift, the SQL of both dialects (parsed
with sqlglot), the rank fallback, the comparison's wording and refusal, and measure()'s hand-over of
one side's chunking to the other. Oracle cannot run here: its catalog rows are those of
tests/unit/test_fingerprint_sql.py."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sqlglot

from tasks.backup.verify import measure
from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify.fingerprint_names import Column
from tasks.backup.verify import reading as rd
from tasks.backup.verify import catalog as cat
from tasks.backup.verify.fingerprint import ChunkHash, TableFingerprint
from tasks.backup.verify.fingerprint_compare import compare_fingerprints
from tests.unit.test_fingerprint_sql import READ, SCHEMA, SHAPES


@pytest.mark.parametrize("count, lo, hi, rows, shift", [
    (1_000_000, 1, 1_000_000, 10_000, 13),     # 10,000 keys per chunk -> 2^13 = 8192
    (1_000_000, 1, 1_000_000, 1, 0),           # a chunk per key
    (500, 1, 100_000_000, 10_000, 30),         # sparse keys: wide ranges, still ~all rows in few chunks
    (0, None, None, 10_000, 0),                # empty table
    (10, 5, 5, 10_000, 9),                     # fewer rows than a chunk: any wide range will do
])
def test_key_shift_follows_count_and_key_range(count, lo, hi, rows, shift):
    assert fp.key_shift_for(count, lo, hi, rows) == shift


@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
def test_key_range_sql_has_no_sort_and_parses(dialect):
    table = "t_ebill_main" if dialect == "postgresql" else "T_EBILL_MAIN"
    shape = SHAPES[dialect][table]
    q = fp.fingerprint_statement(dialect, SCHEMA[dialect], shape, chunk_rows=10_000, key_shift=13)
    assert "ROW_NUMBER" not in q.sql.upper() and q.key_shift == 13
    assert ('t."id"::bigint >> 13' if dialect == "postgresql" else 'FLOOR(t."ID" / 8192)') in q.sql
    sqlglot.parse_one(q.sql, read=READ[dialect])
    ranked = fp.fingerprint_statement(dialect, SCHEMA[dialect], shape, chunk_rows=10_000)
    assert "ROW_NUMBER" in ranked.sql.upper() and ranked.key_shift is None
    b = fp.key_bounds_statement(dialect, SCHEMA[dialect], shape, rd.AsOf(scn=42) if dialect == "oracle" else None)
    assert "MIN(" in b.sql and "MAX(" in b.sql
    sqlglot.parse_one(b.sql, read=READ[dialect])


def test_key_range_is_refused_where_it_cannot_hold():
    uuid_keyed = SHAPES["postgresql"]["t_uuid_keyed"]
    assert fp.integer_key("postgresql", uuid_keyed) is None and fp.integer_key("oracle", SHAPES["oracle"]["T_LOG_NOPK"]) is None
    with pytest.raises(ValueError, match="key-range"):
        fp.fingerprint_statement("postgresql", "ebill", uuid_keyed, key_shift=3)
    with pytest.raises(ValueError, match="key-range"):
        fp.fingerprint_statement("postgresql", "ebill", SHAPES["postgresql"]["t_ebill_main"], method="ordered", key_shift=3)
    with pytest.raises(ValueError, match="not an integer"):
        fp.key_bounds_statement("postgresql", "ebill", uuid_keyed)


def _kfp(shift=4, hashes=("a" * 24, "b" * 24)):
    chunks = tuple(ChunkHash(i + 7, 16, h, str((i + 7) * 16), str((i + 7) * 16 + 15)) for i, h in enumerate(hashes))
    return TableFingerprint(table="t_ebill_main", method="sum", chunk_rows=10, columns=("id", "payer"), key=("id",),
                            chunks=chunks, key_shift=shift)


def test_compare_names_the_key_range_and_refuses_different_chunking():
    [bad] = compare_fingerprints("demo", {"t_ebill_main": _kfp()}, {"t_ebill_main": _kfp(hashes=("a" * 24, "c" * 24))})
    assert bad.status.value == "FAIL" and "第 8 块（id 128–143，实有 id 128…143）" in bad.reason
    assert "错位" not in bad.reason and "键范围分块" in bad.threshold
    [odd] = compare_fingerprints("demo", {"t_ebill_main": _kfp()}, {"t_ebill_main": _kfp(shift=5)})
    assert odd.status.value == "ERROR"
    assert _kfp().total != replace(_kfp(), key_shift=None).total  # the chunking is part of the total


class _Fetch:
    """Answers measure()'s statements from the PostgreSQL catalog rows; records what was asked."""

    def __init__(self, record_hash: bool = True):
        self.sql: list[str] = []
        self.record_hash = record_hash

    def __call__(self, st: rd.Statement) -> list[dict]:
        self.sql.append(st.sql)
        if "pg_proc" in st.sql:
            return [{"ok": self.record_hash}]
        if "pg_attribute" in st.sql:
            from tests.unit.test_fingerprint_sql import PG_COLUMN_ROWS
            return [r for r in PG_COLUMN_ROWS if r["table_name"] == "t_ebill_main"]
        if "MIN(" in st.sql and "lo" in st.sql:
            return [{"row_count": 1_000_000, "lo": 1, "hi": 1_000_000}]
        if "chunk_no" in st.sql:
            return [{"chunk_no": 0, "row_count": 3, "chunk_hash": "12", "first_key": "1", "last_key": "3"}]
        if "row_count" in st.sql:
            return [{"table_name": "t_ebill_main", "row_count": 3}]
        if "newest" in st.sql:
            return [{"newest": None}]
        return []


def test_the_first_side_chooses_the_chunking_and_the_second_is_given_it():
    first = _Fetch()
    m = measure.measure(first, "postgresql", "ebill", as_of=None, chunk_rows=10_000)
    assert m.key_shifts() == {"t_ebill_main": 13} and any("MIN(" in s for s in first.sql)
    assert m.methods() == {"t_ebill_main": "hash"} and any("hash_record_extended(ROW(" in s for s in first.sql)
    second = _Fetch(record_hash=False)  # told the first side's choices, it neither plans nor asks
    m2 = measure.measure(second, "postgresql", "ebill", as_of=None, chunk_rows=10_000, key_shifts={"t_ebill_main": 9},
                         methods={"t_ebill_main": "hash"})
    assert m2.prints["t_ebill_main"].key_shift == 9 and not any("MIN(" in s and " lo" in s for s in second.sql)
    assert m2.methods() == {"t_ebill_main": "hash"} and not any("pg_proc" in s for s in second.sql)
    assert m2.to_json()["fingerprints"]["t_ebill_main"]["key_shift"] == 9
    # a server without hash_record_extended (openGauss, KingbaseES, PostgreSQL < 14): md5 of the row text
    old = measure.measure(_Fetch(record_hash=False), "postgresql", "ebill", as_of=None, chunk_rows=10_000)
    assert old.methods() == {"t_ebill_main": "sum"}


def test_hash_method_sql_and_the_types_it_refuses():
    shape = SHAPES["postgresql"]["t_ebill_main"]
    q = fp.fingerprint_statement("postgresql", "ebill", shape, method="hash", key_shift=13)
    assert "hash_record_extended(ROW(t.\"id\", t.\"ivc_datetime\", t.\"payer\", t.\"total_amt\"), 0)" in q.sql
    assert "md5" not in q.sql
    sqlglot.parse_one(q.sql, read="postgres")
    assert fp.hash_method_fits(shape) and fp.hash_method_fits(SHAPES["postgresql"]["t_uuid_keyed"])
    point = cat.TableShape("t_geo", (Column("id", "bigint"), Column("at", "point")), ("id",))
    assert not fp.hash_method_fits(point) and fp.hash_method_fits(point, ["id"])
    with pytest.raises(ValueError, match="no hash function"):
        fp.fingerprint_statement("postgresql", "ebill", point, method="hash")
