"""The DBA scripts of config/sql/ and the SQL the database classes send, parsed with sqlglot.

Oracle cannot run here, so its scripts are checked the way SQL*Plus would see them: substitution
variables replaced (with sample names that differ from the defaults, to prove the placeholders are
used), SQL*Plus commands removed, each statement parsed with sqlglot's Oracle dialect.
"""
from __future__ import annotations

import re

import pytest
import sqlglot
from sqlglot import exp

from config.settings import SQL_DIR
from tasks.connect.database import oracle as oracle_db
from tasks.connect.database import postgresql as pg_db
from tasks.connect.database.base import CANONICAL_COLUMNS, CANONICAL_SCHEMA

SQLPLUS_COMMANDS = re.compile(r"^\s*(SET|WHENEVER|DEFINE|UNDEFINE|ACCEPT|PROMPT|SPOOL|/\s*$)", re.I)
SAMPLE = {"VENDOR_SCHEMA": "HIS_EBILL", "CANON_SCHEMA": "EBOPS_CANON", "INVOICE_TABLE": "EB_INVOICE_MAIN",
          "RO_USER": "EBOPS_READER", "EBOPS_RO_PASSWORD": "Sample#Pw1", "COL_ISSUE_TIME": "KPRQ",
          "VERIFY_USER": "EBOPS_CHECKER", "EBOPS_VERIFY_PASSWORD": "Sample#Pw2"}


def sqlplus_statements(path, overrides: dict[str, str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    defines = {m.group(1).upper(): m.group(2) for m in re.finditer(r"^DEFINE\s+(\w+)\s*=\s*(\S+)", text, re.M)}
    defines.update(overrides)
    body = "\n".join(ln for ln in text.splitlines()
                     if not SQLPLUS_COMMANDS.match(ln) and not ln.lstrip().startswith("--"))

    def sub(m: re.Match) -> str:
        name = m.group(1).upper()
        if name not in defines:
            raise AssertionError(f"{path.name}: substitution variable {name} has no DEFINE and no sample")
        return defines[name]

    # &&NAME. ends the name at the dot (SQL*Plus concatenation): &&S..&&T -> S.T
    body = re.sub(r"&&?(\w+)\.?", sub, body)
    assert "&" not in body
    return [s.strip() for s in body.split(";") if s.strip()]


def oracle_views(statements) -> dict[str, exp.Create]:
    out = {}
    for stmt in statements:
        tree = sqlglot.parse_one(stmt, read="oracle")
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            out[tree.this.name.lower()] = tree
    return out


def test_every_oracle_statement_parses():
    for script in sorted((SQL_DIR / "oracle").glob("*.sql")):
        statements = sqlplus_statements(script, SAMPLE)
        assert statements, script
        for stmt in statements:
            sqlglot.parse_one(stmt, read="oracle")  # raises on a syntax error


def test_oracle_views_have_the_canonical_columns_over_the_sites_tables():
    statements = sqlplus_statements(SQL_DIR / "oracle" / "01_canonical_views.sql", SAMPLE)
    views = oracle_views(statements)
    assert set(views) == set(CANONICAL_COLUMNS)
    for name, tree in views.items():
        assert tree.this.db == "EBOPS_CANON"
        select = tree.expression
        assert [e.alias_or_name.lower() for e in select.expressions] == CANONICAL_COLUMNS[name], name
        assert all(isinstance(e.this, exp.Cast) for e in select.expressions), name
        assert select.find(exp.Table).db == "HIS_EBILL"
    invoice = views["ebill_invoice"]
    assert invoice.expression.find(exp.Table).name == "EB_INVOICE_MAIN"
    assert "KPRQ" in invoice.sql("oracle")


def test_oracle_readonly_account_grants_only_what_checks_read():
    statements = sqlplus_statements(SQL_DIR / "oracle" / "02_readonly_account.sql", SAMPLE)
    raw = (SQL_DIR / "oracle" / "02_readonly_account.sql").read_text(encoding="utf-8")
    assert 'IDENTIFIED BY "&&EBOPS_RO_PASSWORD"' in raw and "ACCEPT EBOPS_RO_PASSWORD" in raw
    granted = set()
    for stmt in statements:
        tree = sqlglot.parse_one(stmt, read="oracle")
        if isinstance(tree, exp.Grant):
            assert tree.sql("oracle").upper().startswith("GRANT SELECT ON"), stmt
            granted.add(tree.find(exp.Table).sql("oracle").upper())
    views = {f"EBOPS_CANON.{v.upper()}" for v in CANONICAL_COLUMNS}
    monitoring = {f"SYS.{v}" for v in ("DBA_TABLESPACE_USAGE_METRICS", "DBA_TABLESPACES", "DBA_DATA_FILES",
                                        "DBA_TEMP_FILES", "V_$RMAN_BACKUP_JOB_DETAILS", "V_$DATABASE", "V_$INSTANCE")}
    assert granted == views | monitoring
    assert any(s.upper() == "GRANT CREATE SESSION TO EBOPS_READER" for s in statements)
    assert not re.search(r"GRANT\s+(DBA|RESOURCE|SELECT ANY)", raw, re.I)


@pytest.mark.parametrize("name", ["TABLESPACE_USAGE_SQL", "SERVER_VERSION_SQL", "READ_ONLY_SQL"])
def test_oracle_module_sql_parses(name):
    sqlglot.parse_one(getattr(oracle_db, name), read="oracle")


def test_oracle_tablespace_query_reads_the_granted_views():
    tables = {t.name.upper() for t in sqlglot.parse_one(oracle_db.TABLESPACE_USAGE_SQL, read="oracle").find_all(exp.Table)}
    assert tables == {"DBA_TABLESPACE_USAGE_METRICS", "DBA_TABLESPACES"}


# ---------------------------------------------------------------- PostgreSQL
def psql_statements(path, variables: dict[str, str]) -> list[str]:
    """The script as psql sends it: meta-commands (\\set, \\if, \\gset...) removed, :"var" and :'var' filled."""
    lines = []
    for ln in path.read_text(encoding="utf-8").splitlines():
        if ln.lstrip().startswith("\\") or ln.lstrip().startswith("--"):
            continue
        lines.append(re.sub(r"\\gset\s*$", ";", ln))  # \gset ends the query like ;
    body = "\n".join(lines)
    body = re.sub(r":\"(\w+)\"", lambda m: '"' + variables[m.group(1)] + '"', body)
    body = re.sub(r":'(\w+)'", lambda m: "'" + variables[m.group(1)] + "'", body)
    return split_sql(body)


def split_sql(body: str) -> list[str]:
    """Split on semicolons outside quotes and $$-quoted bodies, as psql does."""
    out, current = [], []
    for token in re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\$\$.*?\$\$|;)", body, flags=re.S):
        if token == ";":
            out.append("".join(current).strip())
            current = []
        else:
            current.append(token)
    out.append("".join(current).strip())
    return [s for s in out if s]


PG_VARS = {"vendor_schema": "ebill", "canon_schema": "ebill_canon", "place_table": "t_bill_place",
           "invoice_table": "t_ebill_main", "item_table": "t_ebill_detail", "settle_table": "t_his_settle",
           "log_table": "t_interface_log", "stock_table": "t_bill_stock", "void_table": "t_bill_void", "ro_user": "ebops_ro",
           "ebops_ro_password": "sample", "DBNAME": "ebill", "verify_user": "ebops_verify",
           "ebops_verify_password": "sample"}


def _pg_type(dt: exp.DataType) -> str:
    text = dt.sql("postgres").lower().replace(" ", "").replace("decimal", "numeric")
    return {"int": "integer", "bool": "boolean"}.get(text, text)


def test_postgresql_views_declare_the_canonical_columns_and_types():
    views = {}
    for stmt in psql_statements(SQL_DIR / "postgresql" / "01_canonical_views.sql", PG_VARS):
        tree = sqlglot.parse_one(stmt, read="postgres")
        if isinstance(tree, exp.Create) and tree.kind == "VIEW":
            views[tree.this.name] = tree
    assert set(views) == set(CANONICAL_SCHEMA)
    for name, tree in views.items():
        declared = [(e.alias, _pg_type(e.this.to)) for e in tree.expression.expressions]
        assert declared == CANONICAL_SCHEMA[name], name


def test_postgresql_readonly_script_keeps_the_password_out():
    raw = (SQL_DIR / "postgresql" / "02_readonly_account.sql").read_text(encoding="utf-8")
    assert "PASSWORD :'ebops_ro_password'" in raw
    assert not re.search(r"PASSWORD\s+'", raw)
    statements = psql_statements(SQL_DIR / "postgresql" / "02_readonly_account.sql", PG_VARS)
    for stmt in statements:
        sqlglot.parse_one(stmt, read="postgres")
    joined = "\n".join(statements)
    assert "GRANT pg_monitor TO \"ebops_ro\"" in joined
    assert "default_transaction_read_only = on" in joined
    assert "ebill." not in joined  # nothing on the vendor's tables


@pytest.mark.parametrize("name", ["TABLESPACE_USAGE_SQL", "SERVER_VERSION_SQL"])
def test_postgresql_module_sql_parses(name):
    sqlglot.parse_one(getattr(pg_db, name), read="postgres")


def test_postgresql_verify_account_script_grants_read_and_createdb_only():
    raw = (SQL_DIR / "postgresql" / "03_verify_account.sql").read_text(encoding="utf-8")
    assert "PASSWORD :'ebops_verify_password'" in raw
    assert not re.search(r"PASSWORD\s+'", raw)
    statements = psql_statements(SQL_DIR / "postgresql" / "03_verify_account.sql", PG_VARS)
    for stmt in statements:
        sqlglot.parse_one(stmt, read="postgres")
    joined = "\n".join(statements)
    assert "GRANT pg_read_all_data TO \"ebops_verify\"" in joined
    assert "NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION" in joined
    assert "pg_write_all_data" not in joined and "SUPERUSER CREATEDB" not in joined.replace("NOSUPERUSER", "")
