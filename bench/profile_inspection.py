"""Where ebops's own CPU goes in one site inspection: a CPU profile of every thread of the run.

    EBOPS_SANDBOX_DIR=/work/shared-sbx PREFECT_API_URL=http://127.0.0.1:4300/api \
        .venv/bin/python bench/profile_inspection.py [--runs 2] [--top 25]

One copy of config/sites/demo.yaml (own site id, own outbox) is inspected `--runs` times in this
process against a running sandbox and a running Prefect server (PREFECT_API_URL: the API's CPU is
the server's, not ebops's). Each thread gets a cProfile profiler timed by its own CPU clock
(time.thread_time), so waiting on SSH/SQL/HTTP costs nothing and the sums are CPU seconds; the
profiles of all threads are merged. The import of the flows is measured apart (it is paid once
per worker process, not per site). Prints figures; not a test.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def profile_every_thread() -> None:
    """Every thread started from now on runs under a CPU-timed profiler of its own."""
    orig_run = threading.Thread.run

    def run(self):  # noqa: ANN001
        p = cProfile.Profile(timer=time.thread_time)
        with _lock:
            _profiles.append(p)
        p.enable()
        try:
            orig_run(self)
        finally:
            p.disable()

    threading.Thread.run = run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="inspections to run (the first warms up; default 2)")
    ap.add_argument("--top", type=int, default=30, help="functions to print by cumulative CPU")
    ap.add_argument("--save", default=None, help="write the merged pstats file here")
    ap.add_argument("--tasks", action="store_true", help="each check a Prefect task run, as the deployed "
                    "inspection flow runs them (default: plain functions, as the fleet flow does)")
    args = ap.parse_args()
    if "EBOPS_SANDBOX_DIR" not in os.environ or "PREFECT_API_URL" not in os.environ:
        print("set EBOPS_SANDBOX_DIR (a running sandbox) and PREFECT_API_URL (a running Prefect server)",
              file=sys.stderr)
        return 2
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    c0, t0 = cpu_s(), time.perf_counter()
    from bench.fleet_bench import write_sites
    from flows.inspection import inspect_site
    from config.settings import load_site
    from prefect import flow
    from sandbox import manager
    import_cpu = cpu_s() - c0
    print(f"import of the flows: {import_cpu:.2f} CPU-s ({time.perf_counter() - t0:.1f} s wall)")
    manager.export_credentials()

    folder = Path(tempfile.mkdtemp(prefix="ebops-profile-"))
    os.environ["EBOPS_SITES_DIR"] = str(folder)
    tag = time.strftime("%H%M%S")
    ids = [f"prof-{tag}-{i}" for i in range(args.runs)]
    write_sites(folder, ids, manager.root())

    from prefect.task_runners import ThreadPoolTaskRunner

    @flow(name="profile-inspection", task_runner=ThreadPoolTaskRunner(max_workers=16))
    def one(site: str) -> str:
        return inspect_site(load_site(site), "adhoc", plain=not args.tasks).verdict.value

    profile_every_thread()
    main_prof = None
    for i, sid in enumerate(ids):
        last = i == len(ids) - 1
        if last:
            with _lock:
                _profiles.clear()
            main_prof = cProfile.Profile(timer=time.thread_time)
            main_prof.enable()
        c0, t0 = cpu_s(), time.perf_counter()
        verdict = one(sid)
        cpu, wall = cpu_s() - c0, time.perf_counter() - t0
        if last:
            main_prof.disable()
        print(f"run {i + 1} ({'warm-up' if i == 0 and args.runs > 1 else 'profiled' if last else 'plain'}): "
              f"{verdict}, {cpu:.2f} CPU-s of this process, {wall:.1f} s wall")

    stats = pstats.Stats(main_prof)
    for p in list(_profiles):
        try:
            p.create_stats()   # a thread still alive (Prefect's log/event workers): its CPU so far
            stats.add(p)
        except Exception:  # noqa: BLE001 - a profiler mid-update: left out, said below
            print("  (one live thread's profile could not be read)")
    if args.save:
        stats.dump_stats(args.save)
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
