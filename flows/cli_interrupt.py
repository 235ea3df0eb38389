"""Ctrl-C during `ebops inspect | precheck | quality | verify-backup`: stop at once, one line, exit 130.

Why not Prefect's own KeyboardInterrupt handling: a terminal sends SIGINT to the whole process
group, so the temporary Prefect server died with it (printing its own shutdown tracebacks); the flow
engine then waited for the running checks to end and retried every state change and log upload
against the dead server for minutes, ending in `ConnectError` tracebacks. So the temporary server
is started in a process group of its own (a Ctrl-C reaches only ebops), and on Ctrl-C, SIGTERM or
SIGHUP ebops says what happened in one line, stops the server and ends at once.

Ending at any instant is safe because of how the evidence is written, not because of this handler:
the manifest is written last and atomically (an outbox bundle without one is incomplete, and the
next run sets it aside), the chain head is replaced atomically, and log positions are saved only
after the bundle is stored (a run stopped before that re-reads the same lines next time).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterator

# The bundles this process began: prefix -> "writing" | "store" | "outbox", kept by the flows'
# store_evidence (flows/common.py), read here to say in one line what of an interrupted run is kept.
EVIDENCE_IN_PROCESS: dict[str, str] = {}

# 128 + the signal, what a shell reports for a command it stopped (130 for Ctrl-C).
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
_MARK_CRASHED_WITHIN_S = 3.0
_ALSO_ON_STOP: list[Callable[[], Any]] = []  # what a command must still undo when stopped (the demo's sandbox)


def _site_of(params: dict[str, Any]) -> str:
    form = params.get("params")
    return str(getattr(form, "site", None) or params.get("site") or "?")


def what_happened(label: str, site: str, why: str = "Ctrl-C") -> str:
    """The one line: what of the run is kept, from the bundles this process began."""

    head = f"interrupted ({why}): the {label} of {site} was stopped"
    if not EVIDENCE_IN_PROCESS:
        return f"{head} before its evidence was written; nothing was recorded, log positions unchanged"
    prefix, where = list(EVIDENCE_IN_PROCESS.items())[-1]
    if where == "writing":
        return (f"{head} while its evidence bundle {prefix} was being written: it is complete in the outbox "
                f"(the next run uploads it) or incomplete (the next run sets it aside); log positions unchanged")
    return f"{head} after its evidence bundle {prefix} was stored ({where})"


def _mark_run_crashed() -> None:
    """Best effort, bounded: a shared Prefect server would otherwise show the run Running for ever
    (the temporary one is usually gone already)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    run_id = ctx.flow_run.id

    def mark() -> None:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Crashed

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(run_id, Crashed(message="interrupted by Ctrl-C (SIGINT)"), force=True)
        except Exception:  # noqa: BLE001 - the server may be gone; the exit must not wait for it
            pass

    t = threading.Thread(target=mark, daemon=True)
    t.start()
    t.join(_MARK_CRASHED_WITHIN_S)


def _stop_temporary_server() -> None:
    """The temporary server is our child in a group of its own: it ends with us. Killed, not asked:
    its graceful shutdown prints tracebacks of cancelled tasks, and its database is a throwaway."""
    server_mod = sys.modules.get("prefect.server.api.server")
    if server_mod is None:
        return
    for srv in list(getattr(server_mod.SubprocessASGIServer, "_instances", {}).values()):
        proc = getattr(srv, "server_process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def start_temporary_server_apart() -> None:
    """Make Prefect start its temporary server in a process group of its own (once per process).

    Prefect 3.8 starts it with a bare `subprocess.Popen` in `SubprocessASGIServer._run_uvicorn_command`;
    the module's `subprocess` name is swapped for that one call only, so nothing else is affected.
    """
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return  # a Prefect server of its own: no temporary one (and no seconds spent importing its code)
    from prefect.server.api import server as server_mod

    cls = server_mod.SubprocessASGIServer
    original = cls._run_uvicorn_command
    if getattr(original, "_ebops_apart", False):
        return

    def popen_apart(*args: Any, **kwargs: Any) -> subprocess.Popen:
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(*args, **kwargs)

    def run_apart(self):  # noqa: ANN001, ANN202
        server_mod.subprocess = types.SimpleNamespace(Popen=popen_apart, TimeoutExpired=subprocess.TimeoutExpired)
        try:
            return original(self)
        finally:
            server_mod.subprocess = subprocess

    run_apart._ebops_apart = True  # type: ignore[attr-defined]
    cls._run_uvicorn_command = run_apart


@contextmanager
def also_on_stop(undo: Callable[[], Any]) -> Iterator[None]:
    """Run `undo` too if a signal stops the process inside this block (os._exit skips `finally`)."""
    _ALSO_ON_STOP.append(undo)
    try:
        yield
    finally:
        _ALSO_ON_STOP.remove(undo)


def _undo_all() -> None:
    for undo in reversed(_ALSO_ON_STOP):
        try:
            undo()
        except Exception:  # noqa: BLE001 - the exit goes on; each undo is best effort
            pass


@contextmanager
def stop_on_ctrl_c(label: str, params: dict[str, Any]) -> Iterator[None]:
    """While a flow runs in this (main) thread: Ctrl-C (SIGTERM, SIGHUP) prints one line and ends
    the process with 128 + the signal (130 for Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    EVIDENCE_IN_PROCESS.clear()  # this run's bundles only (`ebops demo` runs three duties)
    start_temporary_server_apart()

    def on_signal(signum, frame) -> None:  # noqa: ARG001
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not break the exit
            signal.signal(sig, signal.SIG_IGN)
        try:
            logging.disable(logging.CRITICAL)  # Prefect's threads would log the server's end after our line
            sys.stderr.write(what_happened(label, _site_of(params), STOP_SIGNALS.get(signum, str(signum))) + "\n")
            sys.stderr.flush()
            # The one line is said; what other threads still print while we end (Prefect's log
            # worker writes to stderr directly) would only bury it.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stderr.fileno())
            _mark_run_crashed()
            _undo_all()  # before the server stops: an undo may talk to it (a duty's slot given back)
            _stop_temporary_server()
        finally:
            try:
                sys.stdout.flush()
            finally:
                os._exit(128 + signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
