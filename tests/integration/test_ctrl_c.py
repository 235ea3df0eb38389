"""Ctrl-C in the middle of `ebops inspect` with the temporary Prefect server (issue 19.6, issue 13's fault list).

A real `ebops inspect` subprocess against the sandbox hospital, WITHOUT PREFECT_API_URL, so the
temporary Prefect server is started as a user's would be, in the same process group. The test
holds one e-bill health URL open without answering, so the run is surely in the middle of its
checks when SIGINT reaches the process group (as a terminal sends Ctrl-C). Then: exit 130 within
seconds, one line, no traceback, no process left, nothing stored or saved for the stopped run; an
incomplete bundle left in the outbox is set aside; the next run works and the chain is intact.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
EBOPS = [sys.executable, "-m", "ebops_cli"]  # the `ebops` entry point: duty and sandbox commands
START_DEADLINE_S = 900  # the temporary server migrates a fresh database first: minutes on a busy 2-core box
EXIT_DEADLINE_S = 15


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the temporary server, as a user without a Prefect server has
    env.pop("COLUMNS", None)
    return env


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # exited; only its parent's (or init's) reaping is left


def _wait_for_call(srv: socket.socket, proc: subprocess.Popen, deadline: float, ready=None) -> socket.socket:
    """A request reaching our silent server: the run is where the test wants it. With `ready`, calls
    made before `ready()` holds are refused at once (closed), so the run goes on to the call wanted."""
    srv.settimeout(1.0)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ebops ended ({proc.returncode}) before its checks began")
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        if ready is None or ready():
            return conn
        conn.close()
    pytest.fail("the run never made the call the test waits for")


def _half_written_bundle(outbox: Path, site: str) -> Path:
    """A bundle folder as a run stopped while writing it leaves: files, no manifest, no writer."""
    d = outbox / site / "inspection" / "2026" / "20260101T000000Z_stopped-run"
    d.mkdir(parents=True)
    (d / "report.html").write_text("<html>half", encoding="utf-8")
    (d / ".writing").touch()
    return d


def _silent_server() -> socket.socket:
    """Accepts connections and never answers: whoever calls it waits, mid-run."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    return silent


def _ctrl_c_when_called(site: str, silent: socket.socket, tmp_path: Path, ready=None) -> str:
    """Start `ebops inspect SITE`, send SIGINT to its process group once it calls `silent`, and check
    what every Ctrl-C must give: exit 130 at once, one last line, no traceback, no process left.
    Returns that line."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(EBOPS + ["inspect", site], cwd=REPO, env=_env(), stdout=o, stderr=e,
                                start_new_session=True)  # its own process group, like a terminal's job
    try:
        conn = _wait_for_call(silent, proc, time.monotonic() + START_DEADLINE_S, ready)
        server_pids = _children(proc.pid)
        assert server_pids, "no temporary Prefect server was started (is PREFECT_API_URL set?)"
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        code = proc.wait(timeout=EXIT_DEADLINE_S)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    conn.close()
    stderr = err.read_text()
    said = [line for line in stderr.splitlines() if line.startswith("interrupted")]
    assert code == 130, stderr[-3000:]
    assert elapsed < EXIT_DEADLINE_S
    assert len(said) == 1, stderr[-3000:]
    assert stderr.rstrip("\n").splitlines()[-1] == said[0], stderr[-3000:]  # and nothing after it
    for sign in ("Traceback", "╭─", "ConnectError", "Connection refused"):
        assert sign not in stderr + out.read_text(), stderr[-3000:]
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in server_pids) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the process table, bounded by the deadline
    assert all(_gone(p) for p in server_pids), f"left running: {[p for p in server_pids if not _gone(p)]}"
    return said[0]


def _next_run_stores_and_chain_is_intact(site: str, sites_dir, state: Path) -> dict:
    sites_dir(site, edit=lambda data: data.update(state_dir=str(state)))
    env = _env()
    api = os.environ.get("EBOPS_TEST_PREFECT_API_URL")
    if api:  # the next run needs no temporary server to prove the evidence; save minutes
        env["PREFECT_API_URL"] = api
    nxt = subprocess.run(EBOPS + ["inspect", site, "--format", "json"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=START_DEADLINE_S)
    assert nxt.returncode in (0, 1), nxt.stderr[-3000:]
    doc = json.loads(nxt.stdout)
    assert doc["evidence"]["location"] == "store"
    assert (state / "log_positions.json").exists()  # saved with the stored bundle
    verified = subprocess.run(EBOPS + ["evidence", "verify", "-s", site, "--site-id", site], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = subprocess.run(EBOPS + ["evidence", "list", "-s", site, "--site-id", site, "--format", "json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    assert [(b["sequence"], b["prefix"]) for b in json.loads(listed.stdout)] == [(1, doc["evidence"]["prefix"])]
    return doc


def test_ctrl_c_mid_checks_stops_at_once_and_the_next_run_works(sandbox, sites_dir, tmp_path):
    site = f"ctrlc{uuid.uuid4().hex[:8]}"  # a chain of its own in the shared evidence bucket
    outbox, state = tmp_path / "outbox", tmp_path / "state"
    silent = _silent_server()

    def hang_one_health_url(data: dict) -> None:
        data["health"]["urls"]["issue"] = f"http://127.0.0.1:{silent.getsockname()[1]}/health/issue"
        data["health"]["timeout_s"] = 300
        data["state_dir"] = str(state)

    sites_dir(site, edit=hang_one_health_url)
    said = _ctrl_c_when_called(site, silent, tmp_path)
    silent.close()
    assert "nothing was recorded" in said
    # The run's inspection slot was given back before the temporary server stopped: its database
    # keeps the limit, and no temporary server expires a lease (the next run would wait for hours).
    limit = subprocess.run([sys.executable, "-m", "prefect", "global-concurrency-limit", "inspect",
                            f"ebops:{site}:inspection", "--output", "json"], cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=START_DEADLINE_S)
    assert limit.returncode == 0, limit.stdout[-2000:] + limit.stderr[-2000:]
    assert json.loads(limit.stdout[limit.stdout.index("{"):])["active_slots"] == 0, limit.stdout
    # Nothing of the stopped run counts: no manifest in the outbox, no positions saved.
    assert not list(outbox.glob(f"{site}/*/*/*/manifest.json"))
    assert not (state / "log_positions.json").exists()

    # A run stopped while writing its bundle left a folder without a manifest: the next run sets it
    # aside instead of uploading or chaining it.
    half = _half_written_bundle(outbox, site)
    _next_run_stores_and_chain_is_intact(site, sites_dir, state)
    assert not half.exists()
    assert (outbox / ".incomplete" / half.relative_to(outbox) / "report.html").exists()


def test_ctrl_c_while_the_bundle_is_written_leaves_it_incomplete_not_counted(sandbox, sites_dir, tmp_path):
    site = f"ctrlc{uuid.uuid4().hex[:8]}"
    outbox, state = tmp_path / "outbox", tmp_path / "state"
    silent = _silent_server()

    def store_never_answers(data: dict) -> None:
        data["evidence"]["endpoint"] = f"127.0.0.1:{silent.getsockname()[1]}"
        data["evidence"]["secure"] = False
        data["state_dir"] = str(state)

    sites_dir(site, edit=store_never_answers)
    # The run reads the chain from the store before it writes the bundle (tampering findings go into
    # the report): refuse those reads, and stop the run at its first call once the files are written.
    written = lambda: any(outbox.glob(f"{site}/inspection/*/*/report.html"))  # noqa: E731
    said = _ctrl_c_when_called(site, silent, tmp_path, ready=written)
    silent.close()
    assert "was being written" in said, said
    [folder] = [d for d in outbox.glob(f"{site}/inspection/*/*") if d.is_dir()]
    assert (folder / "report.html").exists() and not (folder / "manifest.json").exists()
    assert not (state / "log_positions.json").exists()

    _next_run_stores_and_chain_is_intact(site, sites_dir, state)  # the real store again
    assert not folder.exists()
    assert (outbox / ".incomplete" / folder.relative_to(outbox) / "report.html").exists()
