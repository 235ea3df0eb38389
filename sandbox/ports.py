"""Small process helpers for the sandbox: free ports, polling with a deadline, stopping by PID."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

# One copy of the port/PID helpers, shared with `ebops ui` (sandbox/ may import flows/, not the reverse).
from flows.local_server import free_port, pid_alive, port_open

__all__ = ["free_port", "pid_alive", "port_open", "start_server", "stop_pid", "wait_until"]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `predicate` until it is true; raise TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop_pid(pid: int | None, timeout: float = 10) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL. Tolerant of a process already gone."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_until(lambda: not pid_alive(pid), timeout, f"process {pid} to stop")
    except TimeoutError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 5, f"process {pid} to die after SIGKILL")


def start_server(cmd: list[str], cwd: Path, log_path: Path, ports: list[int], timeout: float, what: str) -> int:
    """Start one of the sandbox's servers in a session of its own, its output appended to
    `log_path`, and wait until every port answers; return its PID. A server that exits first
    raises with its log's tail; one that never answers is stopped, by its PID, before raising."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def up() -> bool:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log_path}:\n{tail}")
        return all(port_open(p) for p in ports)

    try:
        wait_until(up, timeout, f"{what} on ports {sorted(ports)} (log: {log_path})")
    except BaseException:
        stop_pid(proc.pid)
        raise
    return proc.pid
