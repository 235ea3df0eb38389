"""The row check's canonical text form (tasks/migration/canonical.py) per column type, with values as
each driver returns them, and the merge by primary key (tasks/migration/rowcheck.py) over in-memory
sides.

The Oracle values here are stand-ins: no Oracle server runs on our machines, so they are built as
python-oracledb returns them through the row check's output type handler (oracle.exact_values: every
NUMBER as Decimal, CLOB as str, BLOB as bytes, DATE as a datetime, '' already NULL). No live Oracle
test of the row check exists yet: like tests/integration/test_verify_contract.py's Oracle cases, it
could only run with ORACLE_DSN set, against a server we do not have.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import oracledb
import pytest
import sqlglot

from tasks.backup.verify.catalog import TableShape
from tasks.backup.verify.fingerprint_names import Column
from tasks.connect.database.oracle import exact_values
from tasks.migration.canonical import blank_padded, canonical, key_label, row_digest, row_text
from tasks.migration.rowcheck import RowOrderError, Side, compare_schema, compare_table, rows_statement

SH = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("pg, ora, text", [
    (Decimal("12.50"), Decimal("12.5"), "12.5"),           # numeric(14,2) / NUMBER(14,2)
    (Decimal("100.00"), Decimal("1E+2"), "100"),           # no exponent, no trailing zeros
    (Decimal("-0.00"), Decimal("0"), "0"),
    (20260001, Decimal("20260001"), "20260001"),           # bigint / NUMBER(19) as Decimal
    (True, Decimal("1"), "1"),                              # boolean / NUMBER(1)
    (False, Decimal("0"), "0"),
    (0.1, 0.1, "0.1"),                                      # double precision / BINARY_DOUBLE
    (date(2026, 12, 2), datetime(2026, 12, 2), "2026-12-02T00:00:00.000000"),   # date / DATE at midnight
    (datetime(2026, 12, 2, 9, 30, 1, 250000), datetime(2026, 12, 2, 9, 30, 1, 250000), "2026-12-02T09:30:01.250000"),
    (datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc), datetime(2026, 12, 2, 9, 30, tzinfo=SH),
     "2026-12-02T01:30:00.000000Z"),                        # timestamptz (session UTC) / WITH TIME ZONE (+08:00)
    ("", None, None),                                       # Oracle stores '' as NULL
    ("e\u0301", "\u00e9", "\u00e9"),                        # NFC: decomposed and composed é are one text
    (b"\x00\xff", b"\x00\xff", "00ff"),                     # bytea / RAW, BLOB
    (b"", None, None),
    (timedelta(days=1, microseconds=5), timedelta(days=1, microseconds=5), "86400000005us"),
])
def test_one_value_has_one_text_whichever_driver_read_it(pg, ora, text):
    assert canonical(pg) == canonical(ora) == text


def test_blank_padded_columns_lose_their_padding_and_only_they():
    assert blank_padded("character(8)") and blank_padded("CHAR") and blank_padded("NCHAR")
    assert not blank_padded("character varying(50)") and not blank_padded("VARCHAR2")
    assert canonical("ABC     ", padded=True) == canonical("ABC", padded=True) == "ABC"
    assert canonical("ABC ", padded=False) == "ABC "       # in a varchar the space is data
    assert canonical("        ", padded=True) is None      # blank CHAR: the NULL marker, as Oracle's ''


def test_other_types_and_refusals():
    assert canonical(time(9, 30, 0, 1)) == "09:30:00.000001"
    assert canonical(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert canonical(Decimal("NaN")) == canonical(float("nan")) == "NaN"
    with pytest.raises(TypeError, match="LOB"):
        canonical(object())                                 # e.g. an unread LOB locator: never str()


def test_a_bill_row_digests_alike_from_postgresql_and_from_oracle():
    pad = [False, True, False, False, False, False]
    pg = (20260001, "0A01    ", Decimal("12.50"), datetime(2026, 12, 2, 9, 30), "", True)
    ora = (Decimal("20260001"), "0A01    ", Decimal("12.5"), datetime(2026, 12, 2, 9, 30), None, Decimal("1"))
    assert row_digest(pg, pad) == row_digest(ora, pad)
    changed = ora[:2] + (Decimal("12.51"),) + ora[3:]
    assert row_digest(pg, pad) != row_digest(changed, pad)


def test_the_row_text_is_unambiguous():
    assert row_text(("ab", "c"), [False, False]) != row_text(("a", "bc"), [False, False])
    assert row_text((None, "-"), [False, False]) == "-1:-"
    assert row_text(("1:a",), [False]) != row_text(("1", "a"), [False, False])


def test_the_oracle_handler_fetches_exact_values():
    made = []
    cur = SimpleNamespace(arraysize=500, var=lambda t, arraysize: made.append((t, arraysize)) or t)
    md = lambda t, scale=0: SimpleNamespace(type_code=t, scale=scale)   # noqa: E731
    assert exact_values(cur, md(oracledb.DB_TYPE_NUMBER)) is Decimal       # NUMBER(19) too, not only scaled
    assert exact_values(cur, md(oracledb.DB_TYPE_CLOB)) is oracledb.DB_TYPE_LONG
    assert exact_values(cur, md(oracledb.DB_TYPE_NCLOB)) is oracledb.DB_TYPE_LONG_NVARCHAR
    assert exact_values(cur, md(oracledb.DB_TYPE_BLOB)) is oracledb.DB_TYPE_LONG_RAW
    assert exact_values(cur, md(oracledb.DB_TYPE_VARCHAR)) is None
    assert all(a == 500 for _, a in made)


# ------------------------------------------------------------------ the merge, over in-memory sides

def _side(dialect: str, shape: TableShape, rows: list[tuple]) -> Side:
    cat_rows = [{"table_name": shape.name, "column_name": c.name, "column_id": i, "data_type": c.data_type,
                 "pk_position": (shape.pk.index(c.name) + 1) if c.name in shape.pk else None}
                for i, c in enumerate(shape.columns, 1)]
    return Side(dialect, "ebill" if dialect == "postgresql" else "EBILL", fetch=lambda st: cat_rows,
                stream=lambda st, batch: iter(rows))


PG_BILLS = TableShape("t_ebill_main", (Column("id", "bigint"), Column("bill_code", "character(8)"),
                                       Column("total_amt", "numeric(14,2)"), Column("memo", "character varying(50)")),
                      ("id",))
ORA_BILLS = TableShape("T_EBILL_MAIN", (Column("ID", "NUMBER"), Column("BILL_CODE", "CHAR"),
                                        Column("TOTAL_AMT", "NUMBER"), Column("MEMO", "VARCHAR2")), ("ID",))


def test_oracle_source_against_postgresql_target_names_exactly_the_three_keys():
    ora = [(Decimal(i), "0A01    ", Decimal("10.5"), None) for i in range(1, 8)]
    pg = [(i, "0A01    ", Decimal("10.50"), "") for i in range(1, 8) if i != 3]   # 3 missing
    pg[3] = (5, "0A01    ", Decimal("10.60"), "")                                  # 5 changed amount
    pg.append((9, "0A01    ", Decimal("1.00"), None))                              # 9 extra
    out = compare_schema(_side("oracle", ORA_BILLS, ora), _side("postgresql", PG_BILLS, pg))
    t, = out
    assert (t.missing, t.extra, t.differing) == (1, 1, 1)
    assert t.keys == {"missing": ["3"], "extra": ["9"], "differing": ["5"]}
    assert (t.source_rows, t.target_rows) == (7, 7)


def test_identical_tables_and_kept_keys_are_bounded_and_masked():
    rows = [(i, "0A01", Decimal("1"), None) for i in range(50)]
    same = compare_table(_side("postgresql", PG_BILLS, rows), _side("postgresql", PG_BILLS, rows), PG_BILLS, PG_BILLS)
    assert same.differences == 0 and same.source_rows == 50
    few = compare_table(_side("postgresql", PG_BILLS, rows), _side("postgresql", PG_BILLS, []), PG_BILLS, PG_BILLS,
                        keep=5)
    assert few.missing == 50 and len(few.keys["missing"]) == 5
    person = TableShape("t_payer", (Column("id_card_no", "character varying(18)"),), ("id_card_no",))
    out = compare_table(_side("postgresql", person, [("110101199003071234",)]), _side("postgresql", person, []),
                        person, person)
    assert "110101199003071234" not in out.keys["missing"][0]    # a key that looks like an ID number is masked


def test_a_side_out_of_key_order_is_an_error_not_a_wrong_result():
    rows = [(2, "A", Decimal(1), None), (1, "A", Decimal(1), None)]
    with pytest.raises(RowOrderError, match="NLS_SORT"):
        compare_table(_side("postgresql", PG_BILLS, rows), _side("postgresql", PG_BILLS, rows), PG_BILLS, PG_BILLS)
    out = compare_schema(_side("postgresql", PG_BILLS, rows), _side("postgresql", PG_BILLS, rows))
    assert "RowOrderError" in out[0].error


def test_tables_without_a_key_over_the_limit_or_on_one_side_are_said():
    nokey = TableShape("t_tmp", (Column("x", "integer"),), ())
    src = _side("postgresql", PG_BILLS, [])
    both = Side("postgresql", "ebill", lambda st: src.fetch(st) + [
        {"table_name": "t_tmp", "column_name": "x", "column_id": 1, "data_type": "integer", "pk_position": None}],
        src.stream)
    out = {t.table: t for t in compare_schema(both, src, max_rows=10, counts={"t_ebill_main": 11})}
    assert "verify_rows_max_table_rows=10" in out["t_ebill_main"].not_compared
    assert out["t_tmp"].error == "目标库没有此表"
    out = {t.table: t for t in compare_schema(both, both)}
    assert "无主键" in out["t_tmp"].not_compared and not out["t_ebill_main"].error
    empty = Side("oracle", "ebill", lambda st: [], src.stream)
    assert "没有表" in compare_schema(empty, src)[0].error    # a wrong schema name is not "all equal"
    seen = []
    spelled = Side("oracle", "ebill", lambda st: seen.append(st.params) or [], src.stream)
    compare_schema(spelled, src)
    assert seen == [{"schema": "EBILL"}]                        # Oracle's catalog spells it upper-case
    assert nokey.pk == ()


def test_key_labels_and_the_ordered_reads_parse_in_both_dialects():
    assert key_label((7, 1, datetime(2026, 1, 2, 3, 4, 5)), [False] * 3) == "7/1/2026-01-02T03:04:05.000000"
    pg = rows_statement("postgresql", "ebill", PG_BILLS, [c.name for c in PG_BILLS.columns])
    assert 'ORDER BY t."id"' in pg.sql and pg.params == {}
    sqlglot.parse_one(pg.sql, read="postgres")
    text_key = TableShape("t_bill_place", (Column("place_code", "character varying(50)"),), ("place_code",))
    assert 'ORDER BY t."place_code" COLLATE "C"' in rows_statement("postgresql", "ebill", text_key, ["place_code"]).sql
    ora = rows_statement("oracle", "EBILL", ORA_BILLS, [c.name for c in ORA_BILLS.columns])
    parsed = sqlglot.parse_one(ora.sql, read="oracle")
    assert parsed.find(sqlglot.exp.Order) is not None and "COLLATE" not in ora.sql


# ------------------------------------------------------------------ the records of the verify phase

def test_the_verify_phase_records_name_the_keys_and_the_figures():
    from tasks.core.reason_codes import Code
    from tasks.core.results import Status, utcnow
    from tasks.migration import rowcheck_phase
    from tasks.migration.journal import PhaseRun
    from tasks.migration.rowcheck import TableRows

    cfg = SimpleNamespace(verify_rows=True, verify_rows_batch=5000, schema_name="ebill",
                          target=SimpleNamespace(db_host="db2"))
    m = SimpleNamespace(cfg=cfg, files={})
    bad = TableRows("t_ebill_detail", source_rows=3, target_rows=2, missing=1, keys={"missing": ["7/1/2026-01-02T03:04:05.000000"],
                                                                                     "extra": [], "differing": []})
    good = TableRows("t_ebill_main", source_rows=2, target_rows=2)
    ph = PhaseRun("verify", "demo")
    rowcheck_phase.record(m, ph, [bad, good, TableRows("t_tmp", not_compared="无主键")], utcnow())
    first, summary = ph.results
    assert (first.status, first.code, first.target, first.value) == (Status.FAIL, Code.ROWS_DIFFER, "t_ebill_detail", 1)
    assert "目标库缺失 1 行（主键 7/1/2026-01-02T03:04:05.000000）" in first.reason
    assert summary.status is Status.FAIL and "2 张表共 5 行" in summary.reason and "t_tmp（无主键）" in summary.reason
    assert ph.facts["rows_compared"] == 5 and ph.facts["rows_differing"] == 1 and "rowcheck_rows_per_s" in ph.facts
    assert "migration_rowcheck.json" in m.files
    ph = PhaseRun("verify", "demo")
    rowcheck_phase.record(m, ph, [good], utcnow())
    assert [r.status for r in ph.results] == [Status.OK] and "逐行一致" in ph.results[0].reason
    # Across engines a table left out has its row count only: WARN, naming it (one engine: fingerprints cover it).
    ph = PhaseRun("verify", "demo")
    rowcheck_phase.record(m, ph, [good, TableRows("T_OP_LOG", source_rows=9, count_only=True, not_compared="9 行")],
                          utcnow())
    assert [(r.status, r.code) for r in ph.results] == [(Status.WARN, Code.ROWS_COUNT_ONLY)]
    assert "T_OP_LOG 只比较了行数" in ph.results[0].reason
    ph = PhaseRun("verify", "demo")
    rowcheck_phase.record(m, ph, [bad, TableRows("T_OP_LOG", count_only=True, not_compared="9 行")], utcnow())
    assert ph.results[-1].status is Status.FAIL and ph.results[-1].code == Code.ROWS_DIFFER
    cfg.verify_rows = False
    ph = PhaseRun("verify", "demo")
    rowcheck_phase.run(m, ph, {})
    assert ph.results[0].status is Status.OK and "verify_rows: false" in ph.results[0].reason


def test_the_site_settings_of_the_row_check():
    from config.migration import MigrationConfig

    fields = MigrationConfig.model_fields
    assert fields["verify_rows"].default is True and fields["verify_rows_keep_keys"].default == 100
    assert fields["verify_rows_max_table_rows"].default is None and fields["verify_rows_batch"].default == 5000
