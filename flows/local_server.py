"""A local Prefect server for `ebops ui`: ports, start, wait until healthy, stop by PID.

The port and PID helpers live here, not in sandbox/ (flows must not depend on the demo hospital);
sandbox/ports.py imports them from here, so there is one copy.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 900  # the first start migrates the server's SQLite database: minutes on 2 cores
STOP_TIMEOUT_S = 30


class ServerFailed(RuntimeError):
    """The Prefect server exited or did not answer in time (the message names its log)."""


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int | None) -> bool:
    """Running and not a zombie (a zombie child of ours is reaped here); no PID is not running."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:   # not our child: read its state
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
        except OSError:
            return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)  # polling a process's exit, with a deadline
    return True


def stop_group(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group led by `pid` (started with start_new_session), SIGKILL after
    `timeout`. By its PID only: whatever else runs on the machine is left alone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        if _wait_gone(pid, timeout if sig == signal.SIGTERM else 5):
            return


def server_env(port: int) -> dict[str, str]:
    """The server's environment: its port, and the API URL its UI calls. Without the last, the UI
    of a server on another port than 4200 calls http://127.0.0.1:4200/api and shows nothing."""
    api = f"http://127.0.0.1:{port}/api"
    return dict(os.environ, PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_API_HOST="127.0.0.1",
                PREFECT_SERVER_API_PORT=str(port), PREFECT_SERVER_UI_API_URL=api, PREFECT_API_URL=api)


def start_server(port: int, log: Path) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:port, in its own session (Ctrl-C in the terminal reaches
    only us; we stop it by its PID), output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=server_env(port), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(api: str, proc: subprocess.Popen, log: Path, timeout: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"prefect server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)  # polling a server's readiness, with a deadline
    raise ServerFailed(f"prefect server not healthy after {timeout:.0f} s; see {log}")
