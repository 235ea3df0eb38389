"""The e-bill checks without a server: their SQL in both dialects, the Oracle row mapping, the
judging of every threshold, and the tasks' clock and error handling.

Oracle cannot run here. FakeOracleConnection below STANDS IN FOR AN ORACLE CONNECTION: it answers
each check's statement with rows shaped as python-oracledb returns them from Oracle 19c over the
canonical views (upper-case names in cursor.description, NUMBER as int/float/Decimal, CHAR columns
blank-padded to their length, TIMESTAMP as naive datetime).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlglot
from sqlglot import exp

from config.hosts import DatabaseConfig
from config.settings import Site, Thresholds
from tasks.inspection import ebill as ebill_checks
from tasks.connect.database import DatabaseError
from tasks.connect.database import oracle as oracle_db
from tasks.connect.database import postgresql as pg_db
from tasks.connect.database.base import (
    CANONICAL_COLUMNS,
    BacklogBill,
    FinanceBacklog,
    InterfaceStats,
    StockLevel,
)
from tasks.connect.database.oracle import READ_ONLY_SQL, OracleEbillDatabase
from tasks.inspection.ebill import (
    daily_use,
    finding_code,
    judge_backlog,
    judge_interface,
    judge_stock,
    site_now,
)
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status

CHECK_SQL = ["INTERFACE_STATS_SQL", "FINANCE_BACKLOG_SQL", "STOCK_LEVELS_SQL"]
# what each statement returns, in order: the keys the row mapping of tasks/connect/database/base.py reads
OUTPUT = {
    "INTERFACE_STATS_SQL": ["target", "calls", "ok_calls", "mean_ms", "p95_ms", "max_ms"],
    "FINANCE_BACKLOG_SQL": ["stage", "total", "failed", "bill_code", "bill_no", "issue_time", "upload_status",
                            "archive_status"],
    "STOCK_LEVELS_SQL": ["place_code", "bill_code", "remaining", "warn_sheets", "segments", "issued", "first_issue"],
}
DIALECTS = [(oracle_db, "oracle"), (pg_db, "postgres")]
TH = Thresholds()
NOW = datetime(2026, 11, 26, 10, 0)


# ---------------------------------------------------------------- SQL of both dialects
@pytest.mark.parametrize("module, dialect", DIALECTS)
@pytest.mark.parametrize("name", CHECK_SQL)
def test_check_sql_parses_and_reads_only_canonical_columns(module, dialect, name):
    tree = sqlglot.parse_one(getattr(module, name), read=dialect)  # raises on a syntax error
    assert [e.alias_or_name.lower() for e in tree.selects] == OUTPUT[name]
    ctes = {c.alias.lower() for c in tree.find_all(exp.CTE)}
    tables = {t.name.lower() for t in tree.find_all(exp.Table)} - ctes
    assert tables <= set(CANONICAL_COLUMNS), tables
    defined = {a.alias.lower() for a in tree.find_all(exp.Alias)} | set().union(*OUTPUT.values())
    allowed = set().union(*(CANONICAL_COLUMNS[t] for t in tables)) | defined
    used = {c.name.lower() for c in tree.find_all(exp.Column)}
    assert used <= allowed, used - allowed
    # personal data is never selected, and times come as binds (never the server's clock)
    assert not used & {"payer_name", "id_card_no", "tel"}
    sql = getattr(module, name).lower()
    assert not any(f in sql for f in ("sysdate", "systimestamp", "now()", "current_timestamp", "localtimestamp"))


def test_oracle_sql_is_oracle_and_the_percentile_is_computed_in_the_database():
    for module, dialect in DIALECTS:
        tree = sqlglot.parse_one(module.INTERFACE_STATS_SQL, read=dialect)
        assert tree.find(exp.PercentileCont) is not None and tree.find(exp.WithinGroup) is not None
    # the Oracle view's ACTIVE is NUMBER(1) (no boolean in Oracle SQL before 23c); bill numbers are CHAR
    assert "NOT p.active" not in oracle_db.STOCK_LEVELS_SQL
    assert "p.active = 1" in oracle_db.STOCK_LEVELS_SQL and "TO_NUMBER(end_no)" in oracle_db.STOCK_LEVELS_SQL
    assert "::" not in "".join(getattr(oracle_db, n) for n in CHECK_SQL)
    assert " AS pending" not in oracle_db.FINANCE_BACKLOG_SQL  # Oracle takes no AS before a table alias


# ---------------------------------------------------------------- Oracle through a fake connection
T0 = datetime(2026, 11, 24, 8, 15, 3, 250000)
ORACLE_ANSWERS = {
    "ebill_call_log": (["TARGET", "CALLS", "OK_CALLS", "MEAN_MS", "P95_MS", "MAX_MS"], [
        ("delivery", 212, 209, 121.35849056603774, 187.45, 905),
        ("finance", 418, 418, Decimal("243.1"), 402.0, 1204),
        ("sign_server", 215, 215, 71.2, 110.3, 301),
    ]),
    "ranked": (["STAGE", "TOTAL", "FAILED", "BILL_CODE", "BILL_NO", "ISSUE_TIME", "UPLOAD_STATUS", "ARCHIVE_STATUS"], [
        ("archive", 1, 0, "44010126", "0000004711", T0, "1", "0"),
        ("upload ", 2, 1, "44010126", "0000004800", T0 + timedelta(hours=1), "2", "0"),
        ("upload ", 2, 1, "44010226", "0000000093", T0 + timedelta(hours=2), "0", "0"),
    ]),
    "ebill_stock": (["PLACE_CODE", "BILL_CODE", "REMAINING", "WARN_SHEETS", "SEGMENTS", "ISSUED", "FIRST_ISSUE"], [
        ("GH01", "44010126", 1480, 22, 2, 214, datetime(2026, 10, 27, 7, 2, 11)),
        ("MZ09", None, 0, None, 0, 0, None),
    ]),
}


class FakeOracleCursor:
    """Stands in for an oracledb cursor on Oracle 19c (none can run here)."""

    def __init__(self, conn):
        self.conn, self.description, self._rows = conn, None, []

    def execute(self, sql, params=None):
        self.conn.sent.append((sql, params))
        self.description, self._rows = None, []
        for marker in ("ranked", "ebill_stock", "ebill_call_log"):
            if marker in sql:
                cols, rows = ORACLE_ANSWERS[marker]
                self.description = [(c, None) for c in cols]
                self._rows = list(rows)
                break

    def fetchall(self):
        return self._rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeOracleConnection:
    def __init__(self):
        self.sent, self.rollbacks = [], 0

    def cursor(self):
        return FakeOracleCursor(self)

    def rollback(self):
        self.rollbacks += 1

    def close(self):
        pass


@pytest.fixture()
def oracle():
    cfg = DatabaseConfig.model_validate({"dialect": "oracle", "dsn": "db1.hospital.local:1521/EBILL",
                                         "user": "EBOPS_RO", "password": {"env": "UNUSED"}, "schema": "EBOPS"})
    db = OracleEbillDatabase(cfg)
    db._conn = FakeOracleConnection()  # stands in for oracledb.connect(...)
    return db


def test_oracle_interface_stats_send_the_window_as_binds(oracle):
    since, until = NOW - timedelta(minutes=60), NOW
    stats = {s.target: s for s in oracle.interface_stats(since, until)}
    sql, params = oracle._conn.sent[1]
    assert oracle._conn.sent[0][0] == READ_ONLY_SQL and sql == oracle_db.INTERFACE_STATS_SQL
    assert params == {"since": since, "until": until} and params["until"].tzinfo is None
    assert oracle._conn.rollbacks == 1
    d = stats["delivery"]
    assert (d.calls, d.ok_calls, d.max_ms) == (212, 209, 905) and round(d.success_pct, 2) == 98.58
    assert isinstance(stats["finance"].mean_ms, float) and stats["finance"].mean_ms == 243.1
    assert "his_api" not in stats


def test_oracle_backlog_rows_become_stages_with_padded_chars_stripped(oracle):
    upload, archive = oracle.finance_backlog(NOW - timedelta(hours=24), 100)
    assert oracle._conn.sent[1][1] == {"older_than": NOW - timedelta(hours=24), "max_keys": 100}
    assert (upload.stage, upload.count, upload.failed) == ("upload", 2, 1)
    assert [(b.bill_code, b.bill_no, b.upload_status) for b in upload.bills] == [
        ("44010126", "0000004800", "2"), ("44010226", "0000000093", "0")]
    assert (archive.stage, archive.count, archive.bills[0].bill_no) == ("archive", 1, "0000004711")


def test_oracle_stock_levels_bind_the_use_window(oracle):
    gh, mz09 = oracle.stock_levels(NOW, 30)
    assert oracle._conn.sent[1][1] == {"since": NOW - timedelta(days=30), "until": NOW}
    assert (gh.place_code, gh.bill_code, gh.remaining, gh.warn_sheets, gh.segments, gh.issued) == \
        ("GH01", "44010126", 1480, 22, 2, 214)
    assert (mz09.bill_code, mz09.remaining, mz09.first_issue) == (None, 0, None)


# ---------------------------------------------------------------- judging
def stats(calls, ok, mean=150.0, target="his_api"):
    return InterfaceStats(target=target, calls=calls, ok_calls=ok, mean_ms=mean, p95_ms=mean * 2, max_ms=int(mean * 3))


@pytest.mark.parametrize("target, calls, ok, mean, expected, code", [
    ("his_api", 1000, 1000, 150, Status.OK, Code.OK),
    ("his_api", 1000, 995, 150, Status.OK, Code.OK),      # 99.5 % is not below 99.5
    ("his_api", 1000, 994, 150, Status.WARN, Code.INTERFACE_SUCCESS_LOW),
    ("sign_server", 1000, 980, 150, Status.WARN, Code.INTERFACE_SUCCESS_LOW),  # 98 % is not below 98
    ("sign_server", 1000, 979, 150, Status.FAIL, Code.INTERFACE_SUCCESS_LOW),
    ("finance", 200, 200, 501, Status.WARN, Code.INTERFACE_LATENCY_HIGH),     # slow but all answered
    ("finance", 200, 150, 900, Status.FAIL, Code.INTERFACE_SUCCESS_LOW),
    ("delivery", 100, 99, 150, Status.OK, Code.OK),
    ("delivery", 1000, 989, 150, Status.WARN, Code.INTERFACE_SUCCESS_LOW),
    ("delivery", 100, 10, 150, Status.WARN, Code.INTERFACE_SUCCESS_LOW),     # delivery has no FAIL level
    ("delivery", 100, 100, 700, Status.WARN, Code.INTERFACE_LATENCY_HIGH),
])
def test_interface_thresholds(target, calls, ok, mean, expected, code):
    status, value, reason = judge_interface(target, stats(calls, ok, mean, target), TH)
    assert status == expected, reason
    assert finding_code(status, stats=stats(calls, ok, mean, target), target=target, th=TH) == code
    assert value == pytest.approx(100.0 * ok / calls, abs=0.01) and value <= 100.0 * ok / calls
    assert f"调用 {calls} 次" in reason and f"失败 {calls - ok} 次" in reason and "P95" in reason


def test_interface_value_is_floored_so_it_never_looks_like_the_threshold():
    status, value, _ = judge_interface("his_api", stats(20000, 19899), TH)  # 99.495 %
    assert status == Status.WARN and value == 99.49


def test_interface_without_calls_is_a_warning():
    for s in (None, stats(0, 0)):
        status, value, reason = judge_interface("sign_server", s, TH)
        assert (status, value) == (Status.WARN, None)
        assert finding_code(status, stats=s, target="sign_server", th=TH) == Code.INTERFACE_NO_CALLS
    assert "120 分钟" in judge_interface("his_api", None, Thresholds(interface_window_minutes=120))[2]


def bill(no: int, hours_ago: float) -> BacklogBill:
    return BacklogBill("44010126", f"{no:010d}", NOW - timedelta(hours=hours_ago), "0", "0")


def test_backlog_lists_ten_bill_keys_and_survives_masking():
    backlog = FinanceBacklog("upload", 15, 2, tuple(bill(1300000000 + i, 40 - i) for i in range(15)))
    status, reason = judge_backlog(backlog, TH)
    assert status == Status.WARN
    assert "15 张" in reason and "拒绝上传 2 张" in reason and "另有 5 张" in reason
    assert reason.count("44010126-") == 10 and "44010126-1300000009" in reason and "1300000010" not in reason
    rec = CheckResult(check="finance_backlog", title="t", site="s", status=status, reason=reason)
    assert "44010126-1300000000" in rec.reason  # a bill key is not mistaken for a phone or ID number
    assert judge_backlog(FinanceBacklog("archive", 0, 0, ()), TH)[0] == Status.OK


def level(remaining, warn=60, issued=600, first_days_ago=30.0, code="44010126"):
    first = NOW - timedelta(days=first_days_ago) if issued else None
    return StockLevel("MZ01", code, remaining, warn, 1, issued, first)


@pytest.mark.parametrize("lv, expected, code, words", [
    (level(1000), Status.OK, Code.OK, "约可用 50.0 天"),
    (level(59), Status.WARN, Code.STOCK_BELOW_WARNING, ""),
    (level(139), Status.WARN, Code.STOCK_DAYS_LOW, "约可用 7.0 天"),     # 20 a day: 6.95 days
    (level(140), Status.OK, Code.OK, "约可用 7.0 天"),
    (level(0), Status.FAIL, Code.STOCK_EXHAUSTED, ""),
    (level(500, issued=0), Status.OK, Code.OK, "近 30 天没有使用"),
    (level(30, issued=0), Status.WARN, Code.STOCK_BELOW_WARNING, ""),
    (level(200, issued=60, first_days_ago=2), Status.WARN, Code.STOCK_DAYS_LOW, "日均使用 30.0 张"),  # a new code: 2 days of use
    (StockLevel("JZ01", None, 0, None, 0, 12, NOW - timedelta(days=3)), Status.FAIL, Code.STOCK_NO_SEGMENT, ""),
    (StockLevel("MZ09", None, 0, None, 0, 0, None), Status.WARN, Code.STOCK_NO_SEGMENT, ""),
])
def test_stock_thresholds(lv, expected, code, words):
    status, reason = judge_stock(lv, NOW, TH)
    assert status == expected and words in reason, reason
    assert finding_code(status, level=lv) == code


def test_daily_use_counts_at_least_one_day_and_at_most_the_window():
    assert daily_use(level(1, issued=5, first_days_ago=0.01), NOW) == 5.0
    assert daily_use(level(1, issued=300, first_days_ago=45), NOW) == 10.0


# ---------------------------------------------------------------- the tasks: clock and errors
def site(**changes) -> Site:
    data = {"site": "unit", "name": "单元测试医院", "timezone": "Asia/Shanghai",
            "database": {"dialect": "postgresql", "dsn": "host=127.0.0.1 port=1 dbname=ebill", "user": "ebops_ro",
                         "password": {"env": "UNUSED"}, "schema": "ebill_canon"},
            "evidence": {"endpoint": "127.0.0.1:9", "bucket": "ebill-evidence", "access_key": {"env": "A"},
                         "secret_key": {"env": "B"}}}
    data.update(changes)
    return Site.model_validate(data)


class FakeDatabase:
    """Stands in for tasks.connect.database.connect(...): records what the task asked."""

    def __init__(self):
        self.asked = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def interface_stats(self, since, until):
        self.asked.append((since, until))
        return [stats(400, 400, target="his_api"), stats(10, 10, target="other")]

    def finance_backlog(self, older_than, max_keys):
        self.asked.append((older_than, max_keys))
        return [FinanceBacklog("upload", 0, 0, ()), FinanceBacklog("archive", 1, 0, (bill(1, 30),))]

    def stock_levels(self, now, use_days):
        self.asked.append((now, use_days))
        return [level(1000)]


def test_site_now_is_the_hospitals_wall_clock_whatever_the_worker_zone():
    utc = datetime(2026, 11, 26, 16, 30, 5, 123456, tzinfo=timezone.utc)
    assert site_now(site(), utc) == datetime(2026, 11, 27, 0, 30, 5)
    assert site_now(site(timezone="Asia/Urumqi"), utc) == datetime(2026, 11, 26, 22, 30, 5)
    assert site_now(site(), NOW.replace(microsecond=7)) == NOW  # naive: already local
    assert site_now(site()).tzinfo is None


def test_tasks_bind_local_windows_and_report_every_target(monkeypatch):
    fake = FakeDatabase()
    monkeypatch.setattr(ebill_checks, "connect", lambda cfg: fake)
    utc = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
    calls = ebill_checks.interface_calls.fn(site(), utc)
    assert fake.asked[-1] == (NOW - timedelta(minutes=60), NOW)
    assert [(r.target, r.status) for r in calls] == [("his_api", Status.OK), ("sign_server", Status.WARN),
                                                     ("finance", Status.WARN), ("delivery", Status.WARN)]
    assert calls[1].title == "接口调用（签名服务器）" and calls[0].value == 100.0 and calls[0].unit == "%"
    backlog = ebill_checks.finance_backlog.fn(site(), utc)
    assert fake.asked[-1] == (NOW - timedelta(hours=24), 100)
    assert [(r.target, r.status, r.value) for r in backlog] == [("upload", Status.OK, 0), ("archive", Status.WARN, 1)]
    assert "44010126-0000000001" in backlog[1].reason and "0000000001" in backlog[1].raw
    stock = ebill_checks.bill_stock.fn(site(), utc)
    assert fake.asked[-1] == (NOW, 30)
    assert [(r.check, r.target, r.value, r.status) for r in stock] == [("bill_stock", "MZ01/44010126", 1000, Status.OK)]


@pytest.mark.parametrize("task, title", [(ebill_checks.interface_calls, "接口调用"),
                                         (ebill_checks.finance_backlog, "财政平台在途票据（未上传/未归档）"),
                                         (ebill_checks.bill_stock, "票据库存")])
def test_an_unreachable_database_is_one_error_record(monkeypatch, task, title):
    def refuse(cfg):
        raise DatabaseError("cannot connect to PostgreSQL (host=127.0.0.1 port=1 dbname=ebill) as ebops_ro")

    monkeypatch.setattr(ebill_checks, "connect", refuse)
    [rec] = task.fn(site())
    assert (rec.status, rec.title, rec.target) == (Status.ERROR, title, "database")
    assert "DatabaseError" in rec.reason and "port=1" in rec.reason
