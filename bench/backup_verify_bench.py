"""Backup verification on a large hospital: fingerprint comparison against a plain COPY-out and
against hashing every row in Python, plus the restore time (RTO) of the backup.

    EBOPS_BENCH_ROOT=/tmp/ebops-large .venv/bin/python bench/backup_verify_bench.py --days 91 --bills-per-day 11000

Starts (or reuses) a PostgreSQL-only sandbox in its own directory (no SSH, no S3), generating the
data on first use (slow: ~1 M bills take most of an hour on 2 cores). Takes pg_dump -Fc, restores
it with pg_restore --jobs 2 into a scratch database ebops_verify_bench_<time> (dropped at the end),
then times on both copies: measure() + the comparison (the flow's code path), COPY ... TO STDOUT
of every table, and the naive read of every row into Python with hashlib. Each is run with the two
copies one after the other (sequential) and at once on two connections (concurrent), so ratios
compare like with like. Goals: fingerprints <= 1x COPY-out; naive >= 2x fingerprints. Prints
figures (a table, then one JSON line); not a test.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from tasks.backup.verify import measure  # noqa: E402
from tasks.backup.verify.pg_flow_steps import fetcher  # noqa: E402
from tasks.backup.verify import fingerprint as fp  # noqa: E402
from tasks.backup.verify.fingerprint_names import quote
from tasks.backup.verify import reading as rd
from tasks.backup.verify import catalog as cat
from tasks.backup.verify import fingerprint_compare as fc  # noqa: E402
from tasks.core.results import Status  # noqa: E402

Side = Callable[[str], object]  # one method applied to one database (its conninfo)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def both(label: str, method: Side, dsns: list[str], modes: str = "both") -> dict:
    """The method on both copies: sequentially, then concurrently on two threads and connections.
    Each time is printed as it comes: on a loaded machine a run can last an hour."""
    seq, res = timed(lambda: [method(d) for d in dsns])
    print(f"  {label}: sequential {seq:.1f}s", flush=True)
    if modes == "sequential":
        return {"seq_s": seq, "conc_s": None, "results": res, "results_conc": res}
    with ThreadPoolExecutor(len(dsns)) as pool:
        conc, res2 = timed(lambda: list(pool.map(method, dsns)))
    print(f"  {label}: concurrent {conc:.1f}s", flush=True)
    return {"seq_s": seq, "conc_s": conc, "results": res, "results_conc": res2}


def fingerprint_side(schema: str, chunk_rows: int) -> Side:
    def run(dsn: str) -> measure.Measurement:
        # as steps_restore.verify_restored: one REPEATABLE READ READ ONLY transaction per side
        with psycopg.connect(dsn, autocommit=False) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            m = measure.measure(fetcher(conn), "postgresql", schema, as_of=None, chunk_rows=chunk_rows)
            conn.rollback()
        return m
    return run


def copy_side(schema: str, tables: list[str]) -> Side:
    def run(dsn: str) -> int:
        size = 0
        with psycopg.connect(dsn, autocommit=False) as conn, conn.cursor() as cur:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for t in tables:
                q = f"COPY (SELECT * FROM {quote('postgresql', schema)}.{quote('postgresql', t)}) TO STDOUT"
                with cur.copy(q) as copy:
                    for block in copy:  # the bytes are discarded: only the reading is timed
                        size += len(block)
        return size
    return run


def naive_side(schema: str, shapes: dict[str, cat.TableShape]) -> Side:
    def run(dsn: str) -> dict[str, str]:
        out = {}
        with psycopg.connect(dsn, autocommit=False) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            for name, shape in shapes.items():
                order = ", ".join(quote("postgresql", k) for k in shape.pk) or "1"
                table = f"{quote('postgresql', schema)}.{quote('postgresql', name)}"
                digest = hashlib.md5()
                # a server-side cursor: the client holds one batch, not the table
                with conn.cursor(name=f"naive_{name}") as cur:
                    cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
                    while rows := cur.fetchmany(10_000):
                        for row in rows:
                            digest.update(hashlib.md5(repr(row).encode()).digest())
                out[name] = digest.hexdigest()
        return out
    return run


def pg_tool(state: dict, tool: str, *args: str, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(state["bin_dir"]) / tool), "-h", "127.0.0.1", "-p", str(state["pg_port"]),
                           "-U", "postgres", "-w", *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return time.perf_counter() - t0, proc.stdout


def compare(source: measure.Measurement, restored: measure.Measurement) -> list[str]:
    """The flow's comparisons; returns the records that are not OK (empty: the copies match)."""
    out = fc.compare_inventories("bench", source.inventory, restored.inventory, schema="ebill")
    out += fc.compare_row_counts("bench", source.counts, restored.counts, as_of=None)
    out += fc.compare_fingerprints("bench", source.prints, restored.prints, as_of=None)
    return [f"{r.target}: {r.status} {r.reason}" for r in out if r.status != Status.OK]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("EBOPS_BENCH_ROOT", "/tmp/ebops-large"))
    ap.add_argument("--days", type=int, default=91)
    ap.add_argument("--bills-per-day", type=int, default=11_000)
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--chunk-rows", type=int, default=rd.DEFAULT_CHUNK_ROWS)
    ap.add_argument("--keep", action="store_true", help="leave the sandbox running at the end")
    ap.add_argument("--database", default=None,
                    help="bench this database of the sandbox at --root instead of its own `ebill` (e.g. the "
                         "quality bench's ebill_dq_bench, already generated); the sandbox is then left running")
    ap.add_argument("--naive", choices=("both", "sequential", "skip"), default="both",
                    help="the naive read is the longest part: run it both ways, one way, or not at all")
    args = ap.parse_args()

    load = os.getloadavg()
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["EBOPS_SANDBOX_DIR"] = str(root)  # manager.credentials() keeps this sandbox's secrets there
    from sandbox import manager, postgres

    creds = manager.credentials()
    gen_s, state = timed(lambda: postgres.start(root, creds, days=args.days, bills_per_day=args.bills_per_day,
                                                 seed=args.seed))
    if "generated" in state:
        print(f"generated in {gen_s:.0f}s: {json.dumps(state['generated'])}", flush=True)
    if args.database:
        state = {**state, "database": fp.check_name("postgresql", args.database)}
        args.keep = True  # not ours to stop
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = creds["EBOPS_DEMO_DB_ADMIN_PASSWORD"]  # only in the children's environment
    stamp = time.strftime("%Y%m%d%H%M%S")
    scratch = f"ebops_verify_bench_{stamp}"
    dump = root / f"bench-{stamp}.dump"
    prod_dsn = postgres.admin_conninfo(state, creds, state["database"])
    copy_dsn = postgres.admin_conninfo(state, creds, scratch)
    schema = state["vendor_schema"]
    fig: dict = {"load_avg_at_start": [round(x, 2) for x in load], "nproc": os.cpu_count(), "chunk_rows": args.chunk_rows}
    try:
        with psycopg.connect(prod_dsn) as conn:
            fig["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            shapes = cat.shapes_from_rows(fetcher(conn)(cat.columns_statement("postgresql", schema)))
        print(f"PostgreSQL {fig['postgresql']}, {fig['nproc']} CPUs, load {fig['load_avg_at_start']}; dumping…", flush=True)
        fig["dump_s"], _ = pg_tool(state, "pg_dump", "-Fc", "-f", str(dump), state["database"], env=env)
        fig["dump_mib"] = dump.stat().st_size / 2**20
        # RTO: an empty database to a usable copy, as pg_steps restores (no owner, grants, tablespaces)
        t0 = time.perf_counter()
        with psycopg.connect(postgres.admin_conninfo(state, creds, "postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {scratch} TEMPLATE template0")
        pg_tool(state, "pg_restore", "--no-owner", "--no-privileges", "--no-tablespaces", "--exit-on-error",
                "--jobs", "2", "-d", scratch, str(dump), env=env)
        fig["restore_rto_s"] = time.perf_counter() - t0
        print(f"dump {fig['dump_s']:.1f}s, restore {fig['restore_rto_s']:.1f}s; timing…", flush=True)

        dsns = [prod_dsn, copy_dsn]
        fps = both("fingerprints", fingerprint_side(schema, args.chunk_rows), dsns)
        t0 = time.perf_counter()
        problems = compare(*fps["results"]) + compare(*fps["results_conc"])
        fig["compare_s"] = time.perf_counter() - t0
        fig["fingerprints_match"] = not problems
        counts = fps["results"][0].counts
        fig["rows"] = counts
        fig["measure_side_s"] = [round(m.seconds, 2) for m in fps["results"]]
        copies = both("COPY-out", copy_side(schema, sorted(shapes)), dsns)
        fig["copy_mib_per_copy"] = copies["results"][0] / 2**20
        naive = both("naive", naive_side(schema, shapes), dsns, args.naive) if args.naive != "skip" else None
        fig["naive_match"] = naive is None or naive["results"][0] == naive["results"][1]
        total = 2 * sum(counts.values())  # rows read: both copies
        for name, r in (("fingerprint", fps), ("copy_out", copies), ("naive", naive)):
            if r is None:
                continue
            fig[f"{name}_seq_s"], fig[f"{name}_conc_s"] = r["seq_s"], r["conc_s"]
            fig[f"{name}_seq_rows_per_s"] = total / r["seq_s"]
            fig[f"{name}_conc_rows_per_s"] = total / r["conc_s"] if r["conc_s"] else None
        fig["fingerprint_seq_s"] += fig["compare_s"] / 2  # the comparison (both runs' worth, halved) counts too
        fig["fingerprint_conc_s"] += fig["compare_s"] / 2
        for mode in ("seq", "conc"):
            fig[f"fp_over_copy_{mode}"] = fig[f"fingerprint_{mode}_s"] / fig[f"copy_out_{mode}_s"]
            if fig.get(f"naive_{mode}_s"):
                fig[f"naive_over_fp_{mode}"] = fig[f"naive_{mode}_s"] / fig[f"fingerprint_{mode}_s"]
    finally:
        with psycopg.connect(postgres.admin_conninfo(state, creds, "postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")  # ours: the name has our prefix
        dump.unlink(missing_ok=True)
        if not args.keep:
            postgres.stop(state)
    report(fig, problems)
    return 0 if not problems and fig["naive_match"] else 1


def report(fig: dict, problems: list[str]) -> None:
    print("\nrows per table (each copy):")
    for t, n in sorted(fig["rows"].items()):
        print(f"  {t:<18} {n:>12,}")
    print(f"  {'total':<18} {sum(fig['rows'].values()):>12,}")
    print(f"\n{'method (both copies)':<44} {'seq s':>8} {'rows/s':>11} {'conc s':>8} {'rows/s':>11}")
    labels = {"fingerprint": "fingerprints: measure() x2 + compare",
              "copy_out": "(a) COPY (SELECT *) TO STDOUT, discarded",
              "naive": "(b) naive: every row into Python, md5"}
    cell = lambda v, fmt: format(v, fmt) if v else "not run"  # noqa: E731
    for k, label in labels.items():
        if f"{k}_seq_s" not in fig:
            print(f"{label:<44} not run (--naive skip)")
            continue
        print(f"{label:<44} {fig[f'{k}_seq_s']:>8.1f} {fig[f'{k}_seq_rows_per_s']:>11,.0f} "
              f"{cell(fig.get(f'{k}_conc_s'), '>8.1f'):>8} {cell(fig.get(f'{k}_conc_rows_per_s'), '>11,.0f'):>11}")
    print("seq = production then the copy on one connection at a time; conc = both at once, two threads")
    for mode in ("seq", "conc"):
        a, b = fig[f"fp_over_copy_{mode}"], fig.get(f"naive_over_fp_{mode}")
        naive = (f"naive / fingerprints = {b:.2f}x (goal >= 2): {'met' if b >= 2 else 'NOT met'}" if b
                 else "naive / fingerprints: not measured")
        print(f"{mode:>4}: fingerprints / COPY-out = {a:.2f}x (goal <= 1): {'met' if a <= 1 else 'NOT met'}; {naive}")
    print(f"per-side measure() in the sequential run: {fig['measure_side_s']} s; comparison {fig['compare_s']:.2f}s")
    print(f"fingerprints match: {fig['fingerprints_match']}; naive hashes match: {fig['naive_match']}")
    for p in problems[:10]:
        print(f"  MISMATCH {p[:300]}")
    print(f"dump (pg_dump -Fc) {fig['dump_s']:.1f}s, {fig['dump_mib']:.0f} MiB; "
          f"restore RTO (createdb + pg_restore --jobs 2) {fig['restore_rto_s']:.1f}s; "
          f"COPY text {fig['copy_mib_per_copy']:.0f} MiB per copy")
    print(f"PostgreSQL {fig['postgresql']}, nproc {fig['nproc']}, load average at start {fig['load_avg_at_start']}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}))


if __name__ == "__main__":
    sys.exit(main())
