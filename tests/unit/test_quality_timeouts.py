"""A quality rule cut by the session's deadline inside a lane (GX keeps only the driver's text):
its record reads like the database checks' one line and carries query_timeout; any other rule
error keeps its text and rule_error. The database is a stand-in here: what is judged is text
(the lock path against the real server is tests/integration/test_database_deadline.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from tasks.connect.database.deadline import Deadline
from tasks.quality.gx_run import CheckOutcome, SuiteRun
from tasks.quality.records import summarise, to_results
from tasks.quality.suites import load_suites, rule_checks
from tasks.quality.timeouts import cut_by_deadline, deadline_reason

GX_TEXT = ("(psycopg.errors.QueryCanceled) canceling statement due to statement timeout\n"
           "[SQL: SELECT i.bill_code, i.bill_no FROM ebill_canon.ebill_invoice i\n WHERE i.amount < 0]\n"
           "(Background on this error at: https://sqlalche.me/e/21/e3q8)")
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


class _NoSession:
    """A database whose lock list cannot be read: the message must still be given."""
    dialect = "postgresql"
    deadline = Deadline(statement_s=900, lock_s=30)

    @property
    def connection(self):
        raise OSError("no session")


def test_the_deadline_is_recognised_in_driver_text():
    assert cut_by_deadline(GX_TEXT, "postgresql") == "statement"
    assert cut_by_deadline("canceling statement due to lock timeout", "postgresql") == "lock"
    assert cut_by_deadline("DPY-4024: call timeout of 900000 ms exceeded", "oracle") == "statement"
    assert cut_by_deadline("relation \"ebill_invoice\" does not exist", "postgresql") is None


def test_a_rule_cut_in_its_lane_is_one_line_with_query_timeout():
    reason = deadline_reason(_NoSession(), GX_TEXT)
    assert reason is not None and "\n" not in reason
    assert "the query on ebill_canon.ebill_invoice did not finish within 900 s (statement_timeout)" in reason
    assert "database.quality_statement_timeout_s" in reason and "hint:" in reason

    checks = [c for c in rule_checks(load_suites()) if c.rule_id == "DQ01"]
    cut = [CheckOutcome(c, error=reason, timed_out=True) for c in checks]
    other = [CheckOutcome(c, error="relation does not exist") for c in checks]
    for outcomes, code in ((cut, "query_timeout"), (other, "rule_error")):
        [rec] = to_results("demo", summarise(SuiteRun(outcomes, {"invoice": 5}, 1.0)), T0, T0, "2026-11-30")
        assert rec.status.value == "ERROR" and rec.code == code, (rec.code, rec.reason)
