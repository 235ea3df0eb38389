"""The year-end's PostgreSQL plan from recorded pg_catalog rows, the journal that lets a resumed run
show the killed one, and the step records' verdicts (pure logic; the real database is in
tests/integration/test_yearend.py)."""
from __future__ import annotations

from datetime import date, datetime, timezone

import sqlglot

from config.year_end import YearEndDatabase
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.core.results import Status
from tasks.yearend import record
from tasks.yearend.catalogue import COMPACTED_MARK, pg_catalogue, pg_year
from tasks.yearend.database import old_years, pg_already_done, pg_plan, statements
from tasks.yearend.runner import earlier_runs, note, outcome_from_journal, read_journal


def _row(table, year, **kw):
    r = {"table_name": table, "table_owner": "ebill_app", "key_column": "ivc_datetime",
         "key_type": "timestamp without time zone", "partition_name": f"{table}_{year}",
         "bound": f"FOR VALUES FROM ('{year}-01-01 00:00:00') TO ('{year + 1}-01-01 00:00:00')",
         "tablespace_name": f"ts_ebill_{year}", "bytes": 1 << 20, "comment": None, "writable": True,
         "writers": "ebill_app", "indexes": f"{table}_{year}_pkey"}
    r.update(kw)
    return r


ROWS = [_row(t, y) for t in ("t_ebill_detail", "t_ebill_main") for y in range(2022, 2027)] + [
    {**_row("t_interface_log", 2026), "key_column": "log_id", "key_type": "bigint"}]
SPACES = [{"tablespace_name": f"ts_ebill_{y}", "location": f"/u01/pgtbs/ts_ebill_{y}", "owner": "ebill_app"}
          for y in range(2022, 2027)] + [{"tablespace_name": "pg_default", "location": "", "owner": "postgres"}]
CFG = YearEndDatabase.model_validate({
    "schema": "ebill", "dba": {"dsn": "host=db1 dbname=ebill", "user": "postgres", "password": {"env": "X"}},
    "tablespace": {"location": "{tablespace_dir}/ts_ebill_{year}", "make_directory": True, "owner": "ebill_app"},
    "archive": {"tablespace": "ts_ebill_archive", "location": "{tablespace_dir}/ts_ebill_archive"}})


def test_bounds_and_old_years():
    assert pg_year("FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')") == 2027
    assert pg_year("FOR VALUES FROM ('2027-01-01') TO ('2027-07-01')") is None and pg_year("DEFAULT") is None
    assert old_years(date(2026, 12, 2), 2) == 2023 and old_years(date(2026, 1, 1), 2) == 2023


def test_plan_from_the_catalogue():
    cat = pg_catalogue("ebill", ROWS, SPACES)
    assert [t.name for t in cat.tables] == ["t_ebill_detail", "t_ebill_main"]
    assert any("t_interface_log" in o for o in cat.others) and cat.tablespace_dir() == "/u01/pgtbs"
    steps, facts = pg_plan(cat, CFG, 2027, date(2026, 12, 2), "db1")
    ids = [s.id for s in steps]
    assert ids[:4] == ["directory:ts_ebill_2027", "tablespace:ts_ebill_2027", "partition:ebill.t_ebill_detail_2027",
                       "partition:ebill.t_ebill_main_2027"]
    assert "tablespace:ts_ebill_2028" in ids and "tablespace:ts_ebill_archive" in ids
    assert [i for i in ids if i.startswith("compact:")] == [
        "compact:ebill.t_ebill_detail_2022", "compact:ebill.t_ebill_detail_2023",
        "compact:ebill.t_ebill_main_2022", "compact:ebill.t_ebill_main_2023"]
    compact = next(s for s in steps if s.id == "compact:ebill.t_ebill_main_2022")
    assert statements(compact) == [
        "ALTER TABLE ebill.t_ebill_main_2022 SET TABLESPACE ts_ebill_archive",
        "ALTER INDEX ebill.t_ebill_main_2022_pkey SET TABLESPACE ts_ebill_archive",
        "VACUUM (FULL, ANALYZE) ebill.t_ebill_main_2022",
        f"COMMENT ON TABLE ebill.t_ebill_main_2022 IS '{COMPACTED_MARK}（2022 年，ts_ebill_archive）'"]
    assert next(s for s in steps if s.id == "directory:ts_ebill_2027").text == (
        "mkdir -m 0700 -- /u01/pgtbs/ts_ebill_2027 && chown --reference=/u01/pgtbs -- /u01/pgtbs/ts_ebill_2027")
    for s in steps:
        if s.kind == "sql":
            for st in statements(s):
                assert sqlglot.parse_one(st, read="postgres", error_level=sqlglot.ErrorLevel.RAISE) is not None
    assert facts["targets"]["compact:ebill.t_ebill_main_2022"]["tablespace"] == "ts_ebill_archive"


def test_already_done_from_the_catalogue_after_execution():
    later = [_row(t, y, tablespace_name="ts_ebill_archive", comment=f"{COMPACTED_MARK}（{y} 年）", writable=False)
             if y == 2022 else _row(t, y) for t in ("t_ebill_detail", "t_ebill_main") for y in range(2022, 2028)]
    cat = pg_catalogue("ebill", later, SPACES + [{"tablespace_name": "ts_ebill_2027", "location": "/x", "owner": "a"}])
    _, facts = pg_plan(pg_catalogue("ebill", ROWS, SPACES), CFG, 2027, date(2026, 12, 2), "db1")
    t = facts["targets"]
    assert pg_already_done(t["tablespace:ts_ebill_2027"], cat) and pg_already_done(t["partition:ebill.t_ebill_main_2027"], cat)
    assert pg_already_done(t["compact:ebill.t_ebill_main_2022"], cat) and pg_already_done(t["readonly:ebill.t_ebill_main_2022"], cat)
    assert pg_already_done(t["compact:ebill.t_ebill_main_2023"], cat) is None
    assert pg_already_done(t["tablespace:ts_ebill_2028"], cat) is None


def _plan(n=3) -> Plan:
    return Plan(site="demo", duty="year_end", title="t", requested_by="张工",
                steps=[PlanStep(id=f"s{i}", kind="sql", target="db", text="SELECT 1", expect="x") for i in range(n)])


def _out(step, status):
    now = datetime.now(timezone.utc)
    return StepOutcome(step_id=step.id, status=status, started_at=now, finished_at=now, output="o")


def test_journal_names_the_step_a_killed_run_was_in(tmp_path):
    plan, journal = _plan(), tmp_path / "j.jsonl"
    note(journal, "run-1", "run_started")
    note(journal, "run-1", "step_started", "s0")
    note(journal, "run-1", "step_done", "s0", _out(plan.steps[0], "done"))
    note(journal, "run-1", "step_started", "s1")
    with open(journal, "a", encoding="utf-8") as f:
        f.write('{"run": "run-1", "event": "step_do')  # the kill cut this line
    note(journal, "run-2", "run_started")
    entries = read_journal(journal)
    runs = earlier_runs(entries, "run-2")
    assert runs == [{"run": "run-1", "started": runs[0]["started"], "done": ["s0"], "started_steps": ["s0", "s1"],
                     "failed": [], "finished": False, "interrupted_in": ["s1"]}]
    assert outcome_from_journal(entries, "s0")["status"] == "done" and outcome_from_journal(entries, "s1") is None


def test_step_records_fail_the_run_and_mark_the_rest_not_run():
    plan = _plan()
    results = record.step_results("demo", plan, [_out(plan.steps[0], "already_done"), _out(plan.steps[1], "failed"),
                                                 _out(plan.steps[2], "skipped")])
    assert [r.status for r in results] == [Status.OK, Status.FAIL, Status.SKIPPED]
    assert [r.code for r in results] == ["already_done", "step_failed", "earlier_step_failed"]
