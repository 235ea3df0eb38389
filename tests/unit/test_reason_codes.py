"""The reason codes: one list, every ERROR classified from its exception, and kept in result.json."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import psycopg
import pytest
from pydantic import ValidationError

from config.settings import load_site
from tasks.core import reason_codes
from tasks.backup.verify.locate import BackupNotFound
from tasks.inspection.calendar import calendar_coverage
from tasks.connect.database.base import DatabaseError
from tasks.connect.ssh import AuthenticationRefused, CommandTimeout, HostKeyRejected, HostUnreachable
from tasks.inspection.logs import LogMissing, LogUnreadable
from tasks.core.error_codes import code_for_exception
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result

BASE = dict(check="disk_usage", title="服务器磁盘使用率", site="demo")


def test_the_table_lists_every_code_and_nothing_else():
    listed = set(re.findall(r"^\| ([a-z0-9_]+) \|", reason_codes.__doc__, flags=re.M)) - {"code"}  # the header
    assert listed == {c.value for c in Code}
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c.value) for c in Code)


def _raised_from_none(inner: BaseException) -> DatabaseError:
    # as tasks/connect/database/postgresql.py raises it: `raise DatabaseError(...) from None` inside `except`
    try:
        try:
            raise inner
        except psycopg.Error:
            raise DatabaseError("query failed on host=db1 dbname=ebill") from None
    except DatabaseError as exc:
        return exc


class TestConnectionError(Exception):  # a library's own error (Great Expectations names one so)
    __test__ = False


def _wrapped(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except psycopg.Error as exc:
            raise TestConnectionError("Attempt to connect to table failed") from exc
    except TestConnectionError as exc:
        return exc


@pytest.mark.parametrize("exc,code", [
    (HostUnreachable("cannot reach app1"), Code.HOST_UNREACHABLE),
    (AuthenticationRefused("app1 refused the key"), Code.AUTH_REFUSED),
    (HostKeyRejected("host key of app1 does not match known_hosts"), Code.HOST_KEY_REJECTED),
    (CommandTimeout("did not finish within 5s"), Code.COMMAND_TIMEOUT),
    (_raised_from_none(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
     Code.QUERY_TIMEOUT),
    (_raised_from_none(psycopg.OperationalError("connection refused")), Code.DATABASE_UNREACHABLE),
    (_raised_from_none(psycopg.errors.UndefinedTable("relation does not exist")), Code.DATABASE_ERROR),
    (LogMissing("日志文件不存在：/a.log"), Code.FILE_MISSING),
    (LogUnreadable("日志文件不可读（权限不足）：/a.log"), Code.FILE_UNREADABLE),
    (BackupNotFound("no backup"), Code.BACKUP_NOT_FOUND),
    (ConnectionRefusedError(111, "Connection refused"), Code.HOST_UNREACHABLE),
    (_raised_from_none(psycopg.errors.LockNotAvailable("lock timeout")), Code.QUERY_TIMEOUT),
    (_wrapped(psycopg.errors.UndefinedTable("relation ebill_canon.his_settlement does not exist")),
     Code.DATABASE_ERROR),
    (KeyError("anything else"), Code.CHECK_ERROR),
])
def test_error_records_are_classified_from_the_exception(exc, code):
    assert code_for_exception(exc) == code
    rec = error_result(exc, **BASE)
    assert (rec.status, rec.code) == (Status.ERROR, code.value)
    assert error_result(exc, code=Code.CONFIG_INVALID, **BASE).code == "config_invalid"  # a caller may say better


def test_ok_defaults_to_ok_unknown_codes_are_refused_and_the_code_is_in_result_json():
    assert CheckResult(**BASE, status=Status.OK).code == "ok"
    assert CheckResult(**BASE, status=Status.WARN).code == ""  # a finding without a code shows as one
    rec = CheckResult(**BASE, status=Status.WARN, code=Code.DISK_USAGE_HIGH)
    assert rec.model_dump(mode="json")["code"] == "disk_usage_high" and rec.code == Code.DISK_USAGE_HIGH
    with pytest.raises(ValidationError, match="not listed in tasks/core/reason_codes.py"):
        CheckResult(**BASE, status=Status.FAIL, code="disk_full_maybe")


@pytest.mark.parametrize("day,status,code", [
    ("2025-12-01", Status.OK, Code.OK),                              # 2025 and 2026: official
    ("2026-12-02", Status.WARN, Code.CALENDAR_TEMPLATE_ONLY),        # 2027 only a template
    ("2027-11-02", Status.WARN, Code.CALENDAR_YEAR_MISSING),         # and 2028 not even that
])
def test_calendar_coverage_says_template_or_missing_by_code(day, status, code):
    site = load_site("example-oracle")
    now = datetime.fromisoformat(day).replace(hour=4, tzinfo=timezone.utc)
    [rec] = calendar_coverage.fn(site, now=now)
    assert (rec.status, rec.code) == (status, code), rec.reason
