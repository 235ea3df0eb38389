"""Daily data-quality bench: one day's run on 5 years of history against the same run on 90 days.

    eval "$(.venv/bin/ebops sandbox env)"
    .venv/bin/python bench/quality_daily_bench.py --build     # both databases, then the bench
    .venv/bin/python bench/quality_daily_bench.py             # again, on the databases built before

--build (re)creates two quality databases on the running sandbox's PostgreSQL, the way
bench/quality_bench.py --build does (sandbox.quality_db.build: the demo's build, the DBA scripts of
config/sql/postgresql/ included, 5 planted defects per rule, VACUUM ANALYZE): `ebill_dq_5y`,
5 x 365 days, and `ebill_dq_90d`, 90 days, both at the demo's daily volume (60 bills a day) and both
ending yesterday. The day judged is the last generated day of each, the clock its cut-off.

In this one process, back to back, on the read-only account:
  1. every rule query of the daily run (and run_suites' row counts) under EXPLAIN (ANALYZE, BUFFERS):
     its time (the least of EXPLAINS runs), the buffers it touched, and every scan of a history-sized relation (the bill, item
     and settlement tables and their yearly partitions). A Seq Scan of one of them is a rule that
     reads the history: it is named, and the bench fails (next year's partition, made ahead and
     empty, is not counted: its Seq Scan reads no row). Index probes of every yearly partition by
     bill number (DQ04's twin, DQ19's bill of a settlement, a bill's items) are not history scans:
     their cost grows with the number of partitions, not with the rows, and shows in the buffers.
  2. tasks.quality.gx_run.run_suites over the day, as the flow runs it, alternating the databases
     (ROUNDS rounds; the median of each is compared): the ratio 5 years / 90 days, goal <= 1.3x.
Prints figures; not a test. Exit 1 when a rule scans history, a query fails or the goal is not met.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import quality_bench as qb  # noqa: E402 (bench/ is the script's folder)
from quality_common import CANON  # noqa: E402

GOAL_RATIO = 1.3
ROUNDS = 5
EXPLAINS = 3  # each query's time is the least of this many runs: the machine is shared
DATABASES = {"history": ("ebill_dq_5y", 5 * 365), "recent": ("ebill_dq_90d", 90)}
BILLS_PER_DAY = 60  # the demo's daily volume (sandbox.postgres.DEMO)
# relations that grow with the years kept online: a Seq Scan of one of them reads the history
HISTORY_TABLES = ("t_ebill_main", "t_ebill_detail", "t_his_settle", "t_interface_log")


def _history_relation(name: str) -> bool:
    return any(name == t or name.startswith(t + "_") for t in HISTORY_TABLES)


def _scans(node: dict, out: list) -> list:
    """(node type, relation, rows the node read) of every scan of a history-sized relation."""
    rel = node.get("Relation Name")
    if rel and _history_relation(rel):
        loops = node.get("Actual Loops", 1) or 1
        read = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Index Recheck", 0)) * loops
        out.append((node["Node Type"], rel, int(read)))
    for child in node.get("Plans", []):
        _scans(child, out)
    return out


def _queries(canon: str, start: date, end: date, now: datetime) -> dict[str, str]:
    """check name -> the SQL the daily run executes (GX's `{{` `}}` unescaped as GX does)."""
    from tasks.quality.gx_run import SCOPE_SQL
    from tasks.quality.suites import load_suites, render, rule_checks

    out = {c.check: render(c.queries["postgresql"], "postgresql", canon, start, end, now).replace("{{", "{")
           .replace("}}", "}") for c in rule_checks(load_suites())}
    out.update({f"count:{s}": render(q, "postgresql", canon, start, end, now) for s, q in SCOPE_SQL.items()})
    return out


def explain_all(db, queries: dict[str, str]) -> dict[str, dict]:
    out = {}
    with db.connection.cursor() as cur:
        for check, sql in queries.items():
            times = []
            for _ in range(EXPLAINS):
                cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
                plan = cur.fetchone()[0][0]
                times.append(plan["Execution Time"])
            top = plan["Plan"]
            scans = _scans(top, [])
            out[check] = {"ms": min(times), "buffers": top.get("Shared Hit Blocks", 0) + top.get(
                "Shared Read Blocks", 0), "scans": scans, "rows_read": sum(s[2] for s in scans),
                # next year's partition, made ahead by year-end DDL, is empty: its Seq Scan reads nothing
                "seq": sorted({s[1] for s in scans if s[0] == "Seq Scan" and s[2] > 0})}
    return out


def params(pg: dict, meta: dict) -> dict:
    day = date.fromisoformat(meta["end_date"])
    return {"port": pg["pg_port"], "database": meta["database"], "user": pg.get("ro_user", "ebops_ro"),
            "canon": pg.get("canon_schema", CANON), "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(), "now": meta["cutoff"]}


def run_day(p: dict) -> float:
    from tasks.quality.gx_run import run_suites

    db = qb._database(p)
    try:
        t0 = time.perf_counter()
        run = run_suites(db, p["canon"], date.fromisoformat(p["start"]), date.fromisoformat(p["end"]),
                         datetime.fromisoformat(p["now"]), docs_dir=None)
        wall = time.perf_counter() - t0
    finally:
        db.close()
    errors = [o.check.check for o in run.outcomes if o.error]
    if errors:
        raise qb.Hint(f"{p['database']}: rules could not run: {', '.join(errors)}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help="(re)create both databases first")
    ap.add_argument("--seed", type=int, default=20261202)
    args = ap.parse_args()
    try:
        return bench(args)
    except qb.Hint as exc:
        print(f"quality_daily_bench: {exc}", file=sys.stderr)
        return 2


def bench(args) -> int:
    load_start = qb.load()
    root, pg, creds = qb.sandbox_state()
    metas = {}
    for role, (name, days) in DATABASES.items():
        if args.build:
            ns = argparse.Namespace(database=name, seed=args.seed, days=days, bills_per_day=BILLS_PER_DAY, end_date=None)
            metas[role] = qb.build(ns, root, pg, creds)
        else:
            f = qb.meta_path(root, name)
            if not f.exists() or not qb.database_exists(pg, creds, name):
                raise qb.Hint(f"no bench database {name} with its meta file {f.name} in {root} (hint: add --build)")
            metas[role] = json.loads(f.read_text(encoding="utf-8"))
    ps = {role: params(pg, m) for role, m in metas.items()}
    for role, m in metas.items():
        print(f"{role}: {m['database']}, {m['days']} days x {m['bills_per_day']} bills/day: "
              + ", ".join(f"{k} {v:,}" for k, v in m["counts"].items()) + f"; day judged {ps[role]['start']}")
    print(f"load average at start {load_start}", flush=True)

    import great_expectations  # noqa: F401 - imported before the timings

    plans = {}
    for role, p in ps.items():
        db = qb._database(p)
        try:
            plans[role] = explain_all(db, _queries(p["canon"], *qb.period(p)))
        finally:
            db.close()
    ok = report_plans(plans)

    walls = {role: [] for role in ps}
    run_day(ps["recent"])  # a warm-up: GX's first run in a process pays for its own set-up
    for _ in range(ROUNDS):
        for role in ("history", "recent"):
            walls[role].append(run_day(ps[role]))
    med = {role: statistics.median(w) for role, w in walls.items()}
    ratio = med["history"] / med["recent"]
    sql_ms = {role: sum(v["ms"] for v in plans[role].values()) for role in plans}
    bufs = {role: sum(v["buffers"] for v in plans[role].values()) for role in plans}
    print(f"\nrun_suites over one day, {ROUNDS} rounds alternating (s): history {[round(w, 2) for w in walls['history']]}, "
          f"recent {[round(w, 2) for w in walls['recent']]}")
    print(f"  median: history {med['history']:.2f}s, recent {med['recent']:.2f}s -> ratio {ratio:.2f}x "
          f"(goal <= {GOAL_RATIO}x): {'MET' if ratio <= GOAL_RATIO else 'NOT MET'}")
    print(f"  the queries alone (EXPLAIN ANALYZE execution time, sum): history {sql_ms['history']:.0f} ms, "
          f"recent {sql_ms['recent']:.0f} ms -> {sql_ms['history'] / max(sql_ms['recent'], 1e-9):.2f}x; "
          f"buffers touched {bufs['history']:,} vs {bufs['recent']:,} -> {bufs['history'] / max(bufs['recent'], 1):.2f}x")
    print(f"load average at end {qb.load()} ({os.cpu_count()} CPUs)")
    return 0 if ok and ratio <= GOAL_RATIO else 1


def report_plans(plans: dict) -> bool:
    h, r = plans["history"], plans["recent"]
    print(f"\n{'check':<22} {'5y ms':>8} {'90d ms':>8} {'5y bufs':>8} {'90d bufs':>8} {'5y rows read':>13} "
          f"{'90d rows read':>13}  history scanned (5y: Seq Scan of)")
    ok = True
    for check in h:
        seq = h[check]["seq"]
        ok &= not seq
        print(f"{check:<22} {h[check]['ms']:>8.1f} {r[check]['ms']:>8.1f} {h[check]['buffers']:>8,} "
              f"{r[check]['buffers']:>8,} {h[check]['rows_read']:>13,} {r[check]['rows_read']:>13,}  "
              f"{', '.join(seq) if seq else 'no'}")
    print("every rule bounded by the day and index-backed (no Seq Scan of a history-sized relation): "
          + ("yes" if ok else "NO"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
