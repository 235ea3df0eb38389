"""check_task under Prefect (issue 14): a dropped connection is retried and the retry's record
kept; a permanent failure is one ERROR record at once; a drop on every attempt ends in ERROR."""
from __future__ import annotations

import paramiko
import pytest
from prefect import flow

from tasks.core.check_task import check_task
from tasks.connect.ssh import AuthenticationRefused
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status


def _fields(site_id):
    return dict(check="probe", title="探针", site=site_id, host="app1", target="/data")


def _probe(failures: list[BaseException], calls: list[int]):
    @check_task("probe", error_fields=_fields, retry_delay_seconds=0)
    def probe(site_id):
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return [CheckResult(check="probe", title="探针", site=site_id, status=Status.OK, value=1)]
    return probe


def _run(probe) -> list[CheckResult]:
    @flow(name="check-task-probe")
    def run():
        return probe.submit("demo").result()
    return run()


def test_transient_failure_once_is_retried_and_ok(prefect_harness):
    calls: list[int] = []
    [rec] = _run(_probe([paramiko.SSHException("SSH session not active")], calls))
    assert len(calls) == 2
    assert rec.status is Status.OK


def test_permanent_failure_is_one_error_record_without_retry(prefect_harness):
    calls: list[int] = []
    [rec] = _run(_probe([AuthenticationRefused("refused the key of user ops")], calls))
    assert len(calls) == 1
    assert (rec.status, rec.code, rec.host, rec.target) == (Status.ERROR, Code.AUTH_REFUSED.value, "app1", "/data")


def test_transient_failure_on_every_attempt_ends_in_error(prefect_harness):
    calls: list[int] = []
    [rec] = _run(_probe([EOFError(), EOFError(), EOFError()], calls))
    assert len(calls) == 2  # the first attempt and its one retry
    assert rec.status is Status.ERROR and rec.code == Code.CHECK_ERROR.value


def _first_connection_dropped(session) -> list[int]:
    """The session's first connect() hands out a connection that is already closed (the server or
    a firewall dropped it between connect and the command); later ones reconnect. Returns the
    list that counts the connects."""
    stale = session.connect()
    stale.close()
    reconnect, attempts = session.connect, []

    def connect():
        attempts.append(1)
        return stale if len(attempts) == 1 else reconnect()

    session.connect = connect
    return attempts


@pytest.mark.sandbox
def test_disk_usage_retries_over_a_dropped_ssh_connection(prefect_harness, sites_dir):
    """The first attempt meets a connection that the pool still holds but that is closed (the
    server or a firewall dropped it between connect and the command); the retry reconnects."""
    from config.settings import Thresholds, load_site
    from tasks.inspection.hosts import disk_usage
    from tasks.connect.ssh import HostPool

    host = load_site("demo").host("app1")
    with HostPool() as pool:
        attempts = _first_connection_dropped(pool.get(host))

        @flow(name="check-task-disk")
        def run():
            return disk_usage.with_options(retry_delay_seconds=0).submit("demo", host, pool, Thresholds()).result()

        recs = run()
    assert len(attempts) >= 2
    assert recs and all(r.status is Status.OK for r in recs), [(r.code, r.reason) for r in recs]


def _per_item_probe(failures: list[BaseException], calls: list[int]):
    """A check that writes its own ERROR record per item, as log_errors and certificate_files do."""
    from tasks.core.check_task import retry_pending
    from tasks.core.results import error_result, utcnow

    @check_task("per_item_probe", error_fields=None, retry_delay_seconds=0)
    def probe(site_id):
        calls.append(1)
        try:
            if failures:
                raise failures.pop(0)
        except Exception as exc:  # noqa: BLE001
            if retry_pending(exc):
                raise
            return [error_result(exc, started_at=utcnow(), check="probe", title="探针", site=site_id, target=t)
                    for t in ("a.log", "b.log")]
        return [CheckResult(check="probe", title="探针", site=site_id, target=t, status=Status.OK) for t in ("a.log", "b.log")]
    return probe


def test_per_item_check_raises_a_drop_for_prefect_to_retry(prefect_harness):
    calls: list[int] = []
    recs = _run(_per_item_probe([EOFError()], calls))
    assert len(calls) == 2 and [r.status for r in recs] == [Status.OK, Status.OK]


def test_per_item_check_reports_a_permanent_failure_per_item_at_once(prefect_harness):
    calls: list[int] = []
    recs = _run(_per_item_probe([AuthenticationRefused("refused")], calls))
    assert len(calls) == 1 and [(r.target, r.status) for r in recs] == [("a.log", Status.ERROR), ("b.log", Status.ERROR)]


def test_per_item_check_called_plainly_never_retries():
    calls: list[int] = []
    recs = _per_item_probe([EOFError()], calls).fn("demo")   # as a fleet's PlainChecks calls it
    assert len(calls) == 1 and [r.status for r in recs] == [Status.ERROR, Status.ERROR]


@pytest.mark.sandbox
def test_log_errors_retries_over_a_dropped_ssh_connection(prefect_harness, sites_dir):
    """As disk_usage above, for a check that reports each log on its own."""
    from config.settings import load_site
    from tasks.connect.ssh import HostPool
    from tasks.inspection.logs import log_errors

    host = load_site("demo").host("app1")
    with HostPool() as pool:
        attempts = _first_connection_dropped(pool.get(host))

        @flow(name="check-task-logs")
        def run():
            return log_errors.with_options(retry_delay_seconds=0).submit("demo", host, pool, {}).result()

        recs, positions = run()
    assert len(attempts) >= 2
    assert recs and all(r.status is not Status.ERROR for r in recs), [(r.code, r.reason) for r in recs]
    assert len(positions) == len(host.logs)
