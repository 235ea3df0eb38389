"""The data-quality rules against real PostgreSQL: exact on planted defects for two seeds, quiet on
clean data, robust to malformed rows and to the period's edges; the flow under the Prefect harness."""
from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timedelta

import psycopg
import pytest

from config.settings import load_site
from flows.common import state_dir
from flows.invoice_quality import QualityParams, invoice_quality
from sandbox import manager, postgres, quality_db
from sandbox.generator import local_now
from tasks.core.alerts import compose_message, findings_for
from tasks.connect.database import connect
from tasks.evidence.store import open_store
from tasks.quality.gx_run import run_suites
from tasks.quality.records import keys_csv, summarise
from tasks.quality.standing import STATE_FILE, load_standing
from tasks.quality.suites import RULE_IDS
from tasks.core.results import Status

pytestmark = pytest.mark.sandbox

# Two different seeds, sizes and rates: every rule must find exactly what was planted in both.
SEEDS = {
    "ebill_dq_a": dict(seed=11, days=120, bills_per_day=40, defects={r: 2 for r in RULE_IDS}),
    "ebill_dq_b": dict(seed=2027, days=100, bills_per_day=60, defects={r: 1 + (int(r[2:]) % 3) for r in RULE_IDS}),
}


@pytest.fixture(scope="module")
def dq_databases(sandbox):
    """Two databases of generated bills with planted defects, beside the demo's clean one."""
    creds = manager.credentials()
    built = {}
    now = local_now().replace(microsecond=0)
    try:
        for name, spec in SEEDS.items():
            gen = quality_db.build(sandbox["state"]["postgres"], creds, name, now=now, **spec)
            built[name] = {**spec, "manifest": gen["manifest"], "now": now}
        yield built
    finally:
        for name in SEEDS:
            quality_db.drop(sandbox["state"]["postgres"], creds, name)


def _db(database: str):
    cfg = load_site("demo").database
    return connect(cfg.model_copy(update={"dsn": cfg.dsn.replace("dbname=ebill", f"dbname={database}")}))


def _validate(database: str, start: date, end: date, now: datetime, rules=None):
    db = _db(database)
    try:
        return {s.rule_id: s for s in summarise(run_suites(db, "ebill_canon", start, end, now, rules=rules))}
    finally:
        db.close()


def _admin(sandbox, database: str):
    return psycopg.connect(postgres.admin_conninfo(sandbox["state"]["postgres"], manager.credentials(), database), autocommit=True)


@pytest.mark.parametrize("database", list(SEEDS))
def test_every_rule_finds_exactly_the_planted_defects(sites_dir, dq_databases, database):
    spec = dq_databases[database]
    now = spec["now"]
    found = _validate(database, now.date() - timedelta(days=spec["days"] + 3), now.date() + timedelta(days=1), now)
    wrong = {}
    for rule in RULE_IDS:
        expected = {tuple(k) for k in spec["manifest"]["rules"].get(rule, [])}
        got = set(found[rule].failing)
        assert not found[rule].errors, (rule, found[rule].errors)
        assert len(expected) >= spec["defects"][rule], (rule, expected)
        if got != expected:
            wrong[rule] = {"missed": sorted(expected - got), "false_alarms": sorted(got - expected)}
    assert not wrong, wrong
    # the whole generated period used every segment a defect was planted on: none is left standing
    assert {r: s.standing for r, s in found.items() if s.standing} == {}


def _planted_segments_touched(sandbox, database: str, keys: list, first: date, end: date) -> set[tuple]:
    """Which planted segments a bill issued in [first, end) was taken from, read from the vendor's
    own tables (not through the rule's SQL)."""
    with _admin(sandbox, database) as conn:
        rows = conn.execute(
            "SELECT DISTINCT k.bill_batch_code, k.start_no FROM ebill.t_bill_stock k JOIN ebill.t_ebill_main m "
            "ON m.bill_batch_code = k.bill_batch_code AND m.bill_number BETWEEN k.start_no AND k.end_no "
            "WHERE m.ivc_datetime >= %s AND m.ivc_datetime < %s", (first, end)).fetchall()
    return {tuple(r) for r in rows} & {tuple(k) for k in keys}


def _last_use(sandbox, database: str, keys: list) -> date:
    with _admin(sandbox, database) as conn:
        return conn.execute(
            "SELECT max(m.ivc_datetime)::date FROM ebill.t_bill_stock k JOIN ebill.t_ebill_main m "
            "ON m.bill_batch_code = k.bill_batch_code AND m.bill_number BETWEEN k.start_no AND k.end_no "
            "WHERE (k.bill_batch_code, k.start_no) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([k[0] for k in keys], [k[1] for k in keys])).fetchone()[0]


def test_a_days_dq21_judges_only_the_segments_its_bills_used(sandbox, sites_dir, dq_databases):
    """One day: the planted stock defects whose segments that day's bills used are the day's
    findings; the others are standing findings, exactly."""
    spec = dq_databases["ebill_dq_a"]
    planted = spec["manifest"]["rules"]["DQ21"]
    day = _last_use(sandbox, "ebill_dq_a", planted)
    touched = _planted_segments_touched(sandbox, "ebill_dq_a", planted, day, day + timedelta(days=1))
    assert touched  # the day the last planted segment was used
    dq21 = _validate("ebill_dq_a", day, day + timedelta(days=1), spec["now"], rules=["DQ21"])["DQ21"]
    assert not dq21.errors, dq21.errors
    assert set(dq21.failing) == touched
    assert set(dq21.standing) == {tuple(k) for k in planted} - touched
    with _admin(sandbox, "ebill_dq_a") as conn:
        segments = conn.execute("SELECT count(*) FROM ebill.t_bill_stock").fetchone()[0]
    assert 0 < dq21.checked < segments  # the segments that day's bills used, not the whole stock


def test_clean_data_pass_and_an_empty_period_is_skipped(sites_dir):
    now = local_now()
    found = _validate("ebill", now.date() - timedelta(days=30), now.date(), now)
    assert {r: s.status for r, s in found.items() if s.status is not Status.OK} == {}
    assert found["DQ19"].checked > 0
    empty = _validate("ebill", date(2001, 1, 1), date(2001, 1, 2), now)
    assert {s.status for s in empty.values()} == {Status.SKIPPED}  # DQ21 too: no bill used a segment


def test_malformed_rows_are_reported_not_a_crash(sandbox, sites_dir, dq_databases):
    """Absurd values where the vendor's columns allow them: each shows up under its rule."""
    db = "ebill_dq_b"  # (the flow test reads ebill_dq_a as generated)
    with _admin(sandbox, db) as conn:
        row = conn.execute("SELECT id, ivc_datetime, bill_batch_code, bill_number, bus_no FROM ebill.t_ebill_main "
                           "WHERE red_flag = '0' AND bill_state = '1' AND bus_type = '02' ORDER BY id DESC LIMIT 1").fetchone()
        bid, when, code, no, bus = row
        conn.execute("UPDATE ebill.t_ebill_main SET bus_type = 'ZZ', payer_tel = 'not-a-tel', random_code = '??', "
                     "total_amt = 99999999999.99 WHERE id = %s", (bid,))
        conn.execute("UPDATE ebill.t_bill_stock SET cur_no = 'ABC' WHERE id = (SELECT min(id) FROM ebill.t_bill_stock)")
        seg = conn.execute("SELECT bill_batch_code, start_no FROM ebill.t_bill_stock WHERE cur_no = 'ABC'").fetchone()
    now = dq_databases[db]["now"]
    found = _validate(db, when.date(), when.date() + timedelta(days=1), now)
    assert not [r for r, s in found.items() if s.errors], {r: s.errors for r, s in found.items() if s.errors}
    key = (code, no)
    for rule in ("DQ03", "DQ06", "DQ07", "DQ15", "DQ20"):
        assert key in found[rule].failing, rule
    assert (bus,) in found["DQ19"].failing  # the settlement's amount no longer matches
    # DQ21: the day's finding if a bill of that day came from the segment, else a standing one
    used = _planted_segments_touched(sandbox, db, [seg], when.date(), when.date() + timedelta(days=1))
    assert tuple(seg) in (found["DQ21"].failing if used else found["DQ21"].standing)


def test_a_formula_planted_in_a_key_reaches_the_csv_as_text(sandbox, sites_dir, dq_databases):
    """A business number holding a spreadsheet formula is written to failing_keys/ with a leading
    quote (Excel shows it as text); a negative number stays a number."""
    db = "ebill_dq_b"
    day = dq_databases[db]["now"].date() - timedelta(days=30)
    formula, number = '=HYPERLINK("http://evil.example/x","点击")', "-12.50"
    with _admin(sandbox, db) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM ebill.t_ebill_main WHERE red_flag = '0' AND bill_state = '1' AND ivc_datetime::date = %s "
            "ORDER BY id LIMIT 2", (day,)).fetchall()]
        for bid, bus in zip(ids, (formula, number)):  # now bills without a settlement: DQ19 names their bus_no
            conn.execute("UPDATE ebill.t_ebill_main SET bus_no = %s WHERE id = %s", (bus, bid))
    dq19 = _validate(db, day, day + timedelta(days=1), dq_databases[db]["now"], rules=["DQ19"])["DQ19"]
    assert {(formula,), (number,)} <= set(dq19.failing)
    cells = {row[0] for row in csv.reader(io.StringIO(keys_csv(dq19)))}
    assert "'" + formula in cells and number in cells and formula not in cells


def test_a_settlement_at_midnight_is_not_a_missing_bill(sandbox, sites_dir, dq_databases):
    """Settled 23:59, billed 00:02 the next day: neither day's check may call it missing or orphan."""
    db = "ebill_dq_b"
    spec = dq_databases[db]
    day = spec["now"].date() - timedelta(days=10)
    settled, issued = datetime.combine(day, datetime.min.time()) + timedelta(hours=23, minutes=59), \
        datetime.combine(day + timedelta(days=1), datetime.min.time()) + timedelta(minutes=2)
    with _admin(sandbox, db) as conn:
        bid, bus = conn.execute(
            "SELECT id, bus_no FROM ebill.t_ebill_main m WHERE red_flag = '0' AND bill_state = '1' AND bus_type = '02' "
            "AND ivc_datetime::date = %s AND NOT EXISTS (SELECT 1 FROM ebill.t_ebill_main x WHERE x.bus_no = m.bus_no "
            "AND x.id <> m.id) ORDER BY id LIMIT 1", (day + timedelta(days=1),)).fetchone()
        conn.execute("UPDATE ebill.t_ebill_main SET bus_datetime = %s, ivc_datetime = %s WHERE id = %s", (settled, issued, bid))
        conn.execute("UPDATE ebill.t_ebill_detail SET ivc_datetime = %s WHERE main_id = %s", (issued, bid))
        conn.execute("UPDATE ebill.t_his_settle SET settle_datetime = %s WHERE his_serial_no = %s", (settled, bus))
    for first in (day, day + timedelta(days=1)):
        found = _validate(db, first, first + timedelta(days=1), spec["now"], rules=["DQ13", "DQ19"])
        assert (bus,) not in found["DQ19"].failing, first
        assert found["DQ19"].checked > 0


def test_flow_stores_report_csv_and_data_docs_without_personal_data(prefect_harness, sandbox, sites_dir, dq_databases,
                                                                   caplog, capsys):
    spec = dq_databases["ebill_dq_a"]
    sites_dir("dq", edit=lambda d: d["database"].update(dsn=d["database"]["dsn"].replace("dbname=ebill", "dbname=ebill_dq_a")))
    now = spec["now"]
    params = QualityParams(site="dq", start=now.date() - timedelta(days=spec["days"]), end=now.date(), engineer="测试")
    state = invoice_quality(params=params, return_state=True)
    assert state.is_failed()  # planted defects: the run fails, after the evidence is stored
    outcome = state.result(raise_on_failure=False).outcome
    assert [r.target for r in outcome.results] == list(RULE_IDS)
    assert outcome.verdict is Status.FAIL and outcome.bundle.location == "store"
    store = open_store(load_site("dq").evidence)
    names = [o.object_name[len(outcome.bundle.prefix):] for o in store.list(outcome.bundle.prefix)]
    assert {"report.html", "report.md", "result.json", "data_docs/index.html", "failing_keys/DQ06.csv"} <= set(names), names
    assert any(n.startswith("data_docs/validations/") for n in names)
    report = store.get(outcome.bundle.prefix + "report.md").decode("utf-8")
    assert "数据质量" in report and "DQ19" in report and "HIS对账" in report
    dq06 = store.get(outcome.bundle.prefix + "failing_keys/DQ06.csv").decode("utf-8").splitlines()
    assert dq06[0] == "bill_code,bill_no" and {tuple(line.split(",")) for line in dq06[1:]} == \
        {tuple(k) for k in spec["manifest"]["rules"]["DQ06"]}
    # No payer's name, ID number or phone in any file of the bundle (organisations' names are not personal).
    with _admin(sandbox, "ebill_dq_a") as conn:
        rows = conn.execute("SELECT payer, payer_id_card, payer_tel FROM ebill.t_ebill_main WHERE payer_type = '1'").fetchall()
    people = {r[0] for r in rows if r[0]}
    numbers = {v for r in rows for v in r[1:] if v}
    # ... nor in the run's log and output, nor in the alert a robot would receive
    alert = compose_message(load_site("dq"), findings_for(outcome.results), title="票据数据质量检查",
                            report_url=None, evidence_prefix=outcome.bundle.prefix, limit_bytes=1 << 20)
    said = caplog.text + "\n".join(capsys.readouterr()) + alert
    assert "DQ06" in alert
    digits = re.compile(r"(?<![0-9A-Za-z])[0-9]{11}[0-9Xx]{0,7}(?![0-9A-Za-z])")
    leaks = [("log/alert", v) for v in people if v in said] + [("log/alert", v) for v in set(digits.findall(said)) & numbers]
    for n in names:
        if n.endswith((".css", ".png", ".ico", ".gif", ".otf", ".svg")):
            continue
        text = store.get(outcome.bundle.prefix + n).decode("utf-8", "replace")
        leaks += [(n, v) for v in people if v in text]
        leaks += [(n, v) for v in set(digits.findall(text)) & numbers]
    assert not leaks, leaks[:5]


def test_a_standing_stock_defect_fails_one_daily_report_then_is_tracked(prefect_harness, sandbox, sites_dir,
                                                                       dq_databases, tmp_path):
    """Old broken segments no bill of the day used: the first daily report counts them (FAIL), the
    next one lists them with the day they were first seen and passes on its clean bills."""
    spec = dq_databases["ebill_dq_a"]
    planted = {tuple(k) for k in spec["manifest"]["rules"]["DQ21"]}
    day = next(d for d in (spec["now"].date() - timedelta(days=n) for n in range(1, 60))
               if not _planted_segments_touched(sandbox, "ebill_dq_a", planted, d, d + timedelta(days=1)))

    def edit(d: dict) -> None:
        d["database"].update(dsn=d["database"]["dsn"].replace("dbname=ebill", "dbname=ebill_dq_a"))
        d["state_dir"] = str(tmp_path / "state")  # a worker that has not seen this database yet

    sites_dir("dq", edit=edit)
    site = load_site("dq")
    params = QualityParams(site="dq", start=day, rules=["DQ21"])
    first = invoice_quality(params=params, return_state=True)
    assert first.is_failed()
    [dq21] = first.result(raise_on_failure=False).outcome.results
    assert dq21.status is Status.FAIL and dq21.value == len(planted), dq21.reason
    known = load_standing(state_dir(site) / STATE_FILE)
    assert set(known["DQ21"]) == {"/".join(k) for k in planted}
    since = set(known["DQ21"].values())

    second = invoice_quality(params=params, return_state=True)
    assert second.is_completed(), second
    outcome = second.result()
    [dq21] = outcome.results
    assert dq21.status is Status.OK and dq21.value == 0, dq21.reason
    assert load_standing(state_dir(site) / STATE_FILE) == known  # still open, still first seen then
    store = open_store(site.evidence)
    report = store.get(outcome.bundle.prefix + "report.md").decode("utf-8")
    assert "长期存在的问题" in report and report.count("仍未消除，不计入本期结论") == len(planted)
    assert all(d in report for d in since) and "只判断本期开具的票据所用的号段" in report
    rows = store.get(outcome.bundle.prefix + "failing_keys/DQ21_standing.csv").decode("utf-8").splitlines()
    assert rows[0] == "bill_code,start_no,open_since"
    assert {tuple(r.split(",")[:2]) for r in rows[1:]} == planted


def test_a_write_through_gx_session_is_refused(sites_dir):
    """GX's engine opens its sessions through _creator: the server refuses any write on them."""
    from tasks.quality.gx_run import _creator

    db = _db("ebill")
    opened: list = []
    try:
        conn = _creator(db, opened)()
        with conn.cursor() as cur:
            cur.execute("SHOW transaction_read_only")
            assert cur.fetchone()[0] == "on"
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                cur.execute("CREATE TABLE ebops_gx_write_probe (a int)")
    finally:
        for c in opened:
            c.close()
        db.close()
