"""The year-end on Oracle without an Oracle server: recorded catalogue rows (DBA_PART_TABLES,
DBA_TAB_PARTITIONS, DBA_TABLESPACES, DBA_SEGMENTS) of a vendor schema make the plan, and every
statement the plan or the catalogue reading sends is parsed with sqlglot's oracle dialect.

sqlglot parses the catalogue queries into a full tree; its oracle dialect has no grammar for
tablespace and partition DDL and keeps such a statement as a `Command` after tokenizing it (an
unbalanced quote or parenthesis still fails there). So each DDL is also held to the exact shape
Oracle's SQL reference gives it, below."""
from __future__ import annotations

import re
from datetime import date

import pytest
import sqlglot
from sqlglot import exp

from config.year_end import YearEndDatabase
from tasks.yearend.oracle import CATALOGUE_QUERIES, high_year, oracle_already_done, oracle_catalogue, oracle_plan


def _hv(y: int) -> str:
    return f"TO_DATE(' {y}-01-01 00:00:00', 'SYYYY-MM-DD HH24:MI:SS', 'NLS_CALENDAR=GREGORIAN')"


PART_TABLES = [  # DBA_PART_TABLES ⋈ DBA_PART_KEY_COLUMNS ⋈ DBA_TAB_COLUMNS, as recorded
    {"table_name": "T_EBILL_MAIN", "partitioning_type": "RANGE", "interval": None, "key_column": "IVC_DATETIME",
     "key_type": "DATE", "table_owner": "EBILL"},
    {"table_name": "T_EBILL_DETAIL", "partitioning_type": "RANGE", "interval": None, "key_column": "IVC_DATETIME",
     "key_type": "TIMESTAMP(6)", "table_owner": "EBILL"},
    {"table_name": "T_INTERFACE_LOG", "partitioning_type": "RANGE", "interval": "NUMTOYMINTERVAL(1,'YEAR')",
     "key_column": "REQ_DATETIME", "key_type": "DATE", "table_owner": "EBILL"},
    {"table_name": "T_BILL_STOCK", "partitioning_type": "RANGE", "interval": None, "key_column": "ID",
     "key_type": "NUMBER", "table_owner": "EBILL"},
]
PARTITIONS = (
    [{"table_name": "T_EBILL_MAIN", "partition_name": f"P{y}", "partition_position": i, "high_value": _hv(y + 1),
      "tablespace_name": f"TS_EBILL_{y}", "compression": "DISABLED", "compress_for": None}
     for i, y in enumerate(range(2021, 2027), 1)]
    + [{"table_name": "T_EBILL_DETAIL", "partition_name": f"PD_{y}", "partition_position": i,
        "high_value": f"TIMESTAMP' {y + 1}-01-01 00:00:00'", "tablespace_name": f"TS_EBILL_{y}",
        "compression": "DISABLED", "compress_for": None} for i, y in enumerate(range(2021, 2027), 1)]
    + [{"table_name": "T_EBILL_DETAIL", "partition_name": "PD_MAX", "partition_position": 7, "high_value": "MAXVALUE",
        "tablespace_name": "TS_EBILL_2026", "compression": "DISABLED", "compress_for": None},
       {"table_name": "T_INTERFACE_LOG", "partition_name": "P_LOG_2025", "partition_position": 1,
        "high_value": _hv(2026), "tablespace_name": "USERS", "compression": "DISABLED", "compress_for": None},
       {"table_name": "T_INTERFACE_LOG", "partition_name": "SYS_P101", "partition_position": 2,
        "high_value": _hv(2027), "tablespace_name": "USERS", "compression": "DISABLED", "compress_for": None}]
)
TABLESPACES = [{"tablespace_name": f"TS_EBILL_{y}", "status": "ONLINE",
                "location": f"/u01/oradata/EBILL/ts_ebill_{y}_01.dbf"} for y in range(2021, 2027)] + \
              [{"tablespace_name": "USERS", "status": "ONLINE", "location": "/u01/oradata/EBILL/users01.dbf"}]
SEGMENTS = [{"owner": "EBILL", "segment_name": t, "partition_name": f"{p}{y}", "segment_type": "TABLE PARTITION",
             "tablespace_name": f"TS_EBILL_{y}", "bytes": 8 * 1048576}
            for y in range(2021, 2027) for t, p in (("T_EBILL_MAIN", "P"), ("T_EBILL_DETAIL", "PD_"))]
SEGMENTS += [{"owner": "EBILL", "segment_name": "PK_EBILL_MAIN", "partition_name": f"P{y}", "segment_type": "INDEX PARTITION",
              "tablespace_name": f"TS_EBILL_{y}", "bytes": 1048576} for y in range(2021, 2027)]
# a table of another schema lives in 2022's tablespace: that one must not be made READ ONLY
SEGMENTS.append({"owner": "HIS", "segment_name": "T_OLD_SETTLE", "partition_name": None, "segment_type": "TABLE",
                 "tablespace_name": "TS_EBILL_2022", "bytes": 1048576})

TODAY = date(2026, 12, 2)


def _cfg(**over) -> YearEndDatabase:
    data = {"schema": "EBILL", "dba": {"dsn": "10.0.0.21:1521/EBILLDB", "user": "EBOPS_DBA", "password": {"env": "X"}},
            "tablespace": {"name_pattern": "TS_EBILL_{year}", "location": "{tablespace_dir}/ts_ebill_{year}_01.dbf",
                           "initial_size_mb": 2048, "autoextend_next_mb": 512}}
    data.update(over)
    return YearEndDatabase.model_validate(data)


def _plan(**over):
    cfg = _cfg(**over)
    cat = oracle_catalogue("EBILL", PART_TABLES, PARTITIONS, TABLESPACES, SEGMENTS, cfg.oracle_compression)
    return cat, *oracle_plan(cat, cfg, 2027, TODAY)


# the shapes of Oracle's SQL reference the plan's DDL must have
SHAPES = {
    "tablespace": re.compile(r"^CREATE TABLESPACE TS_EBILL_\d{4} DATAFILE '/[^']+\.dbf' SIZE \d+M "
                             r"(AUTOEXTEND ON NEXT \d+M MAXSIZE (UNLIMITED|\d+M)|AUTOEXTEND OFF)$"),
    "partition": re.compile(r"^ALTER TABLE EBILL\.T_\w+ (ADD PARTITION \w+ VALUES LESS THAN \(TO_DATE\('\d{4}-01-01', "
                            r"'YYYY-MM-DD'\)\) TABLESPACE TS_EBILL_\d{4}|SPLIT PARTITION \w+ AT \(TO_DATE\('\d{4}-01-01', "
                            r"'YYYY-MM-DD'\)\) INTO \(PARTITION \w+ TABLESPACE TS_EBILL_\d{4}, PARTITION \w+\) UPDATE INDEXES)$"),
    "compact": re.compile(r"^ALTER TABLE EBILL\.T_\w+ MOVE PARTITION \w+ (COMPRESS BASIC|ROW STORE COMPRESS ADVANCED) "
                          r"UPDATE INDEXES( ONLINE)?$"),
    "readonly": re.compile(r"^ALTER TABLESPACE TS_EBILL_\d{4} READ ONLY$"),
}


def test_catalogue_finds_year_tables_and_leaves_the_others_with_why():
    cat, _, _ = _plan()
    assert [t.name for t in cat.tables] == ["T_EBILL_MAIN", "T_EBILL_DETAIL", "T_INTERFACE_LOG"]
    assert any("T_BILL_STOCK" in o and "NUMBER" in o for o in cat.others)
    main = cat.tables[0]
    assert [p.year for p in main.partitions] == [2021, 2022, 2023, 2024, 2025, 2026]
    assert cat.tables[1].maxvalue_partition == "PD_MAX" and cat.tables[2].interval
    assert high_year("MAXVALUE") is None and high_year(_hv(2027)) == 2027
    assert cat.tablespace_dir() == "/u01/oradata/EBILL"


def test_plan_steps_and_every_statement_parses_as_oracle():
    _, steps, facts = _plan()
    ids = [s.id for s in steps]
    assert ids[:3] == ["tablespace:TS_EBILL_2027", "partition:EBILL.T_EBILL_MAIN.P2027",
                       "partition:EBILL.T_EBILL_DETAIL.PD_2027"]
    assert "tablespace:TS_EBILL_2028" in ids and "partition:EBILL.T_EBILL_MAIN.P2028" in ids
    # 2023 ended on 1 January 2024, more than two years before December 2026: compressed;
    # 2024 ended on 1 January 2025, less than two years before: not
    compacts = [i for i in ids if i.startswith("compact:")]
    assert compacts == ["compact:EBILL.T_EBILL_MAIN.P2021", "compact:EBILL.T_EBILL_MAIN.P2022",
                        "compact:EBILL.T_EBILL_MAIN.P2023", "compact:EBILL.T_EBILL_DETAIL.PD_2021",
                        "compact:EBILL.T_EBILL_DETAIL.PD_2022", "compact:EBILL.T_EBILL_DETAIL.PD_2023"]
    assert [i for i in ids if i.startswith("readonly:")] == ["readonly:TS_EBILL_2021", "readonly:TS_EBILL_2023"]
    assert any("TS_EBILL_2022" in n and "T_OLD_SETTLE" in n for n in facts["notes"])
    assert any("T_INTERFACE_LOG" in n and "INTERVAL" in n for n in facts["notes"])
    detail = next(s for s in steps if s.id == "partition:EBILL.T_EBILL_DETAIL.PD_2027")
    assert "SPLIT PARTITION PD_MAX AT (TO_DATE('2028-01-01', 'YYYY-MM-DD'))" in detail.text
    for s in steps:
        tree = sqlglot.parse_one(s.text, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
        assert tree is not None
        assert SHAPES[s.id.split(":")[0]].match(s.text), s.text
    assert next(s for s in steps if s.id == "tablespace:TS_EBILL_2027").text == (
        "CREATE TABLESPACE TS_EBILL_2027 DATAFILE '/u01/oradata/EBILL/ts_ebill_2027_01.dbf' SIZE 2048M "
        "AUTOEXTEND ON NEXT 512M MAXSIZE UNLIMITED")


@pytest.mark.parametrize("compression,online,clause", [("basic", True, "COMPRESS BASIC UPDATE INDEXES ONLINE"),
                                                       ("advanced", False, "ROW STORE COMPRESS ADVANCED UPDATE INDEXES")])
def test_compression_follows_the_licence_setting(compression, online, clause):
    _, steps, _ = _plan(oracle_compression=compression, oracle_online=online)
    move = next(s for s in steps if s.id == "compact:EBILL.T_EBILL_MAIN.P2021")
    assert move.text == f"ALTER TABLE EBILL.T_EBILL_MAIN MOVE PARTITION P2021 {clause}"


def test_catalogue_queries_parse_into_full_trees():
    for sql in CATALOGUE_QUERIES:
        tree = sqlglot.parse_one(sql.replace(":schema", "'EBILL'"), read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
        assert isinstance(tree, exp.Select), sql


def test_already_done_reads_the_catalogue_as_it_is_after_execution():
    _, steps, facts = _plan()
    later_parts = [dict(r, compression="ENABLED", compress_for="BASIC") if r["partition_name"] in ("P2021", "PD_2021") else r
                   for r in PARTITIONS]
    later_parts.append({"table_name": "T_EBILL_MAIN", "partition_name": "P2027", "partition_position": 7,
                        "high_value": _hv(2028), "tablespace_name": "TS_EBILL_2027", "compression": "DISABLED",
                        "compress_for": None})
    later_ts = [dict(r, status="READ ONLY") if r["tablespace_name"] == "TS_EBILL_2021" else r for r in TABLESPACES]
    later_ts.append({"tablespace_name": "TS_EBILL_2027", "status": "ONLINE", "location": "/u01/x.dbf"})
    cat = oracle_catalogue("EBILL", PART_TABLES, later_parts, later_ts, SEGMENTS)
    done = {sid: oracle_already_done(t, cat) for sid, t in facts["targets"].items()}
    assert done["tablespace:TS_EBILL_2027"] and done["partition:EBILL.T_EBILL_MAIN.P2027"]
    assert done["compact:EBILL.T_EBILL_MAIN.P2021"] and done["readonly:TS_EBILL_2021"]
    assert done["compact:EBILL.T_EBILL_MAIN.P2022"] is None and done["readonly:TS_EBILL_2023"] is None
    assert done["tablespace:TS_EBILL_2028"] is None and done["partition:EBILL.T_EBILL_DETAIL.PD_2027"] is None
    # compressed BASIC is not done when the site asks for ADVANCED
    adv = oracle_catalogue("EBILL", PART_TABLES, later_parts, later_ts, SEGMENTS, "advanced")
    assert oracle_already_done(facts["targets"]["compact:EBILL.T_EBILL_MAIN.P2021"], adv) is None


def test_partition_proof_statements_parse_as_oracle():
    from tasks.backup.verify.catalog import TableShape
    from tasks.backup.verify.fingerprint_names import Column
    from tasks.yearend import proof

    shape = TableShape("T_EBILL_MAIN", (Column("ID", "NUMBER", 22), Column("BILL_NUMBER", "VARCHAR2", 10),
                                        Column("IVC_DATETIME", "DATE", 7)), ("ID",))
    part = proof.partition_shape(shape, "P2021")
    q = proof.fingerprint_query("oracle", "EBILL", "T_EBILL_MAIN", part, "sum", 12)
    count = proof.count_statement("oracle", "EBILL", "T_EBILL_MAIN", "P2021")
    for st in (q, count):
        assert 'FROM "EBILL"."T_EBILL_MAIN" PARTITION ("P2021") t' in st.sql
        assert isinstance(sqlglot.parse_one(st.sql, read="oracle", error_level=sqlglot.ErrorLevel.RAISE), exp.Select)
