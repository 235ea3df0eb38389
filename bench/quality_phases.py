"""The quality bench's children: one phase each (ours, the plain read, the naive GX run), in a
process of its own so that its peak RSS is its own. bench/quality_bench.py starts them."""
from __future__ import annotations

import json
import os
import resource
import time
from datetime import date
from pathlib import Path

from quality_common import CANON, PW_ENV, READ_RELATIONS, period  # noqa: F401 (bench/ is the script's folder)

# scope of run_suites' row counts -> the relation it counts
SCOPE_RELATION = {"invoice": "ebill_invoice", "item": "ebill_invoice_item", "settlement": "his_settlement",
                  "stock": "ebill_stock"}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(phase: str, p: dict, result_file: Path) -> int:
    try:
        t0 = time.perf_counter()
        if phase == "naive":
            from quality_naive import phase_naive  # the naive run lives in its own module
            fn = phase_naive
        else:
            fn = {"ours": phase_ours, "read": phase_read}[phase]
        out = fn(p, t0)
        out["peak_mib"] = peak_mib()
        code = 0
    except Exception as exc:  # noqa: BLE001 - one line for the parent, never a traceback
        from tasks.core.masking import mask_text

        msg = mask_text(f"{type(exc).__name__}: {exc}").replace(os.environ.get(PW_ENV) or "\0", "***")
        out, code = {"error": " ".join(msg.split())[:500]}, 1
    result_file.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return code


def _database(p: dict):
    """The read-only session every check uses (tasks.connect.database.connect), on the bench's database."""
    from config.hosts import DatabaseConfig
    from tasks.connect.database import connect

    return connect(DatabaseConfig(dialect="postgresql", dsn=f"host=127.0.0.1 port={p['port']} dbname={p['database']}",
                                  user=p["user"], password={"env": PW_ENV}, schema=p["canon"], connect_timeout_s=60))


def phase_ours(p: dict, t0: float) -> dict:
    from tasks.quality.gx_run import run_suites
    from tasks.quality.records import summarise

    import great_expectations  # noqa: F401 - imported here so that its import is not in the wall time

    start, end, now = period(p)
    db = _database(p)
    imported = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        run = run_suites(db, p["canon"], start, end, now, docs_dir=None)
        wall = time.perf_counter() - t1
        summaries = summarise(run)
    finally:
        db.close()
    return {"wall_s": wall, "import_s": imported, "gx_seconds": run.seconds,
            "rows": {SCOPE_RELATION[s]: n for s, n in run.checked.items() if s in SCOPE_RELATION},
            "failing": {s.rule_id: [list(k) for k in s.failing] for s in summaries},
            "errors": {s.rule_id: s.errors for s in summaries if s.errors}}


def read_queries(canon: str, start: date, end: date) -> dict[str, str]:
    period = f"issue_time >= DATE '{start}' AND issue_time < DATE '{end}'"
    return {
        "ebill_invoice": f"SELECT * FROM {canon}.ebill_invoice WHERE {period}",
        "ebill_invoice_item": f"SELECT d.* FROM {canon}.ebill_invoice_item d JOIN {canon}.ebill_invoice i "
                              f"ON i.bill_id = d.bill_id WHERE i.{period}",
        "his_settlement": f"SELECT * FROM {canon}.his_settlement WHERE settle_time >= DATE '{start}' "
                          f"AND settle_time < DATE '{end}'",
        "ebill_stock": f"SELECT * FROM {canon}.ebill_stock",
    }


def phase_read(p: dict, t0: float) -> dict:
    start, end, _ = period(p)
    db = _database(p)
    imported = time.perf_counter() - t0
    rows, size = {}, {}
    try:
        t1 = time.perf_counter()
        conn = db.connection  # read-only session, autocommit
        with conn.cursor() as cur:
            for rel, query in read_queries(p["canon"], start, end).items():
                n = b = 0
                with cur.copy(f"COPY ({query}) TO STDOUT") as copy:
                    for block in copy:  # discarded: only the reading is timed
                        b += len(block)
                        n += bytes(block).count(b"\n")  # text format: one line per row
                rows[rel], size[rel] = n, b
                print(f"   {rel}: {n:,} rows, {b / 2**20:.1f} MiB at {time.perf_counter() - t1:.1f}s", flush=True)
        wall = time.perf_counter() - t1
    finally:
        db.close()
    return {"wall_s": wall, "import_s": imported, "rows": rows, "bytes": size}

