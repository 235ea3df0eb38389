"""The custom GX expectation and metric of tasks/quality/gx_single_pass.py, run by GX itself over a
small SQLite database through SQLAlchemy. The metric calls private helpers of GX's QueryTable
(great-expectations is bounded to the tested minor version in pyproject.toml for that): if a GX
release changes them, these tests fail before a hospital's quality check does."""
from __future__ import annotations

import sqlite3
import warnings

import great_expectations as gx
import pytest
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.validator.metric_configuration import MetricConfiguration

from tasks.quality.gx_single_pass import ExpectEbillRuleHolds

BAD, GOOD = 250, 10   # more failing rows than GX's standard expectation returns (200)


@pytest.fixture(scope="module")
def batch_definition(tmp_path_factory):
    db = tmp_path_factory.mktemp("gx") / "bills.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE ebill_invoice (bill_id INTEGER PRIMARY KEY, bill_no TEXT, total_amt NUMERIC)")
        conn.executemany("INSERT INTO ebill_invoice VALUES (?, ?, ?)",
                         [(i, f"{i:010d}", -1 if i <= BAD else 5) for i in range(1, BAD + GOOD + 1)])
    ctx = gx.get_context(mode="ephemeral")
    ds = ctx.data_sources.add_sqlite(name="t", connection_string=f"sqlite:///{db}")
    asset = ds.add_table_asset(name="ebill_invoice", table_name="ebill_invoice")
    return ctx, asset.add_batch_definition_whole_table("whole")


def _validate(batch_definition, expectation):
    _, bd = batch_definition
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bd.get_batch().validate(expectation, result_format="COMPLETE")


def test_the_metric_returns_every_failing_row_in_one_query(batch_definition):
    ctx, bd = batch_definition
    validator = ctx.get_validator(batch_request=bd.build_batch_request())
    query = "SELECT bill_no FROM ebill_invoice WHERE total_amt < 0 ORDER BY bill_no"
    rows = validator.get_metric(MetricConfiguration("ebill_rule_rows.table",
                                                    metric_domain_kwargs={"batch_id": validator.active_batch_id},
                                                    metric_value_kwargs={"unexpected_rows_query": query}))
    assert rows == [{"bill_no": f"{i:010d}"} for i in range(1, BAD + 1)]


def test_a_broken_rule_gives_its_count_and_every_key(batch_definition):
    res = _validate(batch_definition, ExpectEbillRuleHolds(
        unexpected_rows_query="SELECT bill_no FROM ebill_invoice WHERE total_amt < 0;\n"))   # a trailing ; is cut
    assert res.success is False and res.result["observed_value"] == BAD
    keys = [r["bill_no"] for r in res.result["details"]["unexpected_rows"]]
    assert sorted(keys) == [f"{i:010d}" for i in range(1, BAD + 1)]
    # GX's own expectation, from the same query, counts them all but lists only the first 200
    plain = _validate(batch_definition, UnexpectedRowsExpectation(
        unexpected_rows_query="SELECT bill_no FROM ebill_invoice WHERE total_amt < 0"))
    assert plain.result["observed_value"] == BAD and len(plain.result["details"]["unexpected_rows"]) == 200


def test_a_rule_that_holds_succeeds_with_no_rows(batch_definition):
    res = _validate(batch_definition, ExpectEbillRuleHolds(
        unexpected_rows_query="SELECT bill_no FROM ebill_invoice WHERE total_amt > 1000"))
    assert res.success is True and res.result == {"observed_value": 0, "details": {"unexpected_rows": []}}


def test_an_unpaired_brace_is_refused_as_gx_does():
    with pytest.raises(Exception, match="expected '}'"):
        ExpectEbillRuleHolds(unexpected_rows_query="SELECT bill_no FROM ebill_invoice WHERE bill_no = '{'")


def test_rules_sharing_a_scan_run_it_once_and_each_keeps_its_own_keys(batch_definition, monkeypatch):
    from tasks.quality.gx_single_pass import EbillScanRows, ExpectEbillRuleHoldsInScan

    ctx, bd = batch_definition
    scan = ("SELECT bill_no, CASE WHEN total_amt < 0 THEN 1 ELSE 0 END AS ebops_f0, "
            "CASE WHEN bill_id % 2 = 0 AND total_amt < 0 THEN 1 ELSE 0 END AS ebops_f1, "
            "CASE WHEN total_amt > 1000 THEN 1 ELSE 0 END AS ebops_f2 "
            "FROM ebill_invoice WHERE total_amt < 0 OR total_amt > 1000 UNION ALL "
            "SELECT bill_no, 1, 0, 0 FROM ebill_invoice WHERE bill_id = 1")  # a key twice: listed once
    exps = [ExpectEbillRuleHoldsInScan(unexpected_rows_query=f"SELECT bill_no FROM ebill_invoice WHERE rule{i}",
                                       scan_query=scan, scan_flag=f"ebops_f{i}") for i in range(3)]
    suite = gx.ExpectationSuite(name="shared", expectations=exps)
    executed = []
    fetch = EbillScanRows._get_sqlalchemy_records_from_substituted_batch_subquery.__func__

    def counting(cls, **kwargs):
        executed.append(kwargs["substituted_batch_subquery"])
        return fetch(cls, **kwargs)
    monkeypatch.setattr(EbillScanRows, "_get_sqlalchemy_records_from_substituted_batch_subquery",
                        classmethod(counting))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bd.get_batch().validate(suite, result_format="COMPLETE")
    assert len(executed) == 1  # one scan for the three rules (GX's metric, computed once)
    by_flag = {r.expectation_config.kwargs["scan_flag"]: r for r in res.results}
    assert by_flag["ebops_f0"].result["observed_value"] == BAD
    assert sorted(r["bill_no"] for r in by_flag["ebops_f0"].result["details"]["unexpected_rows"]) == \
        [f"{i:010d}" for i in range(1, BAD + 1)]
    assert by_flag["ebops_f1"].result["observed_value"] == BAD // 2
    assert by_flag["ebops_f2"].success is True and by_flag["ebops_f2"].result["observed_value"] == 0
