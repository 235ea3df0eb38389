"""CPU cost of the watch (接口运维) for one site, against a running sandbox: ebops's own CPU-seconds
(resource.getrusage of this process, user + system) around each probe cycle.

    EBOPS_SANDBOX_DIR=/work/shared-sbx .venv/bin/python bench/watch_bench.py [--cycles 30] [--flow]

- `cycle`: tasks.watch.cycle.run_cycle as the flow calls it (store check, health calls, interface
  and stock queries, alert state, journal append, part upload), for a site id of its own so the
  evidence goes to a chain of its own in the sandbox's bucket; warm-up cycles (imports, first
  connections) are not counted.
- `seal`: the once-a-day cycle that seals a full day (288 probe records written beforehand into
  the journal) into the 日运行表 bundle.
- `--flow`: the same cycle as a Prefect flow run (`watch`, in this process, on the Prefect API
  of PREFECT_API_URL or a temporary one): what the engine and the duty slot add.
Goal: under 1 % of one core for one site at a 5-minute interval, i.e. < 3 CPU-s per cycle.
The sandbox's servers' CPU (PostgreSQL, the health service, S3) is not ebops's and not counted.
Prints figures; not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _site_file(folder: Path, sid: str, sandbox: Path) -> None:
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    demo.update(site=sid)
    demo["variables_from"] = str(sandbox / "site-vars.yaml")
    demo["evidence"]["outbox"] = str(folder / "outbox" / sid)
    (folder / f"{sid}.yaml").write_text(yaml.safe_dump(demo, allow_unicode=True), encoding="utf-8")


def _stats(name: str, values: list[float], walls: list[float], interval_s: float) -> None:
    mean = statistics.mean(values)
    print(f"{name:<8} n={len(values):<3} CPU-s per cycle: mean {mean:.4f}  median {statistics.median(values):.4f}  "
          f"max {max(values):.4f}  | wall mean {statistics.mean(walls):.3f} s  | "
          f"share of one core at a {interval_s / 60:g}-minute interval: {100 * mean / interval_s:.3f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--flow", action="store_true", help="also time the cycle as a Prefect flow run")
    args = ap.parse_args()
    sandbox = Path(os.environ.get("EBOPS_SANDBOX_DIR", REPO / ".sandbox")).resolve()
    folder = Path(tempfile.mkdtemp(prefix="ebops-watch-bench-"))
    os.environ["EBOPS_SITES_DIR"] = str(folder)
    sys.path.insert(0, str(REPO))
    from sandbox import manager

    manager.export_credentials()
    from config.settings import load_site
    from tasks.watch.cycle import run_cycle
    from tasks.watch.journal import Journal
    from tasks.watch.probe import cpu_seconds

    sid = f"wbench{uuid.uuid4().hex[:6]}"
    _site_file(folder, sid, sandbox)
    site = load_site(sid)
    state, outbox = folder / "state" / "watch", folder / "outbox" / sid
    interval = site.watch.interval_minutes * 60
    print(f"site {sid}, {args.cycles} cycles after {args.warmup} warm-up, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores")
    cpu, wall = [], []
    for n in range(args.warmup + args.cycles):
        c0, w0 = cpu_seconds(), time.perf_counter()
        out = run_cycle(site, state, outbox, f"bench-{n}")
        if n >= args.warmup:
            cpu.append(cpu_seconds() - c0)
            wall.append(time.perf_counter() - w0)
    assert out.store_error is None, out.store_error
    _stats("cycle", cpu, wall, interval)

    # A full day in the journal, sealed by the first cycle of the next day.
    journal = Journal(state, sid)
    record = json.loads(json.dumps(out.record))
    tz = ZoneInfo(site.timezone)
    start = (datetime.now(tz) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = start.strftime("%Y-%m-%d")
    for i in range(86400 // interval):
        at = start + timedelta(seconds=i * interval)
        journal.append(record | {"id": f"{at:%Y%m%dT%H%M%S}-b{i:03d}", "day": day,
                                 "local": at.strftime("%Y-%m-%d %H:%M:%S")})
    c0, w0 = cpu_seconds(), time.perf_counter()
    sealed = run_cycle(site, state, outbox, "bench-seal", start + timedelta(days=1, minutes=1)).sealed
    _stats("seal", [cpu_seconds() - c0], [time.perf_counter() - w0], interval)
    print(f"         sealed {[s.day for s in sealed]} with {[s.probes for s in sealed]} probes "
          f"({sealed[-1].bundle.location if sealed else '-'})")
    print("         (the sealing cycle sealed today's bench cycles too: an upper bound for one day)")
    print(f"day total (287 cycles + 1 sealing cycle): {287 * statistics.mean(cpu) + (cpu_seconds() - c0):.1f} CPU-s "
          f"of 86400 = {100 * (287 * statistics.mean(cpu) + (cpu_seconds() - c0)) / 86400:.3f} % of one core")

    if args.flow:
        from flows.watch import watch

        fcpu, fwall = [], []
        for n in range(args.warmup + min(args.cycles, 10)):
            c0, w0 = cpu_seconds(), time.perf_counter()
            st = watch(site=sid, return_state=True)
            if n >= args.warmup:
                fcpu.append(cpu_seconds() - c0)
                fwall.append(time.perf_counter() - w0)
        print(f"         last flow run: {st.type.value}")
        _stats("flow", fcpu, fwall, interval)


if __name__ == "__main__":
    main()
