"""技术年结 on Oracle: the catalogue queries (DBA_PART_TABLES, DBA_TAB_PARTITIONS, DBA_TABLESPACES,
DBA_SEGMENTS) mapped to tasks/yearend/catalogue.py's model, and the plan's statements:

- CREATE TABLESPACE … DATAFILE … SIZE … AUTOEXTEND … (name pattern, path, sizes from the site file);
- next year's partition: ADD PARTITION … VALUES LESS THAN, or SPLIT PARTITION of a MAXVALUE partition;
  an INTERVAL-partitioned table makes its years itself and is only listed;
- a year that ended more than `compress_after_years` ago: MOVE PARTITION … COMPRESS BASIC (every
  edition) or ROW STORE COMPRESS ADVANCED (the Advanced Compression option: the site's licence
  setting) UPDATE INDEXES [ONLINE], then that year's tablespace READ ONLY when nothing else lives in it.
Every statement here is parsed with sqlglot's oracle dialect in tests/unit/test_yearend_oracle.py.
"""
from __future__ import annotations

import re
from datetime import date

from config.year_end import YearEndDatabase
from tasks.approvals.plan import PlanStep
from tasks.backup.verify.fingerprint_names import check_name
from tasks.yearend.catalogue import Catalogue, Partition, YearTable
from tasks.yearend.database import old_years, years_to_prepare

D = "oracle"

ORACLE_PART_TABLES_SQL = """
SELECT pt.table_name, pt.partitioning_type, pt.interval, kc.column_name AS key_column, c.data_type AS key_type,
       t.owner AS table_owner
FROM dba_part_tables pt
JOIN dba_part_key_columns kc ON kc.owner = pt.owner AND kc.name = pt.table_name AND kc.object_type = 'TABLE'
JOIN dba_tab_columns c ON c.owner = pt.owner AND c.table_name = pt.table_name AND c.column_name = kc.column_name
JOIN dba_tables t ON t.owner = pt.owner AND t.table_name = pt.table_name
WHERE pt.owner = :schema AND pt.partitioning_type = 'RANGE' AND pt.partitioning_key_count = 1
ORDER BY pt.table_name
"""

# HIGH_VALUE is a LONG: python-oracledb fetches it as text.
ORACLE_PARTITIONS_SQL = """
SELECT table_name, partition_name, partition_position, high_value, tablespace_name, compression, compress_for
FROM dba_tab_partitions
WHERE table_owner = :schema
ORDER BY table_name, partition_position
"""

ORACLE_TABLESPACES_SQL = """
SELECT t.tablespace_name, t.status, MIN(f.file_name) AS location
FROM dba_tablespaces t
LEFT JOIN dba_data_files f ON f.tablespace_name = t.tablespace_name
GROUP BY t.tablespace_name, t.status
ORDER BY t.tablespace_name
"""

ORACLE_SEGMENTS_SQL = """
SELECT owner, segment_name, partition_name, segment_type, tablespace_name, bytes
FROM dba_segments
WHERE tablespace_name IN (SELECT tablespace_name FROM dba_tab_partitions WHERE table_owner = :schema)
"""

CATALOGUE_QUERIES = (ORACLE_PART_TABLES_SQL, ORACLE_PARTITIONS_SQL, ORACLE_TABLESPACES_SQL, ORACLE_SEGMENTS_SQL)

# TO_DATE(' 2023-01-01 00:00:00', 'SYYYY-MM-DD HH24:MI:SS', 'NLS_CALENDAR=GREGORIAN') or TIMESTAMP' 2023-01-01 00:00:00'
_HIGH = re.compile(r"(?:TO_DATE\(|TIMESTAMP)\s*'\s*(\d{4})-(\d{2})-(\d{2})")
COMPRESS_FOR = {"basic": ("BASIC", "COMPRESS BASIC"), "advanced": ("ADVANCED", "ROW STORE COMPRESS ADVANCED")}


def q(name: str) -> str:
    """An Oracle name as the dictionary spells it (upper case), checked, written bare in DDL."""
    return check_name(D, name)


def high_year(high_value: str) -> int | None:
    """The year a partition's upper bound opens (1 January of it), else None (MAXVALUE, mid-year)."""
    m = _HIGH.search(high_value or "")
    return int(m.group(1)) if m and m.group(2) == "01" and m.group(3) == "01" else None


def oracle_catalogue(schema: str, part_tables: list[dict], partitions: list[dict], tablespaces: list[dict],
                     segments: list[dict], compression: str = "basic") -> Catalogue:
    want = COMPRESS_FOR[compression][0]
    sizes = {(s["segment_name"], s["partition_name"]): int(s["bytes"] or 0) for s in segments
             if str(s.get("owner")) == schema}
    tables, others = [], []
    for pt in part_tables:
        name = pt["table_name"]
        if not str(pt["key_type"]).startswith(("DATE", "TIMESTAMP")):
            others.append(f"{name}（分区键 {pt['key_column']} 为 {pt['key_type']}，不按年）")
            continue
        t = YearTable(schema, name, pt.get("table_owner") or schema, pt["key_column"], [],
                      interval=bool(pt.get("interval")))
        previous = None
        for r in (r for r in partitions if r["table_name"] == name):
            upper = high_year(str(r["high_value"]))
            if str(r["high_value"]).strip().upper() == "MAXVALUE":
                t.maxvalue_partition = r["partition_name"]
            # one calendar year: from 1 January (the previous bound) to the next 1 January; the
            # first partition holds everything before its bound, so only when its name says the year
            year = None
            if upper is not None and (previous == upper - 1 or (previous is None and str(upper - 1) in r["partition_name"])):
                year = upper - 1
            previous = upper
            t.partitions.append(Partition(
                table=name, name=r["partition_name"], year=year, tablespace=r["tablespace_name"] or "",
                bytes=sizes.get((name, r["partition_name"]), 0),
                compacted=r.get("compression") == "ENABLED" and want in str(r.get("compress_for") or ""),
                writable=True, bound=str(r["high_value"])))
        if any(p.year for p in t.partitions):
            tables.append(t)
        else:
            others.append(f"{name}（无按自然年划分的分区）")
    spaces = {r["tablespace_name"]: {"location": r.get("location") or "", "status": r["status"], "owner": ""}
              for r in tablespaces}
    return Catalogue(D, schema, tables, spaces, others, segments=list(segments))


def _to_date(y: int) -> str:
    return f"TO_DATE('{y}-01-01', 'YYYY-MM-DD')"


def create_tablespace_sql(cfg: YearEndDatabase, name: str, path: str) -> str:
    ts = cfg.tablespace
    grow = (f"AUTOEXTEND ON NEXT {ts.autoextend_next_mb}M MAXSIZE "
            + (f"{ts.autoextend_max_mb}M" if ts.autoextend_max_mb else "UNLIMITED")) if ts.autoextend else "AUTOEXTEND OFF"
    return f"CREATE TABLESPACE {q(name)} DATAFILE '{path}' SIZE {ts.initial_size_mb}M {grow}"


def add_partition_sql(t: YearTable, part: str, y: int, ts: str) -> str:
    if t.maxvalue_partition:
        return (f"ALTER TABLE {q(t.schema)}.{q(t.name)} SPLIT PARTITION {q(t.maxvalue_partition)} AT ({_to_date(y + 1)}) "
                f"INTO (PARTITION {q(part)} TABLESPACE {q(ts)}, PARTITION {q(t.maxvalue_partition)}) UPDATE INDEXES")
    return (f"ALTER TABLE {q(t.schema)}.{q(t.name)} ADD PARTITION {q(part)} VALUES LESS THAN ({_to_date(y + 1)}) "
            f"TABLESPACE {q(ts)}")


def move_compress_sql(t: YearTable, p: Partition, compression: str, online: bool) -> str:
    return (f"ALTER TABLE {q(t.schema)}.{q(t.name)} MOVE PARTITION {q(p.name)} {COMPRESS_FOR[compression][1]} "
            f"UPDATE INDEXES" + (" ONLINE" if online else ""))


def oracle_plan(cat: Catalogue, cfg: YearEndDatabase, year: int, today: date) -> tuple[list[PlanStep], dict]:
    steps: list[PlanStep] = []
    targets: dict[str, dict] = {}
    notes: list[str] = []
    for y in years_to_prepare(year):
        ts = cfg.tablespace.name(y).upper()
        if ts not in cat.tablespaces:
            sid = f"tablespace:{ts}"
            steps.append(PlanStep(id=sid, kind="sql", target="db", expect=f"新建 {y} 年度表空间 {ts}",
                                  text=create_tablespace_sql(cfg, ts, cfg.tablespace.path(y, cat.tablespace_dir()))))
            targets[sid] = {"kind": "tablespace", "name": ts}
        for t in cat.tables:
            if t.year(y) is not None:
                continue
            if t.interval:
                notes.append(f"{t.name} 为 INTERVAL 分区，{y} 年分区由数据库自动创建（表空间按表的默认设置）")
                continue
            part = t.partition_name(y).upper()
            sid = f"partition:{t.schema}.{t.name}.{part}"
            steps.append(PlanStep(id=sid, kind="sql", target="db", text=add_partition_sql(t, part, y, ts),
                                  expect=f"{t.name} 新增 {y} 年分区 {part}（表空间 {ts}）"))
            targets[sid] = {"kind": "partition", "schema": t.schema, "table": t.name, "year": y}
    newest_old = old_years(today, cfg.compress_after_years)
    old = [(t, p) for t in cat.tables for p in t.partitions if p.year is not None and p.year <= newest_old]
    for t, p in old:
        if p.compacted:  # compressed as asked by an earlier year-end: not planned again
            continue
        sid = f"compact:{t.schema}.{t.name}.{p.name}"
        steps.append(PlanStep(id=sid, kind="sql", target="db", text=move_compress_sql(t, p, cfg.oracle_compression, cfg.oracle_online),
                              expect=f"{p.year} 年数据（已超过 {cfg.compress_after_years} 年）{t.name}.{p.name} 压缩重组，索引同步更新；"
                                     f"前后行数与内容指纹一致"))
        targets[sid] = {"kind": "compact", "schema": t.schema, "table": t.name, "partition": p.name, "year": p.year}
    compacted = {(t.name, p.name) for t, p in old}
    for ts in sorted({p.tablespace for _, p in old}):
        if cat.tablespaces.get(ts, {}).get("status") == "READ ONLY":
            continue
        inside = [s for s in cat.segments if s["tablespace_name"] == ts]
        strangers = [f"{s['segment_name']}.{s['partition_name'] or ''}" for s in inside
                     if s["segment_type"] == "TABLE PARTITION" and (s["segment_name"], s["partition_name"]) not in compacted
                     or s["segment_type"] not in ("TABLE PARTITION", "INDEX PARTITION")]
        if strangers:
            notes.append(f"表空间 {ts} 中还有其他对象（{', '.join(strangers[:5])}），不设为只读")
            continue
        sid = f"readonly:{ts}"
        steps.append(PlanStep(id=sid, kind="sql", target="db", text=f"ALTER TABLESPACE {q(ts)} READ ONLY",
                              expect=f"表空间 {ts}（仅含已压缩的历史年度分区）设为只读"))
        targets[sid] = {"kind": "readonly", "name": ts}
    return steps, {"targets": targets, "compress_years_up_to": newest_old, "notes": notes,
                   "oracle_compression": cfg.oracle_compression}


def oracle_already_done(target: dict, cat: Catalogue) -> str | None:
    kind = target["kind"]
    if kind == "tablespace":
        return f"表空间 {target['name']} 已存在" if target["name"] in cat.tablespaces else None
    if kind == "readonly":
        st = cat.tablespaces.get(target["name"], {}).get("status")
        return f"表空间 {target['name']} 已为只读" if st == "READ ONLY" else None
    t = next((t for t in cat.tables if t.name == target["table"]), None)
    if t is None:
        return None
    if kind == "partition":
        p = t.year(target["year"])
        return f"{t.name} 已有 {target['year']} 年分区 {p.name}" if p else None
    p = next((p for p in t.partitions if p.name == target["partition"]), None)
    return f"{t.name}.{p.name} 已压缩" if p is not None and p.compacted else None
