"""`ebops ui` and `ebops schedule` as a user (or a service manager) runs them: real processes, the
real clock, a real Prefect server on a port other than 4200, stopped by SIGTERM and by Ctrl-C.

The demo site is the session's copy wired to the sandbox (fixture sites_dir): serving needs only
its file, no server of the hospital. Each `ebops ui` test starts a Prefect server (its own
PREFECT_HOME, so a fresh SQLite database): about a minute on a loaded 2-core machine.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.local_server import free_port, pid_alive, port_open, stop_group

REPO = Path(__file__).resolve().parents[2]
DEMO_DEPLOYMENTS = {f"{kind}-demo" for kind in ("inspection-monthly", "inspection-quarterly", "holiday-precheck",
                                                 "backup-verification", "invoice-quality", "watch", "evidence-portal",
                                                 "service-report-half", "service-report-monthly", "year-end",
                                                 "migration")}
SERVE_DEADLINE_S = 900   # the first start migrates a fresh SQLite database: minutes under load
STOP_DEADLINE_S = 60


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_SERVER_UI_API_URL", "PREFECT_UI_API_URL")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def _poll(what: str, deadline_s: float, probe, proc: subprocess.Popen, out: Path):
    """Poll `probe` until it returns something truthy; fail naming `what` and the output at the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ebops ui exited with {proc.returncode} before {what}:\n{out.read_text()[-3000:]}")
        try:
            found = probe()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(1)  # polling a server, with a deadline
    pytest.fail(f"no {what} after {deadline_s} s:\n{out.read_text()[-3000:]}")


def test_ebops_schedule_demo_with_the_real_clock(sites_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "flows.cli", "schedule", "demo"], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "demo: pre-holiday checks" in done.stdout and "RRULE (Asia/Shanghai)" in done.stdout
    assert "note:" in done.stdout   # the calendar's gaps (a template year, next year unknown) are said


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ebops_ui_on_its_own_port_serves_the_demo_and_stops_on_a_signal(sites_dir, tmp_path, stop_signal):
    port = free_port()
    out = tmp_path / "ui.out"
    with out.open("wb") as sink:
        # its own session: the signal reaches ebops ui only, as a service manager's does
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "ui", "demo", "--port", str(port)],
                                env=_env(tmp_path), cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    server_pid = None
    try:
        server_pid = int(_poll("server pid", 120, lambda: (m := re.search(r"Prefect server \(pid (\d+)\)",
                                                                            out.read_text())) and m.group(1),
                               proc, out))

        def served() -> set[str] | None:
            r = httpx.post(f"{base}/api/deployments/filter", json={}, timeout=10)
            names = {d["name"] for d in r.json()} if r.status_code == 200 else set()
            return names if names >= DEMO_DEPLOYMENTS else None

        assert _poll("demo deployments served", SERVE_DEADLINE_S, served, proc, out) == DEMO_DEPLOYMENTS
        # the UI in the browser calls the API of this server, not 4200's
        settings = httpx.get(f"{base}/ui-settings", timeout=10).json()
        assert settings["api_url"] == f"{base}/api"

        proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ebops ui still running {STOP_DEADLINE_S} s after {stop_signal.name}:\n{out.read_text()[-3000:]}")
        text = out.read_text()
        assert proc.returncode == 0, text[-3000:]
        assert f"ebops ui: stopped ({stop_signal.name})" in text.strip().splitlines()[-1]
        assert "Traceback" not in text and "never awaited" not in text
        assert not pid_alive(server_pid) and not port_open(port)
    finally:   # whatever failed above, nothing this test started keeps running
        if proc.poll() is None:
            stop_group(proc.pid, timeout=10)
        if server_pid and pid_alive(server_pid):
            stop_group(server_pid, timeout=10)
