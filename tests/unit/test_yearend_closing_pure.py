"""The closing list's statements (both dialects) and its assembly from rows, without a database."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlglot

from config.settings import Site
from tasks.yearend.closing import _split, assemble
from tasks.yearend.closing_sql import statements


def site() -> Site:
    return Site.model_validate({
        "site": "t", "name": "测试医院",
        "database": {"dialect": "oracle", "dsn": "h:1521/s", "user": "ro", "password": {"env": "NONE"}},
        "evidence": {"endpoint": "127.0.0.1:1", "bucket": "none", "access_key": {"env": "NONE"},
                     "secret_key": {"env": "NONE"}},
    })


@pytest.mark.parametrize("dialect,read", [("oracle", "oracle"), ("postgresql", "postgres")])
def test_every_statement_parses_in_its_dialect(dialect, read):
    sql = statements(dialect)
    assert set(sql) == {"segments", "totals", "gaps", "voids", "outside"}
    for name, text in sql.items():
        sqlglot.parse_one(text, read=read)  # raises on a syntax error; :name binds parse as placeholders
    assert ("TO_NUMBER" in sql["gaps"]) == (dialect == "oracle")
    assert "payer" not in " ".join(sql.values()) and "id_card" not in " ".join(sql.values())


def test_split_walks_only_the_void_numbers():
    assert list(_split(10, 20, {})) == [(10, 20, False)]
    assert list(_split(10, 20, {12: "a", 13: "a", 20: "b"})) == [(10, 11, False), (12, 13, True), (14, 19, False),
                                                                  (20, 20, True)]
    assert list(_split(1, 1_000_000_000, {5: "x"})) == [(1, 4, False), (5, 5, True), (6, 1_000_000_000, False)]


def _seg(sid, start, end, cur, status="USED_UP", code="44010124"):
    return {"stock_id": sid, "place_code": "MZ01", "bill_code": code, "start_no": f"{start:010d}",
            "end_no": f"{end:010d}", "current_no": f"{cur:010d}", "status": status}


def _tot(sid, first, last, blue=5, red=1):
    return {"stock_id": sid, "blue": blue, "red": red, "flushed": red, "blue_amt": Decimal("100.00"),
            "red_amt": Decimal("-20.00"), "first_no": f"{first:010d}", "last_no": f"{last:010d}", "numbers_used": blue + red}


def test_leading_inner_and_trailing_gaps_explained_or_reported():
    segs = [_seg(1, 1, 100, 31), _seg(2, 101, 200, 101, "VOID"), _seg(3, 201, 300, 211, "VOID")]
    totals = {1: _tot(1, 3, 28)}
    gaps = [{"stock_id": 1, "prev_no": 10, "next_no": 14}]         # 11, 12, 13 missing
    voids = [{"bill_code": "44010124", "bill_no": "0000000012", "place_code": "MZ01", "void_time": None,
              "reason": "卡纸"},
             {"bill_code": "44010124", "bill_no": "0000000001", "place_code": "MZ01", "void_time": None, "reason": ""},
             {"bill_code": "44010124", "bill_no": "0000000005", "place_code": "MZ01", "void_time": None,
              "reason": "重复"}]
    cl = assemble(site(), 2024, segs, totals, gaps, voids, [])
    s1, s2, s3 = cl.segments
    assert [(g.first_no[-2:], g.last_no[-2:]) for g in s1.unexplained] == [("02", "02"), ("11", "11"), ("13", "13"),
                                                                           ("29", "30")]
    assert (s1.voided, s1.gap_numbers_explained, s1.gap_numbers_unexplained) == (3, 2, 5)
    assert cl.void_conflicts == ["44010124 0000000005"]  # a void record for a number that carries a bill
    assert s1.net_amt == Decimal("80.00")
    # a VOID segment never used: nothing missing, its numbers written off
    assert (s2.written_off, s2.unexplained) == (100, [])
    # a VOID segment used up to 210 with no bill at all: the used range is one gap
    assert [(g.first_no, g.last_no, g.count) for g in s3.unexplained] == [("0000000201", "0000000210", 10)]
    assert s3.written_off == 90
    assert cl.results()[0].status.value == "FAIL" and cl.results()[0].value == 15
    assert cl.retention_until.isoformat() == "2054-12-31" and "30 年" in cl.retention_label


def test_no_segments_is_skipped_not_ok():
    cl = assemble(site(), 2031, [], {}, [], [], [])
    assert cl.results()[0].status.value == "SKIPPED" and cl.results()[0].code == "no_data"
