"""Rules sharing one scan (tasks/quality/shared_scan.py), and the DBA's quality indexes: the shared
query holds each rule's WHERE verbatim and parses in both dialects; a rule in another form keeps its
own query; each Oracle function-based index is on exactly an expression of the canonical views."""
from __future__ import annotations

import re
from datetime import date, datetime

import pytest
import sqlglot
from sqlglot import exp

from config.settings import SQL_DIR
from tasks.quality import shared_scan
from tasks.quality.suites import load_suites, render, rule_checks
from tests.unit.test_sql_scripts import SAMPLE, sqlplus_statements

CHECKS = rule_checks(load_suites())
READ = {"postgresql": "postgres", "oracle": "oracle"}


@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
def test_header_and_item_rules_share_a_scan_that_parses(dialect):
    plan = shared_scan.plan(CHECKS, dialect)
    queries = {s.query for s in plan.values()}
    assert len(queries) == 2  # the header rules' scan and the item rules' scan
    assert {"DQ01", "DQ18", "DQ20", "DQ08", "DQ15_items"} <= set(plan)
    # pairings across bills or relations, and subqueries (DQ16: an anti-join alone), keep their own query
    assert not {"DQ04", "DQ06", "DQ16", "DQ11", "DQ12", "DQ19_bills", "DQ21", "DQ22"} & set(plan)
    by_check = {c.check: c for c in CHECKS}
    for check, scan in plan.items():
        own = " ".join(by_check[check].queries[dialect].split())
        where = own.split(" WHERE ", 1)[1]
        assert f"CASE WHEN {where} THEN 1 ELSE 0 END AS {scan.flag}" in scan.query, check
        sql = render(scan.query, dialect, "ebill_canon", date(2026, 11, 26), date(2026, 11, 27),
                     datetime(2026, 11, 27, 6)).format()
        tree = sqlglot.parse_one(sql, read=READ[dialect])
        names = [e.alias_or_name for e in tree.expressions]
        assert names[:2] == ["bill_code", "bill_no"] and all(n.startswith("ebops_f") for n in names[2:]), check


def test_a_rule_alone_in_its_form_keeps_its_own_query():
    alone = [c for c in CHECKS if c.check == "DQ01"]
    assert shared_scan.plan(alone, "postgresql") == {}


def _view_expressions() -> set[str]:
    out = set()
    for stmt in sqlplus_statements(SQL_DIR / "oracle" / "01_canonical_views.sql", SAMPLE):
        tree = sqlglot.parse_one(stmt, read="oracle")
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            for e in tree.expression.expressions:
                bare = e.this.transform(lambda n: exp.column(n.name) if isinstance(n, exp.Column) else n)
                out.add(bare.sql("oracle").upper())
    return out


def test_oracle_quality_indexes_are_on_the_views_expressions():
    views = _view_expressions()
    made = 0
    for stmt in sqlplus_statements(SQL_DIR / "oracle" / "04_quality_indexes.sql", SAMPLE):
        if not stmt.upper().startswith("CREATE INDEX"):
            continue
        tree = sqlglot.parse_one(stmt, read="oracle")
        assert isinstance(tree, exp.Create) and tree.kind == "INDEX", stmt
        assert tree.this.args["table"].db == "HIS_EBILL", stmt  # the site's vendor schema
        for col in tree.this.args["params"].args["columns"]:
            assert col.this.sql("oracle").upper() in views, (stmt, col.sql("oracle"))
        made += 1
    assert made == 8


def test_postgresql_quality_indexes_are_on_the_views_expressions():
    views = (SQL_DIR / "postgresql" / "01_canonical_views.sql").read_text(encoding="utf-8")
    script = (SQL_DIR / "postgresql" / "04_quality_indexes.sql").read_text(encoding="utf-8")
    casts = re.findall(r"\((\w+::\w+\(\d+\))\)", script)
    assert len(casts) == 5
    for cast in casts:  # the view writes <alias>.<column>::<type>
        assert re.search(r"\b\w\." + re.escape(cast) + r"\s", views), cast
