"""Broken backups, each placed in db1's backup folder as the newest backup (with its line in the
backup log, as the nightly job writes it), for the verification to catch at the right step:

  truncated       the file ends early (a full disk, a copy cut off): caught when validating;
  flipped_byte    one byte in the middle of the file inverted, the size unchanged (bit rot, a bad
                  disk or copy): its table of contents still reads, the full read fails;
  missing_table   pg_dump -T left a table out: caught by the object inventory after restore;
  changed_row     one field of one old bill differs from production: caught by the content
                  fingerprint (naming the table and chunk) and, if sampled, field by field.
"""
from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from sandbox import host_trees, manager, postgres

SCENARIOS = ("truncated", "flipped_byte", "missing_table", "changed_row")


def _pg(tool: str, state: dict, *args: str, dbname: str = postgres.DATABASE, timeout: int = 900) -> None:
    env = dict(os.environ, PGPASSWORD=manager.credentials()["EBOPS_DEMO_DB_ADMIN_PASSWORD"])
    proc = subprocess.run([str(Path(state["bin_dir"]) / tool), "-h", "127.0.0.1", "-p", str(state["pg_port"]),
                           "-U", postgres.ADMIN, *args, "-d" if tool == "pg_restore" else "--dbname", dbname],
                          env=env, capture_output=True, text=True, timeout=timeout, umask=0o077)  # dumps: 0600
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed: {proc.stderr.strip()[-500:]}")


def place(kind: str, table: str = "t_his_settle", bill_offset: int = 1017) -> Path:
    """Write the broken backup `kind` as db1's newest backup; return its path."""
    if kind not in SCENARIOS:
        raise ValueError(f"unknown backup scenario {kind!r} (hint: one of {', '.join(SCENARIOS)})")
    state = manager.read_state()["postgres"]
    backup_dir = manager.root() / "hosts" / "db1" / "backup"
    started = datetime.now(timezone.utc)
    target = backup_dir / f"ebill_{started:%Y%m%d_%H%M%S}_{kind}.dump"
    if kind == "truncated":
        whole = backup_dir / f".whole_{target.name}"
        _pg("pg_dump", state, "-Fc", "-f", str(whole))
        data = whole.read_bytes()
        whole.unlink()
        with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data[: len(data) * 6 // 10])  # 0600 like every dump: payers' personal data
    elif kind == "flipped_byte":
        _pg("pg_dump", state, "-Fc", "-f", str(target))
        with target.open("r+b") as f:  # in place: same size, same name, one byte different
            middle = target.stat().st_size // 2
            f.seek(middle)
            byte = f.read(1)[0]
            f.seek(middle)
            f.write(bytes([byte ^ 0xFF]))
    elif kind == "missing_table":
        _pg("pg_dump", state, "-Fc", "-T", f"{postgres.VENDOR_SCHEMA}.{table}", "-f", str(target))
    else:
        _changed_row_dump(state, target, bill_offset)
    host_trees.append_backup_log(backup_dir / "backup.log", started, datetime.now(timezone.utc), "SUCCESS",
                                 target.name, target.stat().st_size)
    return target


def _changed_row_dump(state: dict, target: Path, bill_offset: int) -> None:
    """Dump production, restore it into a throwaway database, change one old bill's amount there,
    dump that: a backup identical to production but for one field of one row."""
    whole, temp_db = target.with_suffix(".whole"), f"ebops_scenario_{os.getpid()}"
    admin = postgres.admin_conninfo(state, manager.credentials(), "postgres")
    _pg("pg_dump", state, "-Fc", "-f", str(whole))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(temp_db)))
    try:
        _pg("pg_restore", state, "--no-owner", "--no-tablespaces", str(whole), dbname=temp_db)
        with psycopg.connect(postgres.admin_conninfo(state, manager.credentials(), temp_db), autocommit=True) as conn:
            schema = sql.Identifier(postgres.VENDOR_SCHEMA)
            changed = conn.execute(sql.SQL(
                "UPDATE {s}.t_ebill_main SET total_amt = total_amt + 0.01, own_pay = own_pay + 0.01 "
                "WHERE (id, ivc_datetime) = (SELECT id, ivc_datetime FROM {s}.t_ebill_main ORDER BY id, ivc_datetime "
                "OFFSET %s LIMIT 1)").format(s=schema), (bill_offset,)).rowcount
            if changed != 1:
                raise RuntimeError(f"changed_row: no bill at offset {bill_offset}")
        _pg("pg_dump", state, "-Fc", "-f", str(target), dbname=temp_db)
    finally:
        whole.unlink(missing_ok=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(temp_db)))
