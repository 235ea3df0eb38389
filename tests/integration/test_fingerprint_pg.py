"""Fingerprints of the sandbox's vendor schema on a real PostgreSQL: the same database measured
twice is equal; one changed row (in a transaction that is rolled back) changes exactly its table's
fingerprint, in exactly its chunk; a cut-off before that row's issue time hides the change."""
from __future__ import annotations

import psycopg
import pytest

from tasks.backup.verify import fingerprint as fp
from tasks.backup.verify import reading as rd
from tasks.backup.verify import catalog as cat
from tasks.backup.verify.fingerprint_compare import (
    compare_fingerprints,
    compare_inventories,
    compare_row_counts,
)
from tasks.connect.database.params import to_pyformat
from tasks.core.reason_codes import Code
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox
CHUNK = 500


@pytest.fixture(scope="module")
def conn(sandbox):
    from sandbox import manager, postgres

    state = sandbox["state"]["postgres"]
    with psycopg.connect(postgres.admin_conninfo(state, manager.credentials())) as c:
        yield c, state.get("vendor_schema", "ebill")
        c.rollback()


def _rows(c, st: rd.Statement) -> list[dict]:
    cur = c.execute(to_pyformat(st.sql), st.params)
    names = [d.name.lower() for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def measure(c, schema: str, as_of: rd.AsOf | None = None) -> dict:
    """Inventory, counts and fingerprints, in the caller's transaction."""
    _rows(c, rd.Statement(rd.PG_SESSION_SQL))
    shapes = cat.shapes_from_rows(_rows(c, cat.columns_statement("postgresql", schema)))
    prints = {}
    for name, shape in shapes.items():
        q = fp.fingerprint_statement("postgresql", schema, shape, chunk_rows=CHUNK, as_of=as_of)
        prints[name] = fp.fingerprint_from_rows(q, _rows(c, q))
    return {"inventory": cat.inventory_from_rows(_rows(c, cat.inventory_statement("postgresql", schema))),
            "counts": cat.row_counts_from_rows(_rows(c, cat.row_counts_statement("postgresql", schema, shapes, as_of))),
            "prints": prints}


def compare(a: dict, b: dict, as_of=None) -> list:
    return (compare_inventories("demo", a["inventory"], b["inventory"])
            + compare_row_counts("demo", a["counts"], b["counts"], as_of=as_of)
            + compare_fingerprints("demo", a["prints"], b["prints"], as_of=as_of))


def test_the_same_database_fingerprints_equal_and_counts_agree(conn):
    c, schema = conn
    first = measure(c, schema)
    c.rollback()
    second = measure(c, schema)
    c.rollback()
    recs = compare(first, second)
    assert all(r.status is Status.OK for r in recs), [r.reason for r in recs if r.status is not Status.OK]
    # partitioned bill tables are read through their parents; partitions still count in the inventory
    assert {"t_ebill_main", "t_ebill_detail", "t_bill_stock"} <= set(first["prints"])
    assert not any(n.startswith("t_ebill_main_") for n in first["prints"])
    assert any(o.kind == "table" and o.name.startswith("t_ebill_main_") for o in first["inventory"])
    assert {o.kind for o in first["inventory"]} >= {"table", "index", "constraint"}
    for name, f in first["prints"].items():
        assert f.rows == first["counts"][name]
    assert len(first["prints"]["t_ebill_main"].chunks) > 3


def test_one_changed_row_shows_in_exactly_its_table_and_chunk(conn):
    c, schema = conn
    before = measure(c, schema)
    c.rollback()
    offset = CHUNK * 2 + 17  # the 1018th bill in key order: chunk 2
    bill_id, issued = c.execute(f'SELECT id, ivc_datetime FROM "{schema}".t_ebill_main ORDER BY id, ivc_datetime '
                                f"OFFSET {offset} LIMIT 1").fetchone()
    try:
        c.execute(f"UPDATE \"{schema}\".t_ebill_main SET notice_flag = CASE WHEN notice_flag = '9' THEN '0' ELSE '9' END "
                  "WHERE id = %s AND ivc_datetime = %s", (bill_id, issued))
        after = measure(c, schema)
        # a backup someone else took at `issued`: rows issued from then on are not compared
        cut = rd.AsOf(before=issued, cutoff_columns={"t_ebill_main": "ivc_datetime"})
        cut_after = measure(c, schema, cut)
    finally:
        c.rollback()
    recs = compare(before, after)
    bad = [r for r in recs if r.status is not Status.OK]
    assert len(bad) == 1, [r.reason for r in bad]
    assert bad[0].check == "restore_fingerprint" and bad[0].target == "t_ebill_main" and bad[0].value == 1
    assert bad[0].code == Code.CHECKSUM_MISMATCH and "第 2 块" in bad[0].reason  # the chunk named
    cut_before = measure(c, schema, cut)
    c.rollback()
    assert all(r.status is Status.OK for r in compare(cut_before, cut_after, cut))
    assert cut_before["counts"]["t_ebill_main"] < before["counts"]["t_ebill_main"]
    # and the rollback restored the original content
    again = measure(c, schema)
    c.rollback()
    assert all(r.status is Status.OK for r in compare(before, again))
