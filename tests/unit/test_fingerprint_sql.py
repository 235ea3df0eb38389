"""Backup-restore verification without a server: the inventory, count and fingerprint SQL of both
dialects, identifier checking, the row mapping and the comparison records.

Oracle cannot run here. ORACLE_COLUMN_ROWS below STAND IN FOR ORACLE'S CATALOG: rows shaped as
ORACLE_COLUMNS_SQL returns them from Oracle 19c for a vendor's bill tables (upper-case names,
DATA_TYPE as ALL_TAB_COLUMNS spells it, DATA_LENGTH in bytes), lower-cased keys as
tasks.connect.database.oracle hands them over. Every generated statement is parsed with sqlglot's dialect.
"""
from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlglot

from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify import reading as rd
from tasks.backup.verify.reading import AsOf, pg_use_snapshot_sql
from tasks.backup.verify.fingerprint import (
    ChunkHash,
    TableFingerprint,
    fingerprint_from_rows,
    fingerprint_statement,
)
from tasks.backup.verify.fingerprint_names import Column, check_name
from tasks.backup.verify.catalog import (
    DbObject,
    TableShape,
    columns_statement,
    inventory_from_rows,
    inventory_statement,
    row_counts_from_rows,
    row_counts_statement,
    shapes_from_rows,
)
from tasks.backup.verify.fingerprint_compare import (
    compare_fingerprints,
    compare_inventories,
    compare_row_counts,
    differing_chunks,
)
from tasks.backup.verify.fingerprint_rowtext import ORACLE_TEXT_BUDGET
from tasks.connect.database.params import _PARAM, _TOKENS
from tasks.core.reason_codes import Code
from tasks.core.results import Status

READ = {"postgresql": "postgres", "oracle": "oracle"}
CHUNK_OUT = ["chunk_no", "row_count", "chunk_hash", "first_key", "last_key"]
BACKUP_TIME = datetime(2026, 3, 31, 23, 0)


def _ora(table, rows):
    return [dict(table_name=table, column_name=n, column_id=i + 1, data_type=t, max_bytes=b, pk_position=p)
            for i, (n, t, b, p) in enumerate(rows)]


ORACLE_COLUMN_ROWS = _ora("T_EBILL_MAIN", [
    ("ID", "NUMBER", 22, 1), ("BILL_BATCH_CODE", "VARCHAR2", 8, None), ("BILL_NUMBER", "VARCHAR2", 10, None),
    ("RED_FLAG", "CHAR", 1, None), ("IVC_DATETIME", "TIMESTAMP(6)", 11, 2), ("PAYER", "VARCHAR2", 400, None),
    ("TOTAL_AMT", "NUMBER", 22, None), ("IN_HOSPITAL_DATE", "DATE", 7, None), ("REMARK", "VARCHAR2", 4000, None),
    ("PDF_FILE", "BLOB", 4000, None), ("SIGN_TIME", "TIMESTAMP(6) WITH TIME ZONE", 13, None),
    ("PAYER_EN", "NVARCHAR2", 200, None),
]) + _ora("T_EBILL_DETAIL", [
    ("MAIN_ID", "NUMBER", 22, 1), ("IVC_DATETIME", "TIMESTAMP(6)", 11, 3), ("SORT_NO", "NUMBER", 22, 2),
    ("ITEM_NAME", "VARCHAR2", 800, None), ("AMT", "NUMBER", 22, None),
]) + _ora("T_LOG_NOPK", [("MSG", "VARCHAR2", 500, None), ("AT", "DATE", 7, None)])

PG_COLUMN_ROWS = [
    dict(table_name="t_ebill_main", column_name="id", column_id=1, data_type="bigint", pk_position=1),
    dict(table_name="t_ebill_main", column_name="ivc_datetime", column_id=11, data_type="timestamp without time zone",
         pk_position=2),
    dict(table_name="t_ebill_main", column_name="payer", column_id=13, data_type="character varying(100)",
         pk_position=None),
    dict(table_name="t_ebill_main", column_name="total_amt", column_id=17, data_type="numeric(14,2)", pk_position=None),
    dict(table_name="t_uuid_keyed", column_name="uid", column_id=1, data_type="uuid", pk_position=1),
    dict(table_name="t_uuid_keyed", column_name="doc", column_id=2, data_type="jsonb", pk_position=None),
    dict(table_name="t_log_nopk", column_name="msg", column_id=1, data_type="text", pk_position=None),
]
SHAPES = {"oracle": shapes_from_rows(ORACLE_COLUMN_ROWS), "postgresql": shapes_from_rows(PG_COLUMN_ROWS)}
SCHEMA = {"oracle": "EBILL", "postgresql": "ebill"}
CUTOFF = {"oracle": {"T_EBILL_MAIN": "IVC_DATETIME", "T_EBILL_DETAIL": "IVC_DATETIME"},
          "postgresql": {"t_ebill_main": "ivc_datetime"}}


def _binds(sql: str) -> set[str]:
    parts = _TOKENS.split(sql)
    return {m for i, p in enumerate(parts) if i % 2 == 0 for m in _PARAM.findall(p)}


def _as_ofs(dialect):
    yield None
    yield AsOf(before=BACKUP_TIME, cutoff_columns=CUTOFF[dialect])
    if dialect == "oracle":
        yield AsOf(scn=918273645, before=BACKUP_TIME, cutoff_columns=CUTOFF[dialect])
        yield AsOf(scn=918273645)


def all_statements(dialect):
    schema = SCHEMA[dialect]
    yield "inventory", inventory_statement(dialect, schema)
    yield "columns", columns_statement(dialect, schema)
    for as_of in _as_ofs(dialect):
        yield "counts", row_counts_statement(dialect, schema, SHAPES[dialect], as_of)
        for shape in SHAPES[dialect].values():
            for method in fp.METHODS[dialect]:
                yield "fingerprint", fingerprint_statement(dialect, schema, shape, method=method, chunk_rows=500,
                                                           as_of=as_of)


# ---------------------------------------------------------------- SQL of both dialects
@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
def test_every_statement_parses_in_its_dialect_and_binds_exactly_its_params(dialect):
    n = 0
    for kind, st in all_statements(dialect):
        tree = sqlglot.parse_one(st.sql, read=READ[dialect])  # raises on a syntax error
        assert _binds(st.sql) == set(st.params), (kind, st.sql)
        if kind == "fingerprint":
            assert [e.alias_or_name.lower() for e in tree.selects] == CHUNK_OUT
        n += 1
    assert n >= 10
    fixed = {"postgresql": [rd.PG_SESSION_SQL, rd.PG_EXPORT_SNAPSHOT_SQL], "oracle": [rd.ORACLE_CURRENT_SCN_SQL]}
    for sql in fixed[dialect]:
        sqlglot.parse_one(sql, read=READ[dialect])


def test_each_dialect_uses_its_own_functions():
    for _, st in all_statements("oracle"):
        assert "::" not in st.sql and "string_agg" not in st.sql.lower() and "md5(" not in st.sql.lower()
    for _, st in all_statements("postgresql"):
        assert "STANDARD_HASH" not in st.sql and "AS OF SCN" not in st.sql and "NVL" not in st.sql


def test_oracle_fingerprint_reads_as_of_scn_before_the_cutoff_and_sums_60_bit_row_hashes():
    as_of = AsOf(scn=918273645, before=BACKUP_TIME, cutoff_columns=CUTOFF["oracle"])
    q = fingerprint_statement("oracle", "EBILL", SHAPES["oracle"]["T_EBILL_MAIN"], as_of=as_of, chunk_rows=1000)
    assert q.params == {"scn": 918273645, "as_of_time": BACKUP_TIME}
    assert '"EBILL"."T_EBILL_MAIN" AS OF SCN :scn t' in q.sql
    assert 't."IVC_DATETIME" < :as_of_time' in q.sql
    assert 'ORDER BY t."ID", t."IVC_DATETIME"' in q.sql and "/ 1000)" in q.sql
    assert "SUBSTR(RAWTOHEX(h), 1, 15), 'XXXXXXXXXXXXXXX'" in q.sql
    # dates, timestamps and numbers in explicit formats, never the session's NLS settings
    assert "'YYYY-MM-DD HH24:MI:SS'" in q.sql and "SYS_EXTRACT_UTC(t.\"SIGN_TIME\")" in q.sql
    assert "NLS_NUMERIC_CHARACTERS=''.,''" in q.sql
    # the BLOB cannot be hashed by STANDARD_HASH: left out and said; a 4000-byte column is hashed alone
    assert q.excluded == ("PDF_FILE",) and "PDF_FILE" not in q.columns
    assert "NVL2(t.\"REMARK\", RAWTOHEX(STANDARD_HASH(t.\"REMARK\", 'MD5')), '-')" in q.sql
    # the table without a cut-off column is counted whole
    counts = row_counts_statement("oracle", "EBILL", ["T_EBILL_MAIN", "T_LOG_NOPK"], as_of)
    assert counts.sql.count(":as_of_time") == 1 and counts.sql.count("AS OF SCN :scn") == 2


def test_oracle_wide_tables_are_hashed_in_batches_under_the_4000_byte_limit():
    cols = [(f"C{i:03d}", "VARCHAR2", 1000, 1 if i == 0 else None) for i in range(12)]
    shape = shapes_from_rows(_ora("T_WIDE", cols))["T_WIDE"]
    q = fingerprint_statement("oracle", "EBILL", shape)
    row_hash = q.sql.split(" AS h,")[0]
    # 12 x 1005 bytes -> 4 batches of at most 3 tokens, each MD5'd, then the MD5 of those
    assert row_hash.count("RAWTOHEX(STANDARD_HASH(NVL2") == 4
    assert 3 * 1005 <= ORACLE_TEXT_BUDGET < 4 * 1005
    sqlglot.parse_one(q.sql, read="oracle")


def test_postgres_fingerprint_methods_and_keys():
    shape = SHAPES["postgresql"]["t_ebill_main"]
    s = fingerprint_statement("postgresql", "ebill", shape)
    o = fingerprint_statement("postgresql", "ebill", shape, method="ordered")
    assert "md5(ROW(t.\"id\", t.\"ivc_datetime\", t.\"payer\", t.\"total_amt\")::text)" in s.sql
    assert "::bit(60)::bigint" in s.sql and "string_agg" not in s.sql
    assert "md5(string_agg(h, '' ORDER BY rn))" in o.sql
    assert s.key == ("id", "ivc_datetime") and s.params == {}
    # only the chosen (immutable) columns; a key without MIN/MAX is shown as text; no key: rank by row hash
    part = fingerprint_statement("postgresql", "ebill", shape, columns=["id", "ivc_datetime", "total_amt"])
    assert part.columns == ("id", "ivc_datetime", "total_amt") and "payer" not in part.sql
    assert 't."uid"::text AS k' in fingerprint_statement("postgresql", "ebill", SHAPES["postgresql"]["t_uuid_keyed"]).sql
    nopk = fingerprint_statement("postgresql", "ebill", SHAPES["postgresql"]["t_log_nopk"])
    assert nopk.key == () and "ORDER BY md5(ROW(" in nopk.sql


def test_unsupported_combinations_are_refused():
    with pytest.raises(ValueError, match="not available for oracle"):
        fingerprint_statement("oracle", "EBILL", SHAPES["oracle"]["T_EBILL_MAIN"], method="ordered")
    with pytest.raises(ValueError, match="AS OF SCN"):
        row_counts_statement("postgresql", "ebill", ["t_ebill_main"], AsOf(scn=1))
    with pytest.raises(ValueError, match="chunk_rows"):
        fingerprint_statement("postgresql", "ebill", SHAPES["postgresql"]["t_ebill_main"], chunk_rows=0)
    with pytest.raises(KeyError):
        fingerprint_statement("postgresql", "ebill", SHAPES["postgresql"]["t_ebill_main"], columns=["nope"])
    with pytest.raises(ValueError, match="not supported"):
        inventory_statement("mysql", "ebill")


# ---------------------------------------------------------------- identifiers
BAD_NAMES = ["t; DROP TABLE x", 'a"b', "a'b", "a.b", "x y", "", "1abc", "票据", "a--b", "a/*b*/", None]


@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_identifiers_never_reach_sql(dialect, name):
    with pytest.raises(ValueError, match="identifier"):
        check_name(dialect, name)
    with pytest.raises(ValueError, match="identifier"):
        inventory_statement(dialect, name)
    with pytest.raises(ValueError, match="identifier"):
        row_counts_statement(dialect, SCHEMA[dialect], [name])
    good = next(iter(SHAPES[dialect].values()))
    with pytest.raises(ValueError, match="identifier"):
        fingerprint_statement(dialect, SCHEMA[dialect], good,
                              as_of=AsOf(before=BACKUP_TIME, cutoff_columns={good.name: name}))
    bad_col = TableShape(name="t_x", columns=(Column(name=name, data_type="VARCHAR2", max_bytes=10),), pk=())
    with pytest.raises(ValueError, match="identifier"):
        fingerprint_statement(dialect, SCHEMA[dialect], bad_col)


def test_identifier_rules_per_dialect():
    assert check_name("oracle", "T_EBILL$MAIN#2") == "T_EBILL$MAIN#2"
    assert check_name("postgresql", "_t_ebill_main") == "_t_ebill_main"
    with pytest.raises(ValueError):
        check_name("oracle", "_LEADING_UNDERSCORE")
    with pytest.raises(ValueError):
        check_name("postgresql", "x" * 64)  # NAMEDATALEN - 1
    assert pg_use_snapshot_sql("00000003-0000001B-1") == "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'"
    with pytest.raises(ValueError):
        pg_use_snapshot_sql("1'; DROP TABLE t; --")


# ---------------------------------------------------------------- row mapping
def test_catalog_rows_become_shapes_with_the_key_in_key_order():
    detail = SHAPES["oracle"]["T_EBILL_DETAIL"]
    assert detail.pk == ("MAIN_ID", "SORT_NO", "IVC_DATETIME")
    assert [c.name for c in detail.columns] == ["MAIN_ID", "IVC_DATETIME", "SORT_NO", "ITEM_NAME", "AMT"]
    assert SHAPES["oracle"]["T_LOG_NOPK"].pk == ()
    assert SHAPES["postgresql"]["t_ebill_main"].column("payer").max_bytes is None


def test_inventory_and_count_rows():
    inv = inventory_from_rows([{"kind": "table", "name": "T_A", "table_name": "T_A"},
                               {"kind": "sequence", "name": "SEQ_A", "table_name": None},
                               {"kind": "constraint", "name": "T_A:C(ID)", "table_name": "T_A"}])
    assert DbObject("sequence", "SEQ_A") in inv and len(inv) == 3
    assert row_counts_from_rows([{"table_name": "T_A", "row_count": 12}]) == {"T_A": 12}


def test_oracle_chunk_rows_become_a_fingerprint_with_hex_hashes():
    q = fingerprint_statement("oracle", "EBILL", SHAPES["oracle"]["T_EBILL_DETAIL"], chunk_rows=2)
    # recorded shape: TO_CHAR(SUM(...)) is a decimal string, TO_CHAR(MIN(k), 'TM9') a string
    rows = [{"chunk_no": 1, "row_count": 1, "chunk_hash": "1152921504606846975", "first_key": "3", "last_key": "3"},
            {"chunk_no": 0, "row_count": 2, "chunk_hash": "2305843009213693950", "first_key": "1", "last_key": "2"}]
    f = fingerprint_from_rows(q, rows)
    assert [c.chunk_no for c in f.chunks] == [0, 1] and f.rows == 3
    assert f.chunks[1].hash == "000000000fffffffffffffff" and len(f.chunks[0].hash) == 24
    changed = fingerprint_from_rows(q, [dict(rows[0]), dict(rows[1], chunk_hash="2305843009213693951")])
    assert changed.total != f.total and fingerprint_from_rows(q, rows).total == f.total


# ---------------------------------------------------------------- comparisons
def _fp(table="t_ebill_main", hashes=("a" * 32, "b" * 32, "c" * 32), rows=None, chunk_rows=100, key=("id",)):
    rows = rows or [chunk_rows] * len(hashes)
    chunks = tuple(ChunkHash(i, r, h, str(i * chunk_rows + 1), str(i * chunk_rows + r))
                   for i, (h, r) in enumerate(zip(hashes, rows)))
    return TableFingerprint(table=table, method="sum", chunk_rows=chunk_rows, columns=("id", "payer"), key=key,
                            chunks=chunks)


INV = frozenset({DbObject("table", "t_ebill_main", "t_ebill_main"), DbObject("table", "t_bill_stock", "t_bill_stock"),
                 DbObject("index", "idx_ebill_main_bus_no", "t_ebill_main"),
                 DbObject("constraint", "t_ebill_main_pkey", "t_ebill_main"), DbObject("sequence", "seq_bill", None)})


def test_inventories_equal_missing_and_extra():
    [ok] = compare_inventories("demo", INV, set(INV), schema="ebill")
    assert ok.status is Status.OK and ok.title == "对象清单一致" and "共 5 项" in ok.reason
    restored = (INV - {DbObject("table", "t_bill_stock", "t_bill_stock")}) | {DbObject("index", "idx_tmp", "t_ebill_main")}
    [bad] = compare_inventories("demo", INV, restored, schema="ebill")
    assert (bad.status, bad.code, bad.value) == (Status.FAIL, Code.OBJECTS_DIFFER, 2)
    assert "恢复库缺少 1 项：表 t_bill_stock" in bad.reason and "恢复库多出 1 项：索引 idx_tmp（t_ebill_main）" in bad.reason
    [empty] = compare_inventories("demo", [], INV)
    assert (empty.status, empty.code) == (Status.ERROR, Code.SOURCE_INVENTORY_EMPTY)


def test_row_counts_equal_missing_and_different():
    as_of = AsOf(before=BACKUP_TIME, cutoff_columns={"t_ebill_main": "ivc_datetime"})
    recs = compare_row_counts("demo", {"t_ebill_main": 4800, "t_bill_stock": 12, "t_his_settle": 5000},
                              {"t_ebill_main": 4800, "t_bill_stock": 11}, as_of=as_of)
    by = {r.target: r for r in recs}
    assert {r.title for r in recs} == {"各表行数一致"}
    assert by["t_ebill_main"].status is Status.OK and "ivc_datetime 早于 2026-03-31 23:00:00" in by["t_ebill_main"].reason
    assert (by["t_bill_stock"].status, by["t_bill_stock"].code) == (Status.FAIL, Code.ROW_COUNT_MISMATCH)
    assert json.loads(by["t_bill_stock"].raw)["restored"] == 11
    assert "全表比较" in by["t_bill_stock"].reason
    assert (by["t_his_settle"].status, by["t_his_settle"].code) == (Status.FAIL, Code.TABLE_MISSING)
    assert json.loads(by["t_his_settle"].raw)["restored"] is None


def test_fingerprints_equal_differing_chunk_missing_and_incomparable():
    same = compare_fingerprints("demo", {"t_ebill_main": _fp()}, {"t_ebill_main": _fp()})
    assert [r.status for r in same] == [Status.OK] and same[0].title == "内容指纹一致"

    differ = _fp(hashes=("a" * 32, "d" * 32, "c" * 32))
    assert differing_chunks(_fp(), differ) == [1]
    [bad] = compare_fingerprints("demo", {"t_ebill_main": _fp()}, {"t_ebill_main": differ})
    assert (bad.status, bad.code, bad.value) == (Status.FAIL, Code.CHECKSUM_MISMATCH, 1)
    assert "表 t_ebill_main：3 块中 1 块不一致：第 1 块（按主键排序第 101–200 行，实有 id 101…200）" in bad.reason
    assert "b" * 32 in bad.raw and "d" * 32 in bad.raw  # the hashes survive masking

    recs = compare_fingerprints("demo", {"t_ebill_main": _fp(), "t_bill_stock": _fp("t_bill_stock")},
                                {"t_ebill_main": _fp(), "t_extra": _fp("t_extra")})
    by = {r.target: r for r in recs}
    assert by["t_ebill_main"].status is Status.OK
    assert (by["t_bill_stock"].status, by["t_bill_stock"].code) == (Status.FAIL, Code.TABLE_MISSING)
    assert (by["t_extra"].status, by["t_extra"].code) == (Status.FAIL, Code.TABLE_MISSING)
    # which side lacks it (the raw names the side)
    assert json.loads(by["t_bill_stock"].raw)["missing_in"] != json.loads(by["t_extra"].raw)["missing_in"]
    assert "恢复库中没有内容指纹" in by["t_bill_stock"].reason and "源库中没有内容指纹" in by["t_extra"].reason

    other = compare_fingerprints("demo", {"t": _fp("t")}, {"t": _fp("t", chunk_rows=50)})
    assert (other[0].status, other[0].code) == (Status.ERROR, Code.FINGERPRINTS_INCOMPARABLE)


def test_a_missing_row_names_the_first_shifted_chunk():
    short = _fp(hashes=("a" * 32, "e" * 32, "f" * 32), rows=(100, 100, 99))
    [bad] = compare_fingerprints("demo", {"t_ebill_main": _fp()}, {"t_ebill_main": short})
    assert bad.status is Status.FAIL and bad.value == 2 and "第 1 块" in bad.reason and "错位" in bad.reason


def test_a_numeric_looking_hash_is_not_masked_as_an_id_number():
    digits = "123456789012345678901234"  # a 24-hex-digit sum that happens to be all digits
    [r] = compare_fingerprints("demo", {"t": _fp("t", hashes=(digits,))}, {"t": _fp("t", hashes=(digits,))})
    assert digits in r.raw
