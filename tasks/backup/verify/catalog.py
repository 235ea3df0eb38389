"""The verification's catalogue reads: the object inventory of a schema, its tables' shapes
(columns, primary key) and their row counts, as SQL for PostgreSQL-family and Oracle databases and
as the mapping of their rows. Names are checked and quoted (fingerprint_names.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from tasks.backup.verify.fingerprint_names import Column, check_name
from tasks.backup.verify.fingerprint_names import checked_dialect as _dialect
from tasks.backup.verify.reading import AsOf, Statement, source_clause

# ------------------------------------------------------------------ object inventory

@dataclass(frozen=True)
class DbObject:
    """One object of a schema. System-named Oracle constraints and indexes (SYS_C…) are named by
    what they are (table, type, columns) instead, because a restore may name them anew."""
    kind: str  # table | index | constraint | sequence | view
    name: str
    table: str | None = None


PG_INVENTORY_SQL = """
SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table'
            WHEN c.relkind IN ('i', 'I') THEN 'index'
            WHEN c.relkind = 'S' THEN 'sequence'
            ELSE 'view' END AS kind,
       c.relname AS name,
       CASE WHEN c.relkind IN ('r', 'p') THEN c.relname ELSE t.relname END AS table_name
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index x ON x.indexrelid = c.oid
LEFT JOIN pg_class t ON t.oid = x.indrelid
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'i', 'I', 'S', 'v', 'm')
UNION ALL
SELECT 'constraint', con.conname, rel.relname
FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_namespace n ON n.oid = rel.relnamespace
WHERE n.nspname = :schema
ORDER BY 1, 2, 3
"""

# Left out: the recycle bin (BIN$…), LOB indexes, IOT overflow and nested tables (parts of another
# object) and identity-column sequences (ISEQ$$_<object id>: renamed by every import).
ORACLE_INVENTORY_SQL = """
SELECT 'table' AS kind, t.table_name AS name, t.table_name AS table_name
FROM all_tables t
WHERE t.owner = :schema AND t.dropped = 'NO' AND t.nested = 'NO' AND t.secondary = 'N'
  AND (t.iot_type IS NULL OR t.iot_type = 'IOT')
UNION ALL
SELECT 'index',
       CASE WHEN i.generated = 'Y' THEN i.table_name || '(' ||
            (SELECT LISTAGG(ic.column_name, ',') WITHIN GROUP (ORDER BY ic.column_position)
             FROM all_ind_columns ic WHERE ic.index_owner = i.owner AND ic.index_name = i.index_name) || ')'
            ELSE i.index_name END,
       i.table_name
FROM all_indexes i
WHERE i.owner = :schema AND i.index_type <> 'LOB' AND i.table_name NOT LIKE 'BIN$%'
UNION ALL
SELECT 'constraint',
       CASE WHEN c.generated = 'GENERATED NAME' THEN c.table_name || ':' || c.constraint_type || '(' ||
            (SELECT LISTAGG(cc.column_name, ',') WITHIN GROUP (ORDER BY cc.position, cc.column_name)
             FROM all_cons_columns cc WHERE cc.owner = c.owner AND cc.constraint_name = c.constraint_name) || ')'
            ELSE c.constraint_name END,
       c.table_name
FROM all_constraints c
WHERE c.owner = :schema AND c.table_name NOT LIKE 'BIN$%'
UNION ALL
SELECT 'sequence', s.sequence_name, NULL
FROM all_sequences s
WHERE s.sequence_owner = :schema AND s.sequence_name NOT LIKE 'ISEQ$$%'
UNION ALL
SELECT 'view', v.view_name, NULL
FROM all_views v
WHERE v.owner = :schema
ORDER BY 1, 2, 3
"""


def inventory_statement(dialect: str, schema: str) -> Statement:
    sql = PG_INVENTORY_SQL if _dialect(dialect) == "postgresql" else ORACLE_INVENTORY_SQL
    return Statement(sql, {"schema": check_name(dialect, schema)})


def inventory_from_rows(rows: Iterable[dict]) -> frozenset[DbObject]:
    """Rows of the inventory query (lower-case keys) as a set, ready for set difference."""
    return frozenset(DbObject(kind=str(r["kind"]), name=str(r["name"]),
                              table=str(r["table_name"]) if r.get("table_name") is not None else None)
                     for r in rows)


# ------------------------------------------------------------------ table shapes (columns, primary key)

@dataclass(frozen=True)
class TableShape:
    name: str
    columns: tuple[Column, ...]
    pk: tuple[str, ...]  # primary-key columns in key order; () when the table has none

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name}")


# Ordinary tables and partitioned parents; partitions are read through their parent (one
# fingerprint covers every year's partition, whatever tablespace it sits in).
PG_COLUMNS_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name, a.attnum AS column_id,
       format_type(a.atttypid, a.atttypmod) AS data_type, k.ord AS pk_position
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
LEFT JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON k.attnum = a.attnum
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""

ORACLE_COLUMNS_SQL = """
SELECT c.table_name, c.column_name, c.column_id, c.data_type, c.data_length AS max_bytes,
       k.position AS pk_position
FROM all_tab_columns c
JOIN all_tables t ON t.owner = c.owner AND t.table_name = c.table_name
LEFT JOIN (
    SELECT cc.table_name, cc.column_name, cc.position
    FROM all_constraints pk
    JOIN all_cons_columns cc ON cc.owner = pk.owner AND cc.constraint_name = pk.constraint_name
    WHERE pk.owner = :schema AND pk.constraint_type = 'P'
) k ON k.table_name = c.table_name AND k.column_name = c.column_name
WHERE c.owner = :schema AND t.dropped = 'NO' AND t.nested = 'NO' AND t.secondary = 'N'
  AND t.temporary = 'N' AND (t.iot_type IS NULL OR t.iot_type = 'IOT')
ORDER BY c.table_name, c.column_id
"""


def columns_statement(dialect: str, schema: str) -> Statement:
    sql = PG_COLUMNS_SQL if _dialect(dialect) == "postgresql" else ORACLE_COLUMNS_SQL
    return Statement(sql, {"schema": check_name(dialect, schema)})


def shapes_from_rows(rows: Iterable[dict]) -> dict[str, TableShape]:
    """Rows of the columns query (ordered by table, column id) as table name -> TableShape."""
    cols: dict[str, list[Column]] = {}
    keys: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        table = str(r["table_name"])
        cols.setdefault(table, []).append(Column(name=str(r["column_name"]), data_type=str(r["data_type"]),
                                                 max_bytes=int(r["max_bytes"]) if r.get("max_bytes") is not None else None))
        if r.get("pk_position") is not None:
            keys.setdefault(table, []).append((int(r["pk_position"]), str(r["column_name"])))
    return {t: TableShape(name=t, columns=tuple(c), pk=tuple(n for _, n in sorted(keys.get(t, []))))
            for t, c in cols.items()}


# ------------------------------------------------------------------ row counts

def row_counts_statement(dialect: str, schema: str, tables: Iterable[str], as_of: AsOf | None = None) -> Statement:
    """One statement counting every table (UNION ALL), under the same AsOf as the fingerprints."""
    params: dict = {}
    parts = [f"SELECT '{check_name(dialect, t)}' AS table_name, COUNT(*) AS row_count\n"
             f"FROM {source_clause(_dialect(dialect), schema, t, as_of, params)}"
             for t in sorted(tables)]
    if not parts:
        raise ValueError("no table to count")
    return Statement("\nUNION ALL\n".join(parts), params)


def row_counts_from_rows(rows: Iterable[dict]) -> dict[str, int]:
    return {str(r["table_name"]): int(r["row_count"]) for r in rows}


