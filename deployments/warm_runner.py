"""A Prefect Runner that runs the light deployments (the watch) inside the serving process.

Prefect's Runner starts every flow run of a served deployment in a new Python process
(`python -m prefect.engine`), which imports Prefect and the project again: measured 3.3-3.5
CPU-s per run on this machine,
while the watch's cycle itself costs about 0.06 CPU-s (0.16 as an in-process flow run). Every 5
minutes that start alone would be 1.2 % of a core, over the watch's budget of 1 % (README, "The
watch"). The serving process has everything imported already, so the deployments named in
`in_process` run here, in a worker thread, through Prefect's own flow engine (`run_flow` with the scheduled
flow run: same states, logs and UI as a spawned run). Every other deployment is spawned as usual:
the duties that take minutes keep a process of their own.

What is given up for the in-process runs: cancelling one from the UI does not kill it (the
Runner's cancellation kills the run's process, and that process is the server of all the
deployments, so the handle given to the Runner has a termination scope that never signals); a cycle is bounded by its
own deadlines instead (HTTP timeout, query deadlines, the store's timeouts), about a minute at
worst. This relies on the Runner's starter resolver (`_scheduled_run_poller._resolve_starter`) and
ProcessHandle of the pinned Prefect (3.8.8, requirements.lock);
tests/integration/test_watch_served.py runs a served watch through it.
"""
from __future__ import annotations

import contextvars
import logging
import os

import anyio
import anyio.abc
from prefect.flow_engine import run_flow
from prefect.runner import Runner
from prefect.runner._process_manager import ProcessHandle

log = logging.getLogger("ebops.deployments")


class _ThisProcess:
    """Stands for the run's "process": this one. returncode stays None until the run ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.returncode: int | None = None

    @property
    def exitcode(self) -> int | None:
        return self.returncode


class _NeverKill:
    """The termination scope of an in-process run: a cancellation must not signal this process,
    which serves every deployment; it is logged, and the run ends by its own deadlines."""

    wait_after_graceful_kill = False

    def __init__(self, proc: _ThisProcess) -> None:
        self._proc = proc

    def is_alive(self, pid: int) -> bool:
        return self._proc.returncode is None

    def graceful_kill(self, pid: int) -> None:
        log.warning("an in-process run (the watch) cannot be killed; it ends by its own deadlines")

    hard_kill = graceful_kill

    def close(self) -> None:
        pass


class InProcessStarter:
    """A Prefect ProcessStarter that runs the flow in a worker thread of this process."""

    def __init__(self, flow) -> None:
        self._flow = flow

    async def start(self, flow_run, task_status: anyio.abc.TaskStatus = anyio.TASK_STATUS_IGNORED) -> None:
        proc = _ThisProcess()
        task_status.started(ProcessHandle(proc, termination_scope=_NeverKill(proc)))
        ctx = contextvars.copy_context()  # the serving process's Prefect settings (its API URL)

        def run() -> int:
            # return_type="state": a Failed run (a FAIL verdict) is a finished run, not a crash.
            state = run_flow(self._flow, flow_run=flow_run, return_type="state")
            return 0 if state is not None and state.is_final() else 1

        try:
            proc.returncode = await anyio.to_thread.run_sync(ctx.run, run)
        except Exception:  # noqa: BLE001 - the engine records the run's own failures; this is anything else
            log.exception("in-process flow run %s of %s did not finish", flow_run.id, self._flow.name)
            proc.returncode = 1


class WarmRunner(Runner):
    """A Runner whose deployments named in `in_process` (deployment name -> its flow) run in this
    process (see the module's doc). By deployment name, because a served deployment's flow object
    is not kept by the Runner (it would start `python -m prefect.engine`, which imports it again)."""

    def __init__(self, *args, in_process: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_process = dict(in_process or {})

    async def __aenter__(self):
        await super().__aenter__()
        poller = self._scheduled_run_poller
        spawned = poller._resolve_starter

        def resolve(flow_run):
            name = self._deployment_registry.get_deployment_name(flow_run.deployment_id) if flow_run.deployment_id else None
            if name in self._in_process:
                return InProcessStarter(self._in_process[name])
            return spawned(flow_run)

        poller._resolve_starter = resolve
        return self
