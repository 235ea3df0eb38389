"""A second e-bill database on the sandbox's server, generated with planted defects.

The data-quality tests and the bench need data whose every defect is known (the anomaly manifest),
without disturbing the demo hospital's database that the other checks read. This builds one more
database exactly as the demo's is built (vendor tables, yearly partitions, canonical views, the
read-only account), from a seed and a number of defects per rule.
"""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from sandbox import postgres


def build(state: dict, creds: dict[str, str], name: str, *, seed: int, days: int, bills_per_day: int,
          defects: dict[str, int] | None = None, end_date: date | None = None, now: datetime | None = None,
          manifest_path: Path | None = None) -> dict:
    """(Re)create database `name` with generated data; return generate()'s counts and manifest."""
    if not name.replace("_", "").isalnum() or name in (postgres.DATABASE, "postgres"):
        raise ValueError(f"quality database name {name!r}: letters, digits and _ only, not the demo's own")
    with psycopg.connect(postgres.admin_conninfo(state, creds, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
            sql.Identifier(name), sql.Identifier(postgres.VENDOR_OWNER)))
        conn.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'Asia/Shanghai'").format(sql.Identifier(name)))
    return postgres.fill_database(state, creds, name, seed=seed, days=days, bills_per_day=bills_per_day,
                                  defects=defects, end_date=end_date, now=now, manifest_path=manifest_path)


def drop(state: dict, creds: dict[str, str], name: str) -> None:
    with psycopg.connect(postgres.admin_conninfo(state, creds, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
