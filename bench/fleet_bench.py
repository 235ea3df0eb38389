"""Wall time of a fleet inspection: one site against N sites, against a running sandbox.

    EBOPS_SANDBOX_DIR=/tmp/ebops-dev .venv/bin/python bench/fleet_bench.py [--sites 20] [--max-sites N]

The N sites are copies of config/sites/demo.yaml with their own `site:` ids ("bench-NN"), written
to a temporary EBOPS_SITES_DIR and pointing at the sandbox's site-vars.yaml; evidence goes to the
sandbox's S3 under those ids (outbox and log positions in the temporary folder), so every timed
site starts fresh, as the one-site run does. A warm-up run (own id, not timed) pays for imports,
the Prefect API start and the first connections. Goal: N sites in at most 2x one site's time.
Prints figures; not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_sites(folder: Path, ids: list[str], sandbox: Path) -> None:
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    for sid in ids:
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        data["site"] = sid
        data["name"] = f"{demo['name']}-{sid}"
        data["variables_from"] = str(sandbox / "site-vars.yaml")
        data["evidence"]["outbox"] = str(folder / "outbox" / sid)
        (folder / f"{sid}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its reaped children (Linux /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live descendants (PostgreSQL backends, sshd's shells)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += _proc_cpu_s(p)
        try:
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir()
                     for c in (t / "children").read_text().split()]
        except OSError:
            pass
    return total


def sandbox_cpu_s() -> float:
    """CPU seconds used so far by the sandbox's servers (the 'hospitals' every bench site shares)."""
    from sandbox import manager

    return sum(_tree_cpu_s(int(c["pid"])) for c in manager.read_state().values() if isinstance(c, dict) and c.get("pid"))


def own_cpu_s() -> float:
    """This process and its children: the flows, and the local Prefect API it started."""
    return _tree_cpu_s(os.getpid())


def timed_fleet(ids: list[str], max_sites: int) -> tuple[float, list[dict]]:
    from flows.fleet import FleetFailed, fleet_inspection

    t0, cpu0, sb0 = time.perf_counter(), own_cpu_s(), sandbox_cpu_s()
    state = fleet_inspection(sites=ids, max_sites=max_sites, return_state=True)
    wall = time.perf_counter() - t0
    print(f"  CPU: ebops {own_cpu_s() - cpu0:.1f}s, sandbox servers {sandbox_cpu_s() - sb0:.1f}s "
          f"(wall {wall:.1f}s, {os.cpu_count()} CPUs)")
    result = state.result(raise_on_failure=False)
    if isinstance(result, FleetFailed):
        return wall, result.summary
    if isinstance(result, BaseException):
        raise result
    return wall, result


def describe(label: str, wall: float, table: list[dict]) -> None:
    verdicts: dict[str, int] = {}
    for e in table:
        verdicts[e["verdict"]] = verdicts.get(e["verdict"], 0) + 1
    per_site = [e["elapsed_s"] for e in table if e["elapsed_s"] is not None]
    spread = (f"per site median {statistics.median(per_site):.1f}s, max {max(per_site):.1f}s"
              if per_site else "no site ran")
    print(f"{label}: wall {wall:.1f}s; {spread}; verdicts {verdicts}")
    for e in table:
        if e["verdict"] == "ERROR":
            print(f"    {e['site']}: ERROR {e['reason'][:160]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=20, help="number of sites of the fleet run (default 20)")
    ap.add_argument("--max-sites", type=int, default=None, help="sites in flight at once (default: all of them)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    args = ap.parse_args()

    if "EBOPS_SANDBOX_DIR" not in os.environ:
        print("set EBOPS_SANDBOX_DIR to a running sandbox (e.g. /tmp/ebops-dev)", file=sys.stderr)
        return 2
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # 20 sites' INFO lines drown the figures
    from sandbox import manager

    if not all(manager.status().values()):
        print(f"the sandbox at {manager.root()} is not fully running: {manager.status()}", file=sys.stderr)
        return 2
    manager.export_credentials()  # the site files name these environment variables

    folder = Path(tempfile.mkdtemp(prefix="ebops-fleet-bench-"))
    os.environ["EBOPS_SITES_DIR"] = str(folder)
    run_tag = time.strftime("%H%M%S")  # fresh ids per bench run: no log positions, no chain to read
    warm, one = f"bench-{run_tag}-warm", f"bench-{run_tag}-one"
    fleet = [f"bench-{run_tag}-{i:02d}" for i in range(1, args.sites + 1)]
    write_sites(folder, [warm, one, *fleet], manager.root())
    max_sites = args.max_sites or args.sites
    print(f"sandbox {manager.root()}, sites folder {folder}, {os.cpu_count()} CPUs, "
          f"fleet of {args.sites} with max_sites={max_sites}")

    if not args.no_warmup:
        wall, table = timed_fleet([warm], 1)
        describe("warm-up (not counted)", wall, table)
    wall_one, table_one = timed_fleet([one], 1)
    describe("1 site", wall_one, table_one)
    wall_n, table_n = timed_fleet(fleet, max_sites)
    describe(f"{args.sites} sites", wall_n, table_n)
    ratio = wall_n / wall_one
    print(f"ratio {args.sites} sites / 1 site = {ratio:.2f} (goal <= 2.00): {'met' if ratio <= 2 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
