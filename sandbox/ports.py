"""Small process helpers for the sandbox: free ports, polling with a deadline, stopping by PID."""
from __future__ import annotations

import os
import signal
import time
from typing import Callable

# One copy of the port/PID helpers, shared with `ebops ui` (sandbox/ may import flows/, not the reverse).
from flows.local_server import free_port, pid_alive, port_open

__all__ = ["free_port", "pid_alive", "port_open", "stop_pid", "wait_until"]


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
