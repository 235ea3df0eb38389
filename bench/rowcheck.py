"""逐行比对 throughput: the migration's row check (tasks/migration/rowcheck.py) of a sandbox's vendor
schema against itself, read-only, two sessions each in its own repeatable-read snapshot (as the
verify phase reads source and target). Prints per table rows, seconds and rows/s (rows read on both
sides per second of wall time), then one JSON line; not a test.

    EBOPS_SANDBOX_DIR=/tmp/shared/sbx .venv/bin/python bench/rowcheck.py [--batch 5000]

Differences found here are rows the sandbox's production traffic wrote between the two snapshots.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from sandbox.scratch_db import pg_side as side  # noqa: E402
from tasks.migration.rowcheck import compare_schema  # noqa: E402


def main() -> None:
    from sandbox import manager, postgres

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=5000)
    args = ap.parse_args()
    state, creds = manager.read_state()["postgres"], manager.credentials()
    schema, dsn = state.get("vendor_schema", "ebill"), postgres.admin_conninfo(state, creds)
    began = time.perf_counter()
    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:
        tables = compare_schema(side(a, schema), side(b, schema), batch=args.batch)
        a.rollback()
        b.rollback()
    wall = time.perf_counter() - began
    print(f"{'table':<18}{'rows':>10}{'seconds':>10}{'rows/s':>10}  differences")
    for t in tables:
        rate = t.rows_read / t.seconds if t.seconds else 0
        print(f"{t.table:<18}{t.source_rows:>10}{t.seconds:>10.2f}{rate:>10.0f}  {t.differences or t.error or t.not_compared}")
    read = sum(t.rows_read for t in tables)
    print(f"total: {read} rows read ({read // 2} per side) in {wall:.2f} s: {read / wall:.0f} rows/s, "
          f"{read / 2 / wall:.0f} rows compared/s")
    print(json.dumps({"tables": len(tables), "rows_read": read, "seconds": round(wall, 2),
                      "rows_per_s": round(read / wall), "batch": args.batch}))


if __name__ == "__main__":
    main()
