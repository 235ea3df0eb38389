"""逐行比对 (tasks/migration/rowcheck.py) on the sandbox's real PostgreSQL: two scratch databases of
this test's own, both restored from one pg_dump of the sandbox's vendor schema (the sandbox is only
read: its production traffic keeps writing, so the two copies come from one dump, not from the live
database). An identical copy is OK with every row counted; a target with one missing, one extra and
one changed row is reported with exactly those three keys. Both scratch databases are dropped.
"""
from __future__ import annotations

import os
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from sandbox.scratch_db import pg_side, vendor_copies
from tasks.migration.rowcheck import compare_schema

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def copies(sandbox, tmp_path_factory):
    from sandbox import manager

    state = sandbox["state"]["postgres"]
    names = {w: f"ebops_rowcheck_{w}_{os.getpid()}" for w in ("src", "tgt")}
    with vendor_copies(state, manager.credentials(), names, tmp_path_factory.mktemp("rowcheck")) as dsns:
        yield dsns | {"schema": state.get("vendor_schema", "ebill")}


side = pg_side


def check(copies, batch=700):
    with psycopg.connect(copies["src"]) as a, psycopg.connect(copies["tgt"]) as b:
        out = compare_schema(side(a, copies["schema"]), side(b, copies["schema"]), batch=batch)
        a.rollback()
        b.rollback()
    return {t.table: t for t in out}


def test_an_identical_copy_is_ok_with_every_row_counted(copies):
    tables = check(copies)
    with psycopg.connect(copies["src"]) as conn:
        for name, t in tables.items():
            assert not t.error and not t.not_compared and t.differences == 0, (name, t)
            n = conn.execute(sql.SQL("SELECT COUNT(*) FROM {}.{}").format(
                sql.Identifier(copies["schema"]), sql.Identifier(name))).fetchone()[0]
            assert t.source_rows == t.target_rows == n
    assert {"t_ebill_main", "t_ebill_detail", "t_his_settle"} <= set(tables)
    assert tables["t_ebill_detail"].source_rows > 700            # several batches of the server-side cursor


def test_one_missing_one_extra_one_changed_are_exactly_the_keys_reported(copies):
    s = sql.Identifier(copies["schema"])
    with psycopg.connect(copies["tgt"], autocommit=True) as conn:
        ids = [r[0] for r in conn.execute(sql.SQL("SELECT settle_id FROM {}.t_his_settle ORDER BY settle_id LIMIT 2")
                                          .format(s))]
        gone, changed = ids
        conn.execute(sql.SQL("DELETE FROM {}.t_his_settle WHERE settle_id = %s").format(s), [gone])
        conn.execute(sql.SQL("UPDATE {}.t_his_settle SET settle_amt = settle_amt + %s WHERE settle_id = %s").format(s),
                     [Decimal("0.01"), changed])
        extra = conn.execute(sql.SQL(
            "INSERT INTO {0}.t_his_settle SELECT settle_id + 1000000000, his_serial_no, visit_type, pat_id, "
            "settle_datetime, place_code, settle_amt, is_refund, ori_his_serial_no FROM {0}.t_his_settle "
            "WHERE settle_id = %s RETURNING settle_id").format(s), [changed]).fetchone()[0]
    tables = check(copies)
    t = tables["t_his_settle"]
    assert t.keys == {"missing": [str(gone)], "extra": [str(extra)], "differing": [str(changed)]}
    assert (t.missing, t.extra, t.differing) == (1, 1, 1) and t.target_rows == t.source_rows
    assert all(x.differences == 0 and not x.error for n, x in tables.items() if n != "t_his_settle")
