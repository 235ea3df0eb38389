"""Inspections through Prefect's work pool: ebops's own CPU per site, sites per CPU-minute, and the
wall time of N sites against one, with a simulated network delay on every SSH round trip.

    EBOPS_SANDBOX_DIR=/work/shared-sbx .venv/bin/python bench/pool_bench.py [--sites 50] [--rtt-ms 30]

Starts its own Prefect server on the sandbox's PostgreSQL (database prefect_fleet_bench_<tag>,
dropped at the end), one process worker polling every bench site's queue, and (with --rtt-ms) a
delaying relay (sandbox/latency.py) in front of the sandbox's three SSH hosts: the bench sites'
host ports and known_hosts point at the relay. Sites are copies of config/sites/demo.yaml with
fresh ids. Each phase creates one ad-hoc inspection run per site and polls the API until all are
final. CPU is read from /proc per process tree and kept apart:
  - worker side (ebops's own cost at a hospital): the worker and the flow-run processes it starts;
  - the Prefect server (the vendor's central cost, shared by all hospitals);
  - the sandbox's servers and the relay (the hospitals' cost and the network: excluded).
On this rig every hospital is the same sandbox on the same 2 cores as ebops: the wall ratio
measures this machine's CPU, a real fleet runs each hospital's worker on its own machine.
Prints figures; not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.fleet_bench import _tree_cpu_s, sandbox_cpu_s  # noqa: E402

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def split_cpu_s(pid: int) -> tuple[float, float]:
    """(the process's own CPU, CPU of its children it has reaped): for the worker, its polling
    against the flow-run processes it started and waited for."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[12])) / tick, (int(f[13]) + int(f[14])) / tick


def start_relay(rtt_ms: float, ssh_ports: dict[str, int]) -> tuple[subprocess.Popen, dict[str, int]]:
    args = [sys.executable, "-m", "sandbox.latency", "--rtt-ms", str(rtt_ms)]
    names = list(ssh_ports)
    for n in names:
        args += ["--map", f"0={ssh_ports[n]}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=str(REPO), start_new_session=True)
    listening = json.loads(proc.stdout.readline())
    by_target = {int(t): int(lp) for lp, t in listening.items()}
    return proc, {n: by_target[ssh_ports[n]] for n in names}


def write_sites(folder: Path, ids: list[str], sandbox: Path, relay: dict[str, int] | None) -> None:
    """demo.yaml copies; with a relay, host ports and a known_hosts copy point at it."""
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    known = None
    if relay:
        svars = yaml.safe_load((sandbox / "site-vars.yaml").read_text())
        lines = (sandbox / "ssh" / "known_hosts").read_text().splitlines()
        for name, port in relay.items():   # the same host key, announced on the relay's port
            lines += [l.replace(f"[127.0.0.1]:{svars[f'ssh_port_{name}']}", f"[127.0.0.1]:{port}")
                      for l in lines if f"[127.0.0.1]:{svars[f'ssh_port_{name}']}" in l]
        known = folder / "known_hosts"
        known.write_text("\n".join(lines) + "\n")
    for sid in ids:
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        data.update(site=sid, name=f"{demo['name']}-{sid}", variables_from=str(sandbox / "site-vars.yaml"))
        data["evidence"]["outbox"] = str(folder / "outbox" / sid)
        if relay:
            for h in data["hosts"]:
                h["port"], h["known_hosts"] = relay[h["name"]], str(known)
        (folder / f"{sid}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def register(client, ids: list[str]) -> dict[str, str]:
    """The monthly inspection deployment of each site on its own queue (what `ebops fleet deploy` does)."""
    from deployments.fleet import deployment_payload, ensure_pool, ensure_queue
    from deployments.serve import deployments

    ensure_pool(client)
    out = {}
    for sid in ids:
        ensure_queue(client, sid)
        dep = deployments(sid)[0]
        out[sid] = client.create_deployment(flow_id=client.create_flow_from_name(dep.flow_name),
                                            **deployment_payload(dep, sid))
    return out


def phase(label: str, client, deps: dict[str, str], ids: list[str], worker_pid: int, server_pid: int,
          relay_pid: int | None, deadline_s: float) -> dict:
    from prefect.states import Scheduled

    w0, s0, sb0 = _tree_cpu_s(worker_pid), _tree_cpu_s(server_pid), sandbox_cpu_s()
    own0, runs0 = split_cpu_s(worker_pid)
    r0 = _tree_cpu_s(relay_pid) if relay_pid else 0.0
    t0 = time.perf_counter()
    runs = [client.create_flow_run_from_deployment(deps[s], parameters={"site": s, "kind": "adhoc"},
                                                   state=Scheduled()).id for s in ids]
    end = time.monotonic() + deadline_s
    while True:
        states = [client.read_flow_run(r).state for r in runs]
        if all(s and s.type.value in FINAL for s in states):
            break
        if time.monotonic() > end:
            raise SystemExit(f"{label}: runs not final within {deadline_s:.0f} s")
        time.sleep(1)  # polling the API with a deadline
    wall = time.perf_counter() - t0
    own1, runs1 = split_cpu_s(worker_pid)
    res = {"worker_polling_cpu_s": own1 - own0, "flow_run_processes_cpu_s": runs1 - runs0,"label": label, "sites": len(ids), "wall_s": wall,
           "worker_cpu_s": _tree_cpu_s(worker_pid) - w0, "server_cpu_s": _tree_cpu_s(server_pid) - s0,
           "sandbox_cpu_s": sandbox_cpu_s() - sb0, "relay_cpu_s": (_tree_cpu_s(relay_pid) - r0) if relay_pid else 0.0,
           "states": {t: sum(1 for s in states if s.type.value == t) for t in {s.type.value for s in states}}}
    n = len(ids)
    ebops = res["worker_cpu_s"] + res["server_cpu_s"]
    print(f"{label}: {n} sites, wall {wall:.1f} s, states {res['states']}; CPU per site: worker side "
          f"{res['worker_cpu_s'] / n:.2f} s (flow-run processes {res['flow_run_processes_cpu_s'] / n:.2f} s, "
          f"worker's polling {res['worker_polling_cpu_s'] / n:.2f} s), Prefect server {res['server_cpu_s'] / n:.2f} s "
          f"(sandbox {res['sandbox_cpu_s'] / n:.2f} s, relay {res['relay_cpu_s'] / n:.2f} s: excluded); "
          f"{60 * n / ebops:.1f} sites per CPU-minute of ebops (worker + server), "
          f"{60 * n / res['worker_cpu_s']:.1f} per CPU-minute of the worker side", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--rtt-ms", type=float, default=30.0, help="added SSH round-trip time (0: none)")
    ap.add_argument("--deadline", type=float, default=1800.0, help="seconds a phase may take")
    args = ap.parse_args()
    if "EBOPS_SANDBOX_DIR" not in os.environ:
        print("set EBOPS_SANDBOX_DIR to a running sandbox", file=sys.stderr)
        return 2
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    base = Path(tempfile.mkdtemp(prefix="ebops-pool-bench-"))
    os.environ["EBOPS_FLEET_DIR"], os.environ["EBOPS_SITES_DIR"] = str(base), str(base / "sites")
    (base / "sites").mkdir()
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.local_server import stop_group
    from sandbox import fleet, manager

    manager.export_credentials()
    svars = yaml.safe_load((manager.root() / "site-vars.yaml").read_text())
    tag = uuid.uuid4().hex[:6]
    warm, one = f"pb{tag}-warm", f"pb{tag}-one"
    many = [f"pb{tag}-{i:02d}" for i in range(1, args.sites + 1)]
    relay_proc, relay = (start_relay(args.rtt_ms, {n: svars[f"ssh_port_{n}"] for n in ("db1", "app1", "files1")})
                         if args.rtt_ms > 0 else (None, None))
    write_sites(base / "sites", [warm, one, *many], manager.root(), relay)
    database = f"prefect_fleet_bench_{tag}"
    server = worker = None
    print(f"{os.cpu_count()} CPUs, sandbox {manager.root()}, sites folder {base}, SSH rtt +{args.rtt_ms:.0f} ms", flush=True)
    try:
        server = fleet.start_server(database=database)
        with temporary_settings({PREFECT_API_URL: server["api"]}), get_client(sync_client=True) as client:
            deps = register(client, [warm, one, *many])
            worker = fleet.start_worker(server["api"], "bench-worker", [warm, one, *many], "hospital-pool",
                                        env={"PREFECT_LOGGING_LEVEL": "WARNING"})
            relay_pid = relay_proc.pid if relay_proc else None
            phase("warm-up (not counted)", client, deps, [warm], worker["pid"], server["pid"], relay_pid, args.deadline)
            r1 = phase("1 site", client, deps, [one], worker["pid"], server["pid"], relay_pid, args.deadline)
            rn = phase(f"{args.sites} sites", client, deps, many, worker["pid"], server["pid"], relay_pid, args.deadline)
        ratio = rn["wall_s"] / r1["wall_s"]
        print(f"ratio of wall, {args.sites} sites / 1 site = {ratio:.2f} (goal <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}")
        (base / "result.json").write_text(json.dumps({"one": r1, "many": rn, "ratio": ratio}, indent=2))
    finally:
        if worker:
            stop_group(worker["pid"], 10)
        if server:
            stop_group(server["pid"], 20)
            fleet.drop_database(database)
        if relay_proc:
            stop_group(relay_proc.pid, 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
