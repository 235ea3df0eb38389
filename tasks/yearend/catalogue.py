"""What the year-end works on, found from the database's own catalogue (never a hard-coded list):
every table of the vendor's schema that is range-partitioned by year on one date/time column, its
partitions (year, tablespace, size, whether already compacted and read-only), and the tablespaces.

One model for both dialects: PostgreSQL-family rows come from pg_catalog (PG_PARTITIONS_SQL), Oracle
rows from DBA_PART_TABLES / DBA_TAB_PARTITIONS / DBA_TABLESPACES / DBA_SEGMENTS
(tasks/yearend/oracle.py), each mapped here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Written by the compaction step as the partition's comment: how a resumed run knows it is done.
COMPACTED_MARK = "ebill-ops 技术年结：已归档压缩"

PG_PARTITIONS_SQL = """
SELECT p.relname AS table_name, pg_get_userbyid(p.relowner) AS table_owner,
       a.attname AS key_column, format_type(a.atttypid, a.atttypmod) AS key_type,
       c.relname AS partition_name, pg_get_expr(c.relpartbound, c.oid) AS bound,
       COALESCE(ts.spcname, '') AS tablespace_name, pg_total_relation_size(c.oid) AS bytes,
       obj_description(c.oid, 'pg_class') AS comment,
       (c.relacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(c.relacl) x
                                    WHERE x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'))) AS writable,
       (SELECT string_agg(DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END, ',')
        FROM aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) x
        WHERE x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) AS writers,
       (SELECT string_agg(ic.relname, ',' ORDER BY ic.relname) FROM pg_index ix
        JOIN pg_class ic ON ic.oid = ix.indexrelid WHERE ix.indrelid = c.oid) AS indexes
FROM pg_partitioned_table pt
JOIN pg_class p ON p.oid = pt.partrelid
JOIN pg_namespace n ON n.oid = p.relnamespace
JOIN pg_attribute a ON a.attrelid = p.oid AND a.attnum = pt.partattrs[0]
LEFT JOIN pg_inherits i ON i.inhparent = p.oid
LEFT JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
WHERE n.nspname = :schema AND pt.partstrat = 'r' AND pt.partnatts = 1 AND NOT p.relispartition
ORDER BY p.relname, c.relname
"""

PG_TABLESPACES_SQL = """
SELECT spcname AS tablespace_name, pg_tablespace_location(oid) AS location,
       pg_get_userbyid(spcowner) AS owner
FROM pg_tablespace ORDER BY spcname
"""

_DATE_TYPE = re.compile(r"^(date|timestamp.*|DATE|TIMESTAMP.*)$")
# FOR VALUES FROM ('2022-01-01 00:00:00') TO ('2023-01-01 00:00:00'); dates alone too
_PG_BOUND = re.compile(r"FROM \('(\d{4})-01-01(?: 00:00:00)?'\) TO \('(\d{4})-01-01(?: 00:00:00)?'\)$")


@dataclass
class Partition:
    table: str
    name: str
    year: int | None            # None: not one calendar year (a DEFAULT, MAXVALUE or other range)
    tablespace: str
    bytes: int
    compacted: bool = False     # PostgreSQL: archived and marked; Oracle: COMPRESSION ENABLED as asked
    writable: bool = True
    writers: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    bound: str = ""


@dataclass
class YearTable:
    schema: str
    name: str
    owner: str
    key_column: str
    partitions: list[Partition]
    maxvalue_partition: str | None = None   # Oracle: a MAXVALUE partition is SPLIT, not ADDed to
    interval: bool = False                  # Oracle: INTERVAL partitioning adds years by itself

    def year(self, y: int) -> Partition | None:
        return next((p for p in self.partitions if p.year == y), None)

    def partition_name(self, y: int) -> str:
        """Next to its siblings' names: the newest year's name with its year replaced."""
        named = sorted((p for p in self.partitions if p.year is not None and str(p.year) in p.name),
                       key=lambda p: p.year)
        if named:
            last = named[-1]
            i = last.name.rfind(str(last.year))
            return last.name[:i] + str(y) + last.name[i + 4:]
        return f"{self.name}_{y}"


@dataclass
class Catalogue:
    dialect: str
    schema: str
    tables: list[YearTable]
    tablespaces: dict[str, dict]            # name -> {"location", "status", "owner"}
    others: list[str] = field(default_factory=list)   # partitioned tables left out, and why
    segments: list[dict] = field(default_factory=list)  # Oracle: DBA_SEGMENTS rows (READ ONLY needs them)

    def tablespace_dir(self) -> str | None:
        """Folder of the newest year's tablespace: where next year's goes by default."""
        located = [(p.year, self.tablespaces.get(p.tablespace, {}).get("location"))
                   for t in self.tables for p in t.partitions if p.year is not None]
        located = [(y, loc) for y, loc in located if loc]
        if not located:
            return None
        loc = max(located)[1]
        return loc.rstrip("/").rsplit("/", 1)[0]

    def to_facts(self) -> dict:
        return {"dialect": self.dialect, "schema": self.schema, "others": self.others,
                "tablespaces": self.tablespaces,
                "tables": [{"table": t.name, "owner": t.owner, "key_column": t.key_column,
                            "partitions": [{"name": p.name, "year": p.year, "tablespace": p.tablespace,
                                            "bytes": p.bytes, "compacted": p.compacted, "writable": p.writable}
                                           for p in t.partitions]} for t in self.tables]}


def pg_year(bound: str) -> int | None:
    m = _PG_BOUND.search(bound or "")
    if m and int(m.group(2)) == int(m.group(1)) + 1:
        return int(m.group(1))
    return None


def pg_catalogue(schema: str, partition_rows: list[dict], tablespace_rows: list[dict]) -> Catalogue:
    """The PostgreSQL catalogue rows as the model: a table counts as year-partitioned when its key
    is a date/time column and at least one partition spans exactly one calendar year."""
    tables: dict[str, YearTable] = {}
    others: list[str] = []
    for r in partition_rows:
        name = r["table_name"]
        if not _DATE_TYPE.match(str(r["key_type"])):
            if name not in others:
                others.append(f"{name}（分区键 {r['key_column']} 为 {r['key_type']}，不按年）")
            continue
        t = tables.setdefault(name, YearTable(schema, name, r["table_owner"], r["key_column"], []))
        if r["partition_name"] is None:
            continue
        t.partitions.append(Partition(
            table=name, name=r["partition_name"], year=pg_year(r["bound"]), tablespace=r["tablespace_name"] or "",
            bytes=int(r["bytes"] or 0), compacted=str(r.get("comment") or "").startswith(COMPACTED_MARK),
            writable=bool(r["writable"]), writers=[w for w in str(r.get("writers") or "").split(",") if w],
            indexes=[i for i in str(r.get("indexes") or "").split(",") if i], bound=r["bound"] or ""))
    year_tables = []
    for t in tables.values():
        if any(p.year is not None for p in t.partitions):
            year_tables.append(t)
        else:
            others.append(f"{t.name}（无按自然年划分的分区）")
    spaces = {r["tablespace_name"]: {"location": r.get("location") or "", "status": "ONLINE",
                                     "owner": r.get("owner") or ""} for r in tablespace_rows}
    return Catalogue("postgresql", schema, year_tables, spaces, others)
