"""check_task's retry rule (issue 14): only a dropped connection is retried; everything a retry
cannot cure, and every failure of a plain call, is one ERROR record at once."""
from __future__ import annotations

import paramiko
import psycopg
import pytest

from tasks.core.check_task import check_task, is_transient
from tasks.connect.database.base import DatabaseError, QueryDeadlineExceeded
from tasks.connect.ssh import AuthenticationRefused, CommandTimeout, HostKeyRejected, HostUnreachable
from tasks.core.reason_codes import Code
from tasks.core.results import Status


def _wrapped(outer: type[Exception], inner: BaseException) -> Exception:
    """As tasks/database raises: `raise DatabaseError(...) from None` inside `except driver error`."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer("wrapped") from None
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.mark.parametrize("exc", [
    HostUnreachable("channel", dropped=True),
    paramiko.SSHException("SSH session not active"),
    EOFError(),
    ConnectionResetError(104, "reset by peer"),
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    _wrapped(DatabaseError, psycopg.OperationalError("server closed the connection unexpectedly")),
])
def test_dropped_connections_are_retried(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    HostUnreachable("cannot reach 10.0.0.9:22: connection refused"),
    AuthenticationRefused("refused the key"),
    HostKeyRejected("host key does not match"),
    CommandTimeout("did not finish within 5s"),
    paramiko.AuthenticationException("auth failed"),
    paramiko.BadHostKeyException("h", paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)),
    psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "ro"'),
    _wrapped(DatabaseError, psycopg.OperationalError('FATAL:  password authentication failed for user "ro"')),
    _wrapped(QueryDeadlineExceeded, psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    ValueError("site file gives no backup log"),
    FileNotFoundError("x"),
    TimeoutError(),
])
def test_errors_a_retry_cannot_cure_are_not_retried(exc):
    assert not is_transient(exc)


def _fields(site_id, target):
    return dict(check="probe", title="探针", site=site_id, host="app1", target=target)


def test_plain_call_turns_any_exception_into_the_error_record():
    calls = []

    @check_task("probe", error_fields=_fields)
    def probe(site_id, target):
        calls.append(1)
        raise HostUnreachable("channel lost", dropped=True)

    # as PlainChecks calls it: no task run of its own, so no retry and no exception
    [rec] = probe.fn("demo", "/data")
    assert len(calls) == 1
    assert (rec.status, rec.code, rec.check, rec.site, rec.host, rec.target) == (
        Status.ERROR, Code.HOST_UNREACHABLE.value, "probe", "demo", "app1", "/data")
    assert "channel lost" in rec.reason


def test_checks_declare_retries_with_the_condition():
    from tasks.inspection.database import tablespace_usage
    from tasks.inspection.hosts import disk_usage, last_backup

    for t in (disk_usage, last_backup, tablespace_usage):
        assert t.retries == 1 and t.retry_condition_fn is not None
