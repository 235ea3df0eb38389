"""年度票据归档清单 (tasks/yearend/closing.py) against a real PostgreSQL database.

A database of its own on the sandbox's server (sandbox.quality_db: the demo's build, a December
of 2024), so the planted gaps disturb nobody: one number deleted and recorded as voided (a gap a
void record explains), one deleted without a record (a gap to report).
"""
from __future__ import annotations

import csv
import os
from datetime import date, datetime
from decimal import Decimal

import psycopg
import pytest

from config.settings import load_site
from sandbox import manager, postgres, quality_db
from tasks.connect.database import connect
from tasks.core.results import Status
from tasks.yearend.closing import closing_list, render_section, write_csv

DB = f"ebops_closing_{os.getpid()}"
YEAR = 2024


@pytest.fixture(scope="module")
def closing_db(sandbox):
    creds = manager.credentials()
    state = sandbox["state"]["postgres"]
    quality_db.build(state, creds, DB, seed=15, days=31, bills_per_day=12, end_date=date(YEAR, 12, 31),
                     now=datetime(YEAR + 1, 1, 2, 8, 0))
    try:
        yield postgres.admin_conninfo(state, creds, DB)
    finally:
        quality_db.drop(state, creds, DB)


def _site(sites_dir):
    site = load_site("demo")
    db = site.database.model_copy(update={"dsn": site.database.dsn.replace("dbname=ebill", f"dbname={DB}")})
    return site.model_copy(update={"database": db})


def test_clean_year_has_continuous_numbers_and_matching_totals(closing_db, sites_dir):
    cl = closing_list(_site(sites_dir), YEAR)
    assert cl.segments and cl.unexplained == [] and cl.explained == []
    assert cl.results()[0].status is Status.OK
    with psycopg.connect(closing_db) as conn:
        blue, red, blue_amt, red_amt = conn.execute(
            "SELECT count(*) FILTER (WHERE bill_kind = 'B'), count(*) FILTER (WHERE bill_kind = 'R'), "
            "coalesce(sum(total_amt) FILTER (WHERE bill_kind = 'B'), 0), coalesce(sum(total_amt) FILTER (WHERE bill_kind = 'R'), 0) "
            "FROM ebill_canon.ebill_invoice WHERE substr(bill_code, 7, 2) = '24'").fetchone()
    t = cl.totals()
    assert (t["issued"], t["red"], t["blue_amt"], t["red_amt"]) == (blue, red, blue_amt, red_amt)
    assert blue > 100 and red > 0 and t["net_amt"] == blue_amt + red_amt
    assert {s.bill_code[-2:] for s in cl.segments} == {"24"}


def test_planted_gaps_one_explained_by_a_void_one_reported(closing_db, sites_dir, tmp_path):
    with psycopg.connect(closing_db) as conn:
        # a segment with enough used numbers, and two ISSUED blue bills in its middle no red bill reverses
        code, place, start, cur = conn.execute(
            "SELECT bill_code, place_code, start_no::bigint, current_no::bigint FROM ebill_canon.ebill_stock "
            "WHERE substr(bill_code, 7, 2) = '24' AND current_no::bigint - start_no::bigint > 40 "
            "ORDER BY stock_id LIMIT 1").fetchone()
        rows = conn.execute(
            "SELECT bill_no FROM ebill_canon.ebill_invoice i WHERE bill_code = %s AND bill_kind = 'B' "
            "AND status = 'ISSUED' AND bill_no::bigint BETWEEN %s AND %s ORDER BY bill_no",
            (code, start + 10, cur - 10)).fetchall()
        voided, missing = rows[0][0], rows[len(rows) // 2][0]
        assert voided != missing
        conn.execute("DELETE FROM ebill.t_ebill_main WHERE bill_batch_code = %s AND bill_number IN (%s, %s)",
                     (code, voided, missing))
        conn.execute("INSERT INTO ebill.t_bill_void VALUES (1, %s, %s, %s, %s, '打印失败，号码作废')",
                     (code, voided, place, datetime(YEAR, 12, 20, 10, 0)))
    cl = closing_list(_site(sites_dir), YEAR)
    assert [(g.bill_code, g.first_no, g.last_no, g.count) for g in cl.unexplained] == [(code, missing, missing, 1)]
    assert [(g.bill_code, g.first_no, g.count, g.reason) for g in cl.explained] == [(code, voided, 1, "打印失败，号码作废")]
    seg = next(s for s in cl.segments if s.bill_code == code and int(s.start_no) == start)
    assert (seg.voided, seg.gap_numbers_explained, seg.gap_numbers_unexplained) == (1, 1, 1)
    verdict = cl.results()[0]
    assert verdict.status is Status.FAIL and verdict.code == "number_gap" and missing in verdict.reason

    path = write_csv(cl, tmp_path / "closing.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    assert len(table) == len(cl.segments)
    row = next(r for r in table if r["票据代码"] == code and r["号段起号"] == seg.start_no)
    assert row["未说明缺号区间"] == f"{missing}-{missing}" and row["作废号码"] == "1"
    assert all("保管期限 30 年" in r["保管期限"] for r in table)
    assert Decimal(row["净额"]) == seg.blue_amt + seg.red_amt

    text = render_section(cl)
    assert "2024年度票据归档清单" in text and "保管期限 30 年" in text and "2054-12-31" in text
    assert "未说明的缺号" in text and missing in text and "打印失败，号码作废" in text


def test_the_closing_list_reads_through_the_read_only_account(closing_db, sites_dir):
    site = _site(sites_dir)
    with connect(site.database) as db:
        assert db.query("SHOW default_transaction_read_only")[0]["default_transaction_read_only"] == "on"
        assert closing_list(site, YEAR, db).year == YEAR


def test_sandbox_layout_files_name_the_databases_bills(closing_db, sandbox, tmp_path):
    """files1's layout files are the first bills of each month the database holds; other months
    (2022 onwards) come from a deterministic list with the hospital's bill codes."""
    layout = tmp_path / "layout"
    written = manager.write_layout_files(sandbox["state"]["postgres"], manager.credentials(), layout, dbname=DB)
    assert written == len(list(layout.rglob("*.*"))) and written > 100
    with psycopg.connect(closing_db) as conn:
        first = [c + n for c, n in conn.execute(
            "SELECT bill_code, bill_no FROM ebill_canon.ebill_invoice WHERE bill_kind = 'B' "
            "AND issue_time >= '2024-12-01' AND issue_time < '2025-01-01' ORDER BY bill_id LIMIT 3")]
    assert sorted(p.stem for p in (layout / "2024" / "12").iterdir()) == sorted(first)
    older = sorted(p.name for p in (layout / "2022" / "01").iterdir())
    assert len(older) == 3 and all(n.startswith("44010122") for n in older)
    assert manager.write_layout_files(sandbox["state"]["postgres"], manager.credentials(), layout, dbname=DB) == 0
