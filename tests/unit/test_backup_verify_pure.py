"""Backup verification without servers: the archive listing, the sample and bill SQL of both
dialects (parsed by sqlglot), field-by-field comparison, the site section's validation, the backup
log's start times, and the strict verdict (a skipped step is not a pass)."""
from __future__ import annotations

from datetime import datetime

import pytest
import sqlglot
from pydantic import ValidationError

from config.backup_verification import BackupVerificationConfig
from tasks.backup.verify import measure
from tasks.backup.verify.pg_steps import summarize_toc
from tasks.backup.verify.reading import AsOf
from tasks.backup.verify.fingerprint_names import Column
from tasks.backup.verify.catalog import TableShape
from tasks.backup.folder import parse_backup_log

LISTING = """;
; Archive created at 2026-11-26 02:00:03 CST
;     dbname: ebill
;     TOC Entries: 120
;
3520; 1259 16390 TABLE ebill t_bill_place ebill_app
3521; 0 16390 TABLE DATA ebill t_bill_place ebill_app
3522; 0 16400 TABLE DATA ebill t_ebill_main_2026 ebill_app
3300; 2606 16410 CONSTRAINT ebill t_bill_place t_bill_place_pkey ebill_app
3301; 1259 16411 INDEX ebill idx_ebill_main_bus_no ebill_app
3302; 2606 16412 FK CONSTRAINT ebill t_ebill_detail fk_detail_main ebill_app
3303; 0 0 SEQUENCE SET ebill seq_x ebill_app
"""


def test_archive_listing_is_summarised_by_kind_and_tables_with_data():
    toc = summarize_toc(LISTING)
    assert toc.entries == 7
    assert toc.kinds == {"TABLE": 1, "TABLE DATA": 2, "CONSTRAINT": 1, "INDEX": 1, "FK CONSTRAINT": 1,
                         "SEQUENCE SET": 1}
    assert toc.tables_with_data == ("t_bill_place", "t_ebill_main_2026")
    assert summarize_toc("pg_restore: error: input file is too short").entries == 0


@pytest.mark.parametrize("dialect,read", [("postgresql", "postgres"), ("oracle", "oracle")])
def test_sample_and_bill_statements_parse_in_both_dialects(dialect, read):
    cut = AsOf(before=datetime(2026, 9, 30, 2, 0), cutoff_columns={"t_ebill_main": "ivc_datetime"})
    for as_of in (None, cut):
        st = measure.sample_keys_statement(dialect, "ebill", 20, as_of)
        sqlglot.parse_one(st.sql, read=read)
        assert st.params["n"] == 20 and ("as_of_time" in st.params) == (as_of is not None)
    st = measure.bill_statement(dialect, "ebill", 7, datetime(2026, 1, 2, 3, 4))
    sqlglot.parse_one(st.sql, read=read)
    assert set(st.params) == {"bill_id", "issued"}


def test_bill_comparison_names_fields_not_values():
    a = {"id": 1, "payer": "张三", "total_amt": 10, "notice_flag": "0"}
    assert measure.compare_bill(a, dict(a)) == []
    assert measure.compare_bill(a, dict(a, total_amt=11, notice_flag="1")) == ["notice_flag", "total_amt"]
    assert measure.compare_bill(a, dict(a, notice_flag="1"), ignore=["NOTICE_FLAG"]) == []
    assert measure.compare_bill(a, None) == ["整行缺失"]


def test_mutable_columns_are_left_out_of_the_hash_case_insensitively():
    shape = TableShape("t_bill_stock", (Column("id", "bigint", 8), Column("cur_no", "varchar", 10),
                                        Column("end_no", "varchar", 10)), ("id",))
    assert measure.hashed_columns(shape, ["CUR_NO"]) == ["id", "end_no"]
    assert measure.hashed_columns(shape, []) is None


def _cfg(**over) -> dict:
    base = {"host": "db1", "source": {"dsn": "host=h dbname=ebill", "user": "v", "password": {"env": "P"}},
            "schema": "ebill", "scratch": {"dsn": "host=h dbname=postgres", "user": "v", "password": {"env": "P"}},
            "tools_dir": "/usr/bin"}
    base.update(over)
    return base


def test_site_section_refuses_unsafe_or_incomplete_settings():
    assert BackupVerificationConfig(**_cfg()).scratch.prefix == "ebops_verify_"
    with pytest.raises(ValidationError, match="password"):
        BackupVerificationConfig(**_cfg(source={"dsn": "host=h password=x", "user": "v", "password": {"env": "P"}}))
    with pytest.raises(ValidationError, match="not a plain identifier"):
        BackupVerificationConfig(**_cfg(cutoff_columns={"t_ebill_main": "ivc_datetime; DROP TABLE x"}))
    with pytest.raises(ValidationError, match="oracle_sid"):
        BackupVerificationConfig(**_cfg(dialect="oracle"))
    with pytest.raises(ValidationError, match="prefix"):
        BackupVerificationConfig(**_cfg(scratch={"dsn": "dbname=postgres", "user": "v", "password": {"env": "P"},
                                                 "prefix": "x"}))


def test_backup_log_runs_carry_their_start_time():
    log = ("2026-11-25T02:00:01+08:00 START job=ebill_full\n"
           "2026-11-25T02:03:12+08:00 END job=ebill_full status=SUCCESS file=ebill_20261125_0200.dump bytes=42\n"
           "2026-11-26T02:03:12+08:00 END job=ebill_full status=SUCCESS file=orphan.dump bytes=1\n")
    first, orphan = parse_backup_log(log)
    assert first.started_at == datetime.fromisoformat("2026-11-25T02:00:01+08:00")
    assert orphan.started_at is None  # an END without its START: the time is not guessed


@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
def test_measuring_fixes_the_session_settings_row_text_depends_on_first(dialect):
    # A recording fetch, not a database: this asserts only the order of statements measure() sends.
    sent: list[str] = []

    def fetch(st):
        sent.append(st.sql)
        return []

    with pytest.raises(ValueError, match="no table"):  # an empty schema stops it after the catalogue read
        measure.measure(fetch, dialect, "EBILL" if dialect == "oracle" else "ebill", as_of=None, chunk_rows=100)
    from tasks.backup.verify.reading import PG_SESSION_SQL
    assert (sent[0] == PG_SESSION_SQL) == (dialect == "postgresql")
    assert PG_SESSION_SQL not in sent[1:]
