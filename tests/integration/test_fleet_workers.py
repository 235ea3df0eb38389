"""Many hospitals on Prefect's own distribution, end to end: a real Prefect server on the sandbox's
PostgreSQL (a database of its own), the process work pool, two workers, two sites.

Site A's queue is polled by worker 1 and by worker 2 (its standby); site B's only by worker 2. Every
duty of both sites is scheduled through the server and must be picked up by a worker of its
site's queue, end in a final state with its evidence in that site's chain. Then an inspection of A
is started while the test holds A's inspection slot (so the run is mid-run, Running and heart-
beating, at a known point, without sleeping), the worker that picked it and the run's process are
killed with SIGKILL (the machine is lost: nothing reports); the crash automation must mark the run
Crashed, the re-run automation schedule it again, the other worker run it to the end, and every
chain of both sites must verify with no fork.

Synchronisation is by polling Prefect's API (and the workers' own log lines naming the runs they
submit) with deadlines; nothing sleeps to wait for something to happen.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = [pytest.mark.sandbox, pytest.mark.fleet]

REPO = Path(__file__).resolve().parents[2]
DUTIES = {  # deployment prefix -> (evidence duty, parameters that keep the run short and harmless)
    "inspection-monthly": ("inspection", {"kind": "adhoc"}),
    "inspection-quarterly": ("inspection", {}),
    "holiday-precheck": ("holiday_precheck", {"fresh_backup": "plan"}),
    "backup-verification": ("backup_verification", {"mode": "plan"}),
    "invoice-quality": ("invoice_quality", {"rules": ["DQ06"]}),
    "watch": ("watch", {}),  # its evidence is the day bundle sealed after midnight: no bundle per run
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_DEADLINE_S = 900      # ten flow runs on 2 shared cores: each process imports Prefect and the flows
CRASH_DEADLINE_S = 300    # heartbeat 30 s + silence 75 s + the automation's evaluation


def _poll(what: str, fn, deadline_s: float, every_s: float = 1.0):
    """fn() until it returns something truthy, or fail naming `what` (polling with a deadline)."""
    end = time.monotonic() + deadline_s
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(every_s)


def _submitted_by(workers: list[dict], run_id) -> list[str]:
    """Names of the workers that ran this flow run, from their own logs: a worker that polled it
    too but lost the race for its Pending state logs that it aborted the submission."""
    names = []
    for w in workers:
        text = Path(w["log"]).read_text(errors="replace")
        tried = text.count(f"submitting flow run '{run_id}'")
        aborted = text.count(f"Aborted submission of flow run '{run_id}'")
        names += [w["name"]] * (tried - aborted)
    return names


@pytest.fixture(scope="module")
def fleet_env(sandbox, tmp_path_factory):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.fleet import deploy
    from sandbox import fleet, manager

    base = tmp_path_factory.mktemp("fleet")
    saved = {k: os.environ.get(k) for k in ("EBOPS_FLEET_DIR", "EBOPS_SITES_DIR")}
    os.environ["EBOPS_FLEET_DIR"], os.environ["EBOPS_SITES_DIR"] = str(base), str(base / "sites")
    tag = uuid.uuid4().hex[:6]
    sites = [f"fleet-{tag}-a", f"fleet-{tag}-b"]
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    (base / "sites").mkdir()
    for s in sites:   # each site its own id, outbox and state: its own evidence chains and slots
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        data.update(site=s, name=f"{demo['name']}-{s[-1]}", variables_from=str(manager.root() / "site-vars.yaml"))
        data["evidence"]["outbox"] = str(base / "outbox" / s)
        (base / "sites" / f"{s}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    manager.export_credentials()
    database = f"prefect_fleet_{tag}"
    started: list[dict] = []
    server = None
    try:
        server = fleet.start_server(database=database)
        with temporary_settings({PREFECT_API_URL: server["api"]}):
            ids = deploy(sites)
            started.append(fleet.start_worker(server["api"], "worker-1", [sites[0]], "hospital-pool"))
            started.append(fleet.start_worker(server["api"], "worker-2", [sites[1], sites[0]], "hospital-pool"))
            yield {"api": server["api"], "sites": sites, "ids": ids, "workers": started, "base": base}
    finally:
        for w in started:
            fleet.stop_group(w["pid"], timeout=10)
        if server:
            fleet.stop_group(server["pid"], timeout=20)
            fleet.drop_database(database)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _state(client, run_id):
    return client.read_flow_run(run_id)


def test_every_duty_of_two_sites_runs_on_its_sites_worker_and_a_lost_worker_is_rerun(fleet_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.states import Scheduled

    from config.settings import load_site
    from flows.duty_slot import slot_name
    from tasks.evidence.verify import list_bundles, verify

    site_a, site_b = fleet_env["sites"]
    workers = {w["name"]: w for w in fleet_env["workers"]}
    polls = {site_a: {"worker-1", "worker-2"}, site_b: {"worker-2"}}

    with get_client(sync_client=True) as client:
        # 1. Every deployment of both sites is on the server with its schedule, on its site's queue
        #    (the pre-holiday and verification dates as RRULE sets of the calendar's days).
        all_ids = [d for s in fleet_env["sites"] for d in fleet_env["ids"][s].values()]
        prefixes = {n[: -len(s) - 1] for s in fleet_env["sites"] for n in fleet_env["ids"][s]}
        # every served deployment is registered; the duties below are run (the evidence portal and the
        # year-end plan have tests of their own: they add nothing to what this test proves)
        assert set(DUTIES) <= prefixes and len(all_ids) == 2 * len(prefixes), sorted(prefixes)
        for site in fleet_env["sites"]:
            for name, dep_id in fleet_env["ids"][site].items():
                dep = client.read_deployment(dep_id)
                assert dep.work_queue_name == site and dep.work_pool_name == "hospital-pool", name
                if name.startswith("migration"):   # by hand only, after its approvals: no schedule
                    assert not dep.schedules, name
                    continue
                assert dep.schedules and all(s.active for s in dep.schedules), name
                if name.startswith(("holiday-precheck", "backup-verification")):
                    assert "RDATE:" in dep.schedules[0].schedule.rrule, name

        # 2. A run of every duty at both sites, due now.
        runs = {}
        for site in fleet_env["sites"]:
            for name, dep_id in fleet_env["ids"][site].items():
                prefix = name[: -len(site) - 1]
                if prefix not in DUTIES:
                    continue
                duty, extra = DUTIES[prefix]
                params = {"site": site, **extra} if prefix.startswith(("inspection", "watch")) else {"params": {"site": site, **extra}}
                fr = client.create_flow_run_from_deployment(dep_id, parameters=params, state=Scheduled())
                runs[fr.id] = (site, prefix, duty)

        def all_final():
            states = {rid: _state(client, rid).state for rid in runs}
            return states if all(s and s.type.value in FINAL for s in states.values()) else None
        states = _poll(f"all {len(runs)} runs final", all_final, RUN_DEADLINE_S, 3)

        for rid, (site, prefix, duty) in runs.items():
            st = states[rid]
            fr = _state(client, rid)
            assert fr.work_queue_name == site, (prefix, fr.work_queue_name)
            by = _submitted_by(fleet_env["workers"], rid)
            assert len(by) == 1 and by[0] in polls[site], (site, prefix, by)
            # A verdict may fail the run (plan-only steps are SKIPPED, never passed); a crash may not.
            assert st.type.value in ("COMPLETED", "FAILED"), (site, prefix, st.type, st.message)
        for site in fleet_env["sites"]:
            cfg = load_site(site)
            for duty in {d for _, _, d in runs.values()} - {"watch"}:
                n = sum(1 for s, _, d in runs.values() if s == site and d == duty)
                assert len(list_bundles(cfg.evidence, site=site, duty=duty)) == n, (site, duty)

        # 3. A lost worker: hold A's inspection slot, start an inspection of A, kill its worker.
        name = slot_name(site_a, "inspection")
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except Exception:  # noqa: BLE001 - the earlier runs made it
            pass
        lease = client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency",
                                                              lease_duration=900).json()["lease_id"]
        dep_id = fleet_env["ids"][site_a][f"inspection-monthly-{site_a}"]
        victim = client.create_flow_run_from_deployment(dep_id, parameters={"site": site_a, "kind": "adhoc"},
                                                        state=Scheduled()).id

        def heartbeating():
            if _state(client, victim).state.type.value != "RUNNING":
                return None
            r = httpx.post(f"{fleet_env['api']}/events/filter", json={
                "filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                           "resource": {"id": [f"prefect.flow-run.{victim}"]}}}, timeout=10)
            return r.status_code == 200 and r.json().get("events")
        _poll("the victim run Running and heartbeating (waiting for the slot the test holds)", heartbeating, 300, 1)
        first = _submitted_by(fleet_env["workers"], victim)
        assert len(first) == 1
        killed = workers[first[0]]
        # The machine is lost: the flow-run process (a session of its own, which would otherwise
        # notice its worker's end on the control channel and report itself Crashed) and the worker,
        # both with SIGKILL: nothing reports, only the missing heartbeat tells.
        infra = _state(client, victim).infrastructure_pid
        assert infra, "the worker did not record the flow run's process"
        os.kill(int(str(infra).rsplit(":", 1)[-1]), signal.SIGKILL)
        os.killpg(killed["pid"], signal.SIGKILL)
        client.release_concurrency_slots_with_lease(lease)

        def crashed_then_final():
            hist = [s.type.value for s in client.read_flow_run_states(victim)]
            return hist if "CRASHED" in hist and hist[-1] in ("COMPLETED", "FAILED") else None
        hist = _poll("the victim marked Crashed and run again to the end", crashed_then_final,
                     CRASH_DEADLINE_S + RUN_DEADLINE_S / 3, 3)
        crashed = next(s for s in client.read_flow_run_states(victim) if s.type.value == "CRASHED")
        print(f"victim {victim}: states {hist}; crashed: {crashed.message}")
        assert "no heartbeat" in (crashed.message or ""), crashed.message   # ebops-crashed-on-silence did it
        assert _state(client, victim).run_count >= 2, hist
        by = _submitted_by(fleet_env["workers"], victim)
        assert killed["name"] in by and len(by) == 2 and set(by) == {"worker-1", "worker-2"}, by

    # 4. Every chain of both sites intact: hashes, signatures, links, one claim per sequence.
    for site in fleet_env["sites"]:
        cfg = load_site(site)
        report = verify(cfg.evidence, site=site)
        errors = [p for p in report.problems if p.severity == "error"]
        assert report.ok and not errors, (site, errors)
        assert report.bundles_checked >= 5


# Prefect 3.8.8's scheduler service fails every loop with SQLAlchemy 2.1 ("Can't evaluate bulk DML
# statement") and then makes no runs: the lock holds SQLAlchemy 2.0 (pyproject.toml) and this test
# proves the server's schedules make runs of every deployment.
def test_the_servers_scheduler_makes_runs_of_every_deployment(fleet_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    # the year-end plan's next run (the first workday of next December) lies beyond the scheduler's
    # horizon (PREFECT_API_SERVICES_SCHEDULER_MAX_SCHEDULED_TIME, 100 days): it has no run yet
    all_ids = {d for s in fleet_env["sites"] for n, d in fleet_env["ids"][s].items()
               if not n.startswith(("year-end", "migration"))}   # migration: by hand only
    log = Path(fleet_env["base"]) / "server.log"

    def made():
        assert "Can't evaluate bulk DML statement" not in log.read_text(errors="replace"), \
            "the scheduler service failed (server.log)"
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(all_ids))),
                                         limit=200)
        return {str(r.deployment_id) for r in runs if r.auto_scheduled} >= all_ids
    _poll(f"the server's scheduler making runs of all {len(all_ids)} deployments", made, 150, 5)
