"""Ctrl-C during `ebops inspect | precheck | quality | verify-backup`: stop at once, one line, exit 130.

Why not Prefect's own KeyboardInterrupt handling: a terminal sends SIGINT to the whole process
group, so the temporary Prefect server dies with it; the flow engine then waits for the running
checks to end and retries every state change and log upload against the dead server for minutes,
ending in `ConnectError` tracebacks. So the process ends here, at once.

Ending at any instant is safe because of how the evidence is written, not because of this handler:
the manifest is written last and atomically (an outbox bundle without one is incomplete, and the
next run sets it aside), the chain head is replaced atomically, and log positions are saved only
after the bundle is stored (a run stopped before that re-reads the same lines next time).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
_MARK_CRASHED_WITHIN_S = 3.0


def _site_of(params: dict[str, Any]) -> str:
    form = params.get("params")
    return str(getattr(form, "site", None) or params.get("site") or "?")


def what_happened(label: str, site: str) -> str:
    """The one line: what of the run is kept, from the bundles this process began."""
    from flows.common import EVIDENCE_IN_PROCESS

    head = f"interrupted (Ctrl-C): the {label} of {site} was stopped"
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
    """The temporary server is our child: stop it too when the signal reached only this process."""
    server_mod = sys.modules.get("prefect.server.api.server")
    if server_mod is None:
        return
    for srv in list(getattr(server_mod.SubprocessASGIServer, "_instances", {}).values()):
        proc = getattr(srv, "server_process", None)
        if proc is None or proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            proc.kill()


@contextmanager
def stop_on_ctrl_c(label: str, params: dict[str, Any]) -> Iterator[None]:
    """While a flow runs in this (main) thread: Ctrl-C prints one line and ends the process with 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the exit
        try:
            sys.stderr.write(what_happened(label, _site_of(params)) + "\n")
            sys.stderr.flush()
            _mark_run_crashed()
            _stop_temporary_server()
        finally:
            try:
                sys.stdout.flush()
            finally:
                os._exit(INTERRUPTED_EXIT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
