"""Data-quality bench: the 22 rules over one quarter of a large hospital, against a plain read of
the same rows and against a naive Great Expectations run of the same suites.

    eval "$(.venv/bin/ebops sandbox env)"
    .venv/bin/python bench/quality_bench.py --build            # ~1,000,000 bills, ~6,000,000 items
    .venv/bin/python bench/quality_bench.py                    # again, on the database built before
    .venv/bin/python bench/quality_bench.py --build --days 30 --bills-per-day 300   # a small check

--build (re)creates a quality database (default ebill_dq_bench) on the running sandbox's PostgreSQL
with sandbox.quality_db.build: `days` days ending yesterday, `bills_per_day` bills a day, 5 planted
defects of every rule; the counts, the generation's cut-off and the anomaly manifest are kept in
$EBOPS_SANDBOX_DIR/quality-bench-<database>.json for later runs without --build. The new database
is VACUUMed, so that no phase pays for hint bits or meets autovacuum.

The period is the generated quarter [first day, end date + 1), the clock ("now") the generation's
cut-off. Three phases, each in a child process of its own (this script again, with a hidden
--phase), so that each peak RSS (the child's own ru_maxrss at its end) is that phase's alone:
  (ours)  tasks.quality.gx_run.run_suites over the period through the read-only session, the way the
          flow runs it (COMPLETE result format, every failing key read); then every rule's failing
          keys are compared with the manifest: planted / found / exact.
  (a)     plain read: COPY (SELECT * ... period ...) TO STDOUT of ebill_invoice, the items of those
          bills, his_settlement and ebill_stock through the read-only account, bytes discarded.
  (b)     naive GX: an ephemeral context, a PostgreSQL data source from a connection string, one
          whole-table asset per canonical relation (no period: the whole table is the batch), the
          rules written as the built-in single-table expectations a GX user would reach for (with
          row conditions where the rule applies to some rows), GX's default result format; a rule
          no built-in can state (it spans relations, needs arithmetic across columns, or depends on
          the run's clock) keeps its UnexpectedRowsExpectation query from expectations/*.json, the
          same as ours. Where the built-ins state only part of a rule the rest is left out (listed
          as it runs): the naive run does a little less than ours, never more.
Wall times cover the work only (imports are timed apart); peak RSS is the client process's, not
PostgreSQL's. The naive run's default results hold sample values of failing rows (phone numbers
among them): only counts are printed. Prints figures; not a test. Exit 1 when a rule is not exact
or a phase failed.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quality_common import CANON, PW_ENV, READ_RELATIONS  # noqa: E402 (bench/ is the script's folder)
from quality_phases import child  # noqa: E402

GOAL_VS_READ, GOAL_VS_NAIVE, GOAL_PEAK_MIB = 1.2, 5.0, 2048  # issue 18 part 4


class Hint(RuntimeError):
    """A problem the user can fix: printed as one line, never as a traceback."""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------ the parent: setup and report
def sandbox_state() -> tuple[Path, dict, dict]:
    from sandbox import manager, postgres

    root = manager.root()
    pg = manager.read_state().get("postgres")
    if not pg:
        raise Hint(f"no sandbox in {root} (hint: .venv/bin/ebops sandbox up, or set EBOPS_SANDBOX_DIR)")
    if not postgres.is_running(pg):
        raise Hint(f"the sandbox's PostgreSQL in {root} is not running (hint: .venv/bin/ebops sandbox up)")
    creds = manager.credentials()
    os.environ[PW_ENV] = creds[PW_ENV]  # this sandbox's secret, for the children's read-only sessions
    return root, pg, creds


def meta_path(root: Path, name: str) -> Path:
    return root / f"quality-bench-{name}.json"


def database_exists(pg: dict, creds: dict, name: str) -> bool:
    import psycopg

    from sandbox import postgres

    with psycopg.connect(postgres.admin_conninfo(pg, creds, "postgres"), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def build(args, root: Path, pg: dict, creds: dict) -> dict:
    import psycopg

    from sandbox import postgres, quality_db
    from sandbox.generator import local_now
    from tasks.quality.suites import RULE_IDS

    end = date.fromisoformat(args.end_date) if args.end_date else local_now().date() - timedelta(days=1)
    # The generator is asked for one day more, ending the day after `end` and cut off at that day's
    # midnight: that day holds no bill, and every day of the period is whole. (Cut off at the end
    # of the last day instead, the blue bills of that day whose refund comes later the same day are
    # FLUSHED but their red bills are never written: sandbox/generator.py emits a day's refunds at
    # the next day's turn. Those would be false DQ12 alarms, the generator's and not the rules'.)
    gen_end = end + timedelta(days=1)
    now = datetime.combine(gen_end, datetime.min.time())
    print(f"building {args.database}: seed {args.seed}, {args.days} days to {end}, {args.bills_per_day} bills/day "
          f"(~{args.days * args.bills_per_day:,} bills), 5 defects per rule…", flush=True)
    defects = {r: 5 for r in RULE_IDS}
    t0 = time.perf_counter()
    for attempt in (1, 2):
        try:
            gen = quality_db.build(pg, creds, args.database, seed=args.seed, days=args.days + 1,
                                   bills_per_day=args.bills_per_day, defects=defects, end_date=gen_end, now=now)
            break
        except (RuntimeError, ValueError) as exc:
            # A short run may hold too few candidates for a rule (DQ21 needs closed stock segments:
            # a segment lasts about six weeks); plant what the data can hold, and say so.
            m = re.search(r"could not plant every defect[^{]*(\{[^}]*\})", str(exc))
            if attempt == 2 or not m:
                raise Hint(f"building {args.database} failed: {' '.join(str(exc).split())}") from None
            short = ast.literal_eval(m.group(1))
            defects = {r: max(0, n - short.get(r, 0)) for r, n in defects.items()}
            print("  too small for every defect: " + ", ".join(f"{r} plants {defects[r]} instead of 5" for r in short)
                  + " (more days or bills per day plant them all); building again…", flush=True)
    total = time.perf_counter() - t0
    counts = {k: v for k, v in gen.items() if k not in ("manifest", "seconds", "cutoff")}
    print(f"built in {total:.0f}s (generation and COPY {gen['seconds']:.0f}s; then indexes, ANALYZE, views): "
          + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; cut-off {gen['cutoff']}", flush=True)
    # Freshly loaded rows: the first phase to read them would set their hint bits (writes), and
    # autovacuum would come for them during the timings. Both happen here instead.
    t1 = time.perf_counter()
    with psycopg.connect(postgres.admin_conninfo(pg, creds, args.database), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    print(f"VACUUM (ANALYZE) {time.perf_counter() - t1:.0f}s", flush=True)
    meta = {"database": args.database, "seed": args.seed, "days": args.days, "bills_per_day": args.bills_per_day,
            "end_date": end.isoformat(), "cutoff": gen["cutoff"], "counts": counts, "build_s": round(total, 1),
            "defects": defects, "rules": gen["manifest"]["rules"]}
    meta_path(root, args.database).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    return meta


def run_phase(phase: str, params: dict) -> dict:
    """This script again with --phase: its own process, so its peak RSS is its own."""
    with tempfile.TemporaryDirectory(prefix="quality-bench-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--phase", phase,
                               "--phase-params", json.dumps(params), "--result-file", str(out)], check=False)
        if out.exists():
            return json.loads(out.read_text(encoding="utf-8"))
        return {"error": f"the {phase} phase's process ended with exit code {proc.returncode} and no result"}


def exactness(found: dict, planted_rules: dict) -> bool:
    from tasks.quality.suites import RULE_IDS

    print(f"\n{'rule':<6} {'planted':>8} {'found':>8}  exact", flush=True)
    ok = True
    for rule in RULE_IDS:
        expected = {tuple(k) for k in planted_rules.get(rule, [])}
        got = {tuple(k) for k in found["failing"].get(rule, [])}
        errors = found["errors"].get(rule) or []
        exact = got == expected and not errors
        ok &= exact
        extra = ""
        if errors:
            extra = f"  ERROR {'; '.join(errors)[:300]}"
        elif not exact:
            extra = f"  missed {len(expected - got)}, false alarms {len(got - expected)}"
        print(f"{rule:<6} {len(expected):>8} {len(got):>8}  {'yes' if exact else 'NO'}{extra}", flush=True)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help="(re)create the quality database first")
    ap.add_argument("--database", default="ebill_dq_bench")
    ap.add_argument("--days", type=int, help="days generated by --build (default 92: a quarter)")
    ap.add_argument("--bills-per-day", type=int, help="bills a day generated by --build (default 10870: "
                    "~1,000,000 bills in 92 days)")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--end-date", help="last generated day, YYYY-MM-DD (default: yesterday)")
    ap.add_argument("--phase", choices=("ours", "read", "naive"), help=argparse.SUPPRESS)
    ap.add_argument("--phase-params", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        return child(args.phase, json.loads(args.phase_params), Path(args.result_file))
    try:
        return parent(args)
    except Hint as exc:
        print(f"quality_bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quality_bench: interrupted", file=sys.stderr)
        return 130


def parent(args) -> int:
    load_start = load()
    root, pg, creds = sandbox_state()
    import psycopg

    from sandbox import postgres

    try:
        if args.build:
            args.days, args.bills_per_day = args.days or 92, args.bills_per_day or 10_870
            meta = {**build(args, root, pg, creds), "built_now": True}
        else:
            f = meta_path(root, args.database)
            if not f.exists() or not database_exists(pg, creds, args.database):
                raise Hint(f"no bench database {args.database} with its manifest {f.name} in {root} "
                           f"(hint: add --build)")
            meta = json.loads(f.read_text(encoding="utf-8"))
            print(f"reusing {args.database} (built with seed {meta['seed']}, {meta['days']} days to "
                  f"{meta['end_date']}, {meta['bills_per_day']} bills/day): "
                  + ", ".join(f"{k} {v:,}" for k, v in meta["counts"].items()), flush=True)
            if (args.days, args.bills_per_day) != (None, None):
                print("  (--days and --bills-per-day apply to --build only: the database is used as it was built)",
                      flush=True)
    except psycopg.OperationalError as exc:
        raise Hint(f"cannot reach the sandbox's PostgreSQL on port {pg['pg_port']}: {str(exc).strip().splitlines()[0]} "
                   f"(hint: .venv/bin/ebops sandbox status)") from None

    end_date = date.fromisoformat(meta["end_date"])
    start, end = end_date - timedelta(days=meta["days"] - 1), end_date + timedelta(days=1)
    params = {"port": pg["pg_port"], "database": args.database, "user": pg.get("ro_user", "ebops_ro"),
              "canon": pg.get("canon_schema", CANON), "start": start.isoformat(), "end": end.isoformat(),
              "now": meta["cutoff"]}
    with psycopg.connect(postgres.admin_conninfo(pg, creds, args.database)) as c:
        version = c.execute("SHOW server_version").fetchone()[0]
    print(f"period [{start}, {end}), now {meta['cutoff']}; PostgreSQL {version}, {os.cpu_count()} CPUs, "
          f"load average {load_start}", flush=True)

    results, loads = {}, {}
    for phase, label in (("read", "(a) plain read"), ("ours", "(ours) run_suites"), ("naive", "(b) naive GX")):
        loads[phase] = load()
        print(f"\n== {label} (load average {loads[phase]})", flush=True)
        results[phase] = run_phase(phase, params)
        if "error" in results[phase]:
            print(f"   {label} FAILED: {results[phase]['error']}", flush=True)
        else:
            print(f"   {label}: {results[phase]['wall_s']:.1f}s wall, peak RSS {results[phase]['peak_mib']:.0f} MiB",
                  flush=True)
    exact = "error" not in results["ours"] and exactness(results["ours"], meta["rules"])
    report(meta, results, loads, load_start, load(), exact)
    return 0 if exact and not any("error" in r for r in results.values()) else 1


def report(meta: dict, res: dict, loads: dict, load_start: list, load_end: list, exact: bool) -> None:
    ours, read, naive = res["ours"], res["read"], res["naive"]
    print("\nrows per relation        (ours) period    (a) COPY rows    (a) COPY MiB   (b) whole table")
    for rel in READ_RELATIONS:
        o = (ours.get("rows") or {}).get(rel)
        r = (read.get("rows") or {}).get(rel)
        b = (read.get("bytes") or {}).get(rel)
        n = (naive.get("rows") or {}).get(rel)
        print(f"  {rel:<20} {_n(o):>16} {_n(r):>16} {(f'{b / 2**20:.1f}' if b is not None else '-'):>15} {_n(n):>17}")
    if read.get("bytes"):
        print(f"  {'total':<20} {'':>16} {_n(sum(read['rows'].values())):>16} "
              f"{sum(read['bytes'].values()) / 2**20:>15.1f}")
    n_exp = naive.get("expectations")
    print(f"\n{'phase':<58} {'wall s':>8} {'peak MiB':>9} {'load at start':>16}")
    for key, label in (("ours", "(ours) run_suites, 22 rules, period, COMPLETE"),
                       ("read", "(a) COPY (SELECT * ...) TO STDOUT, discarded"),
                       ("naive", f"(b) naive GX, whole tables, {n_exp if n_exp is not None else '?'} expectations")):
        r = res[key]
        wall = f"{r['wall_s']:.1f}" if "wall_s" in r else "error"
        peak = f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-"
        print(f"{label:<58} {wall:>8} {peak:>9} {str(loads[key]):>16}")
    if "wall_s" in naive and "builtin_s" in naive:
        print(f"    (b) = built-in expectations {naive['builtin_s']:.1f}s ({naive['builtin_n']}) + "
              f"rule queries {naive['queries_s']:.1f}s ({naive['queries_n']}); "
              f"{naive['errored']} errored, {naive['failed']} unsuccessful")
    print(f"    imports (not in wall): ours {ours.get('import_s', 0):.1f}s, (a) {read.get('import_s', 0):.1f}s, "
          f"(b) {naive.get('import_s', 0):.1f}s")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    print()
    if "wall_s" in ours and "wall_s" in read:
        x = ours["wall_s"] / read["wall_s"]
        print(f"ours / (a) plain read = {x:.2f}x   (goal <= {GOAL_VS_READ:g}x): {verdict(x <= GOAL_VS_READ)}")
    if "wall_s" in ours and "wall_s" in naive:
        x = naive["wall_s"] / ours["wall_s"]
        print(f"(b) naive GX / ours   = {x:.2f}x   (goal >= {GOAL_VS_NAIVE:g}x): {verdict(x >= GOAL_VS_NAIVE)}")
    if "peak_mib" in ours:
        print(f"ours peak RSS         = {ours['peak_mib']:.0f} MiB (goal <= 2 GiB): "
              f"{verdict(ours['peak_mib'] <= GOAL_PEAK_MIB)}")
    print(f"every rule found exactly its planted keys: {'yes' if exact else 'NO'}")
    busy = load_start[0] >= 0.5 * (os.cpu_count() or 1)
    print(f"load average (1, 5, 15 min) at start {load_start}, at end {load_end} (later figures include this "
          f"bench's own work{' and the build' if meta.get('built_now') else ''})"
          + ("\n  LOADED: the machine was already busy at start: the wall times are slower than on an idle machine"
             if busy else ""))
    print(f"data: {meta['days']} days x {meta['bills_per_day']} bills/day, seed {meta['seed']}; "
          f"peak = the client process's max RSS (PostgreSQL's own memory not included)")


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else "-"


if __name__ == "__main__":
    sys.exit(main())
