"""The inspection flow end to end, under the Prefect test harness, against the sandbox hospital."""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from config.settings import load_site
from flows.common import VerdictFailed
from flows.inspection import inspection
from tasks.evidence_store import open_store
from tasks.evidence_verify import list_bundles, verify
from tasks.results import Status

pytestmark = pytest.mark.sandbox

# Every item of duties.md's inspection catalogue, by check name.
CATALOGUE = {"disk_usage", "tablespace_usage", "last_backup", "backup_space", "log_errors", "ebill_function",
             "interface_calls", "finance_backlog", "bill_stock", "certificate_expiry", "calendar_coverage"}
# Items the clean sandbox must pass. Not these: logs may hold old errors, the 2027 calendar is a
# template, and the sandbox's call log stops when it is loaded, so an interface with no call in the
# last hour rightly WARNs (tests/integration/test_ebill_checks.py judges them at a time with traffic).
CLEAN_OK = {"disk_usage", "tablespace_usage", "last_backup", "backup_space", "ebill_function",
            "finance_backlog", "bill_stock", "certificate_expiry"}


def _bundle_file(site_name: str, prefix: str, name: str) -> bytes:
    return open_store(load_site(site_name).evidence).get(prefix + name)


def test_inspection_of_healthy_sandbox_passes_and_stores_evidence(prefect_harness, sites_dir):
    state = inspection(site="demo", kind="monthly", return_state=True)
    assert state.is_completed(), state.message
    outcome = state.result()
    assert outcome.verdict in (Status.OK, Status.WARN)
    checks = {(r.check, r.host, r.target) for r in outcome.results}
    assert CATALOGUE <= {c for c, _, _ in checks}, CATALOGUE - {c for c, _, _ in checks}
    not_ok = [(r.check, r.target, r.status.value, r.reason) for r in outcome.results
              if r.check in CLEAN_OK and r.status != Status.OK]
    assert not not_ok, not_ok
    assert len([r for r in outcome.results if r.check == "ebill_function"]) == 7
    site = load_site("demo")
    for host in site.hosts:
        for mount in host.mounts:
            assert ("disk_usage", host.name, mount) in checks
    tablespaces = {r.target for r in outcome.results if r.check == "tablespace_usage"}
    # This year's tablespace and next year's, created empty at year end (QH row 14).
    year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    assert {f"ts_ebill_{year}", f"ts_ebill_{year + 1}", "pg_default"} <= tablespaces
    assert all(r.status == Status.OK for r in outcome.results if r.check == "tablespace_usage")
    [backup] = [r for r in outcome.results if r.check == "last_backup"]
    assert backup.status == Status.OK and backup.value < 1, backup.reason

    assert outcome.bundle.location == "store"
    prefix = outcome.bundle.prefix
    assert prefix.startswith("demo/inspection/")
    report = _bundle_file("demo", prefix, "report.html").decode("utf-8")
    assert "沙箱演示医院" in report and "巡检报告" in report and "月度巡检" in report
    for title in ("服务器磁盘使用率", "表空间使用率", "最近一次备份", "备份空间使用率", "电子票据功能可用性",
                  "证书有效期", "节假日日历覆盖"):
        assert title in report
    result = json.loads(_bundle_file("demo", prefix, "result.json"))
    assert result["verdict"] == outcome.verdict.value and len(result["results"]) == len(outcome.results)
    manifest = json.loads(_bundle_file("demo", prefix, "manifest.json"))
    assert {f["name"] for f in manifest["files"]} >= {"report.html", "report.md", "result.json"}
    assert manifest["flow_run_id"] == str(state.state_details.flow_run_id)
    assert verify(load_site("demo").evidence, site="demo", duty="inspection").ok


def test_unreachable_host_gives_error_run_fails_and_evidence_is_kept(prefect_harness, sites_dir, unused_port):
    def add_dead_host(data):
        dead = dict(data["hosts"][1], name="app2", port=unused_port)
        data["hosts"].append(dead)

    name = sites_dir("demo-deadhost", add_dead_host)
    state = inspection(site=name, return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, VerdictFailed)
    outcome = exc.outcome
    dead = [r for r in outcome.results if r.host == "app2"]
    assert dead and all(r.status == Status.ERROR for r in dead)
    assert "app2" in dead[0].reason and str(unused_port) in dead[0].reason
    # Every other host was still inspected.
    assert any(r.host == "db1" and r.status == Status.OK for r in outcome.results)
    assert outcome.verdict == Status.ERROR
    stored = [b.prefix for b in list_bundles(load_site(name).evidence, site=name, duty="inspection")]
    assert outcome.bundle.prefix in stored


def test_disk_over_threshold_fails_the_run_after_storing_evidence(prefect_harness, sites_dir):
    def strict(data):
        data["thresholds"] = {"disk_warn_pct": 0.5, "disk_fail_pct": 1}

    name = sites_dir("demo-strict", strict)
    state = inspection(site=name, return_state=True)
    assert state.is_failed()
    outcome = state.result(raise_on_failure=False).outcome
    disk = [r for r in outcome.results if r.check == "disk_usage"]
    assert disk and all(r.status == Status.FAIL for r in disk)
    report = _bundle_file(name, outcome.bundle.prefix, "report.md").decode("utf-8")
    assert "【异常】服务器磁盘使用率" in report
