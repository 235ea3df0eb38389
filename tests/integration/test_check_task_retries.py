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


@pytest.mark.sandbox
def test_disk_usage_retries_over_a_dropped_ssh_connection(prefect_harness, sites_dir):
    """The first attempt meets a connection that the pool still holds but that is closed (the
    server or a firewall dropped it between connect and the command); the retry reconnects."""
    from config.settings import Thresholds, load_site
    from tasks.inspection.hosts import disk_usage
    from tasks.connect.ssh import HostPool

    host = load_site("demo").host("app1")
    with HostPool() as pool:
        session = pool.get(host)
        stale = session.connect()
        stale.close()
        reconnect, attempts = session.connect, []

        def connect():
            attempts.append(1)
            return stale if len(attempts) == 1 else reconnect()

        session.connect = connect

        @flow(name="check-task-disk")
        def run():
            return disk_usage.with_options(retry_delay_seconds=0).submit("demo", host, pool, Thresholds()).result()

        recs = run()
    assert len(attempts) >= 2
    assert recs and all(r.status is Status.OK for r in recs), [(r.code, r.reason) for r in recs]
