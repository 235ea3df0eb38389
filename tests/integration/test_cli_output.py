"""What a user sees from `ebops` when its output goes to a pipe or a log (issue 13, items 6, 7, 10, 11).

Real `ebops` subprocesses against the sandbox hospital: a FAIL verdict is a table and one summary
line with exit code 1, not a traceback; nothing is cut at 80 columns; `--format json|tsv` give
whole keys; no Prefect warning about task timeouts that cannot work.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

EBOPS = [sys.executable, "-m", "ebops_cli"]  # the `ebops` entry point: duty and sandbox commands
REPO = Path(__file__).resolve().parents[2]
CRASH_SIGNS = ("Traceback", "╭─", "VerdictFailed(")  # a Python or a rich traceback


def ebops(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`ebops ARGS` with stdout and stderr to pipes (not a terminal), as under cron or `| tee`."""
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    api = os.environ.get("EBOPS_TEST_PREFECT_API_URL")
    if api:  # developer shortcut (tests/conftest.py): the shared server instead of a temporary one
        env["PREFECT_API_URL"] = api
    return subprocess.run(EBOPS + list(args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _disk_fails(site: dict) -> None:
    site.setdefault("thresholds", {}).update(disk_warn_pct=1, disk_fail_pct=2)


def test_fail_verdict_is_a_table_and_one_summary_line_not_a_traceback(sandbox, sites_dir):
    sites_dir("demo", edit=_disk_fails)
    run = ebops("inspect", "demo")
    both = run.stdout + run.stderr
    assert run.returncode == 1, both[-3000:]
    assert not [s for s in CRASH_SIGNS if s in both], both[-3000:]
    summaries = [line for line in run.stdout.splitlines() if line.startswith("inspection demo: verdict FAIL — ")]
    assert len(summaries) == 1, run.stdout[-3000:]
    assert "服务器磁盘使用率 db1" in summaries[0] and "(evidence demo/inspection/" in summaries[0]
    # 13.10: off a terminal nothing is folded: a full mount path and its Chinese title share a line,
    # and the bundle's key is whole on one line.
    mount = str(Path(os.environ["EBOPS_SANDBOX_DIR"]) / "hosts" / "db1" / "u01")
    assert any("服务器磁盘使用率" in line and mount in line and "FAIL" in line for line in run.stdout.splitlines())
    [bundle_line] = [line for line in run.stdout.splitlines() if line.startswith("evidence bundle: ")]
    prefix = bundle_line.split()[2]
    assert prefix.startswith("demo/inspection/") and prefix.endswith("/") and len(prefix) > 70
    # 13.11: no warning a user cannot act on.
    assert "Timeout of" not in both and "worker thread" not in both


def test_formats_for_scripts_and_evidence_list_keep_keys_whole(sandbox, sites_dir):
    run = ebops("inspect", "demo", "--format", "json")
    assert run.returncode in (0, 1), run.stderr[-3000:]
    doc = json.loads(run.stdout)  # stdout is the JSON document only; logs and the summary go to stderr
    prefix = doc["evidence"]["prefix"]
    assert doc["site"] == "demo" and doc["verdict"] in ("OK", "WARN", "FAIL", "ERROR")
    assert {r["check"] for r in doc["results"]} >= {"disk_usage", "bill_stock"}
    assert "inspection demo: verdict" in run.stderr
    assert "Timeout of" not in run.stderr

    listed = ebops("evidence", "list", "-s", "demo", "--format", "tsv", timeout=120)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split("\t") == ["#", "prefix", "period", "verdict", "started", "files", "manifest sha256"]
    row = next(r.split("\t") for r in rows if prefix in r)
    assert row[1] == prefix and len(row[6]) == 64  # the whole manifest hash, not a prefix of it

    table = ebops("evidence", "list", "-s", "demo", timeout=120)
    assert table.returncode == 0, table.stderr
    assert any(prefix in line and row[6] in line for line in table.stdout.splitlines()), table.stdout[-2000:]


def test_a_real_crash_keeps_its_traceback_and_says_where_the_log_is(sandbox, sites_dir, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the outbox's parent folder should be")

    def outbox_under_a_file(site: dict) -> None:
        site["evidence"]["outbox"] = str(blocker / "outbox")

    sites_dir("demo", edit=outbox_under_a_file)
    run = ebops("inspect", "demo")
    assert run.returncode == 2, run.stderr[-3000:]
    assert "Traceback" in run.stderr  # a crash is not hidden
    [line] = [line for line in run.stderr.splitlines() if line.startswith("inspection did not finish: ")]
    assert "NotADirectoryError" in line or "FileExistsError" in line, line
    assert "prefect flow-run logs " in run.stderr and "hint:" in run.stderr


def test_sandbox_status_off_a_terminal_prints_paths_whole(sandbox):
    """`ebops sandbox status | cat`: the postgres row's bin_dir is a path to copy, not cut with "…"."""
    bin_dir = sandbox["state"]["postgres"]["bin_dir"]
    run = ebops("sandbox", "status", timeout=120)
    assert run.returncode == 0, run.stderr
    assert bin_dir in run.stdout and "…" not in run.stdout, run.stdout
    tsv = ebops("sandbox", "status", "--format", "tsv", timeout=120)
    assert tsv.stdout.splitlines()[0].split("\t") == ["component", "running", "pid", "ports"]
    assert any(r.startswith("postgres\tyes\t") and bin_dir in r for r in tsv.stdout.splitlines()), tsv.stdout
