"""Many hospitals on Prefect's own distribution: one work pool, a work queue per site, the
deployments of deployments/serve.py registered on a Prefect server, and the two automations that
turn a lost worker into a re-run.

A hospital's network is closed: its worker polls the server (`prefect worker start --pool POOL
--work-queue SITE`) and runs each flow run in a process of its own. A worker (or its machine)
that dies mid-run leaves the run Running on the server; Prefect's answer (3.8 OSS) is the flow
run heartbeat plus an automation:

1. `ebops-crashed-on-silence`: a Running flow run that sent a heartbeat and then nothing for
   `silence_s` (no further heartbeat, no final state) is set Crashed.
2. `ebops-rerun-crashed`: a flow run that entered Crashed is scheduled again (the same run, its
   parameters kept); whichever worker polls its queue picks it up. A second worker at the same
   hospital (standby) takes over; with one worker, the run waits for it to come back.

Why this is safe for the evidence: a run thought dead may still be alive (a network cut); its
re-run then waits for the duty's slot (flows/common.duty_slot, leases expire 300 s after the last
renewal), and the chain's create-only sequence claims stop two bundles taking one place.
Flow `retries` would not do: they run inside the process that died.
"""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectAlreadyExists
from prefect.client.schemas.objects import StateType

from deployments.prefect_yaml import POOL, fleet_parameters

REPO = Path(__file__).resolve().parent.parent
HEARTBEAT_S = 30          # PREFECT_FLOWS_HEARTBEAT_FREQUENCY for the workers (Prefect's minimum)
SILENCE_S = 75            # two heartbeats missed and some: a busy worker is not declared dead
CRASH_AUTOMATION = "ebops-crashed-on-silence"
RERUN_AUTOMATION = "ebops-rerun-crashed"
FINAL_EVENTS = {f"prefect.flow-run.{s}" for s in ("Completed", "Failed", "Cancelled", "Crashed", "Cancelling")}


def ensure_pool(client, pool: str = POOL) -> None:
    try:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    except ObjectAlreadyExists:
        pass


def ensure_queue(client, site: str, pool: str = POOL) -> None:
    try:
        client.create_work_queue(name=site, work_pool_name=pool)
    except ObjectAlreadyExists:
        pass


def automations(silence_s: float = SILENCE_S) -> list[AutomationCore]:
    crashed = AutomationCore(
        name=CRASH_AUTOMATION,
        description="ebops: a flow run silent for longer than its heartbeat allows is Crashed (its worker died)",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive, threshold=1, within=timedelta(seconds=silence_s)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, force=True,
                                    message=f"no heartbeat for {silence_s:.0f} s: the worker or its machine is gone")])
    rerun = AutomationCore(
        name=RERUN_AUTOMATION,
        description="ebops: a crashed flow run is scheduled again for any worker of its queue",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            expect={"prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive, threshold=1, within=timedelta(0)),
        actions=[ChangeFlowRunState(state=StateType.SCHEDULED, name="AwaitingRetry", force=True,
                                    message="re-run after a crash (ebops-rerun-crashed)")])
    return [crashed, rerun]


def ensure_automations(client, silence_s: float = SILENCE_S) -> None:
    """(Re)create the two automations by name, so a changed definition replaces the old one."""
    for a in automations(silence_s):
        for old in client.read_automations_by_name(a.name):
            client.delete_automation(old.id)
        client.create_automation(a)


def deployment_payload(dep, site: str, pool: str = POOL, home: Path = REPO) -> dict:
    """What prefect.yaml's entry says, as the API's create_deployment takes it."""
    return dict(name=dep.name, schedules=dep.schedules, parameters=fleet_parameters(dep), description=dep.description,
                work_pool_name=pool, work_queue_name=site, tags=list(dep.tags), entrypoint=dep.entrypoint,
                parameter_openapi_schema=dep._parameter_openapi_schema.model_dump(exclude_unset=True),
                enforce_parameter_schema=dep.enforce_parameter_schema,
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(home)}}])


def deploy(sites: list[str], pool: str = POOL, today: date | None = None, home: Path = REPO,
           silence_s: float = SILENCE_S) -> dict[str, dict[str, str]]:
    """Register every site's deployments on the server of PREFECT_API_URL (upsert by name): the
    pool, one queue per site, the crash automations. Returns {site: {deployment name: id}}."""
    from deployments.serve import deployments

    done: dict[str, dict[str, str]] = {}
    with get_client(sync_client=True) as client:
        ensure_pool(client, pool)
        ensure_automations(client, silence_s)
        for site in sites:
            ensure_queue(client, site, pool)
            done[site] = {}
            for dep in deployments(site, today):
                flow_id = client.create_flow_from_name(dep.flow_name)
                dep_id = client.create_deployment(flow_id=flow_id, **deployment_payload(dep, site, pool, home))
                done[site][dep.name] = str(dep_id)
    return done
