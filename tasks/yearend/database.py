"""技术年结, database part (QH row 14): "年底增加次年度表空间，对数据库进行分表分库。同时，对超过2年的
静态数据进行压缩". Plan from the catalogue, then execute one approved step at a time.

Steps (ids stable across re-renders, so a resumed run can tell what is done):
- `directory:<ts>` (PostgreSQL, optional): the empty tablespace folder on the database host, owned
  like its parent (the server's OS user), since CREATE TABLESPACE needs one;
- `tablespace:<ts>`: next year's tablespace (and the year after next's, when missing);
- `partition:<schema>.<partition>`: next year's partition of every year-partitioned table, in it;
- `compact:<schema>.<partition>`: a year that ended more than `compress_after_years` ago, rewritten
  compacted (PostgreSQL: moved into the archive tablespace with its indexes, VACUUM FULL; Oracle:
  MOVE PARTITION … COMPRESS … UPDATE INDEXES), proven unchanged by row count and content fingerprint
  before and after (tasks/yearend/proof.py);
- `readonly:<…>`: then no more writes (PostgreSQL: REVOKE the write privileges on the partition;
  Oracle: that year's tablespace READ ONLY, tasks/yearend/oracle.py).
Each step's `already_done` reads the catalogue again, never a local note: a second run, or one
after a run killed halfway, does only what the database does not show done.
"""
from __future__ import annotations

import shlex
from datetime import date

from config.year_end import YearEndDatabase
from tasks.approvals.plan import PlanStep
from tasks.backup.verify.fingerprint_names import check_name
from tasks.yearend.catalogue import COMPACTED_MARK, Catalogue, Partition, YearTable

DIALECT = "postgresql"


def q(name: str) -> str:
    """A PostgreSQL name, checked against the plain-identifier pattern, as written in DDL. Plain
    lower-case names are left bare so that a DBA reads the statements as he would write them."""
    check_name(DIALECT, name)
    return name if name == name.lower() else f'"{name}"'


def old_years(today: date, after_years: int) -> int:
    """The newest year that ended more than `after_years` years before today: its end,
    1 January of the next year, lies at least that long back."""
    return today.year - after_years - 1


def years_to_prepare(year: int) -> list[int]:
    """The year asked for and the year after it (checked too, planned when missing)."""
    return [year, year + 1]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pg_plan(cat: Catalogue, cfg: YearEndDatabase, year: int, today: date, db_host: str | None) -> tuple[list[PlanStep], dict]:
    """The steps for PostgreSQL-family databases, and per step what its already_done check reads."""
    steps: list[PlanStep] = []
    targets: dict[str, dict] = {}
    ts_dir = cat.tablespace_dir()

    def add(step: PlanStep, **target) -> None:
        steps.append(step)
        targets[step.id] = target

    def tablespace(name: str, location: str, expect: str) -> None:
        if name in cat.tablespaces:
            return
        if cfg.tablespace.make_directory and db_host:
            parent = location.rstrip("/").rsplit("/", 1)[0]
            cmd = f"mkdir -m 0700 -- {shlex.quote(location)} && chown --reference={shlex.quote(parent)} -- {shlex.quote(location)}"
            add(PlanStep(id=f"directory:{name}", kind="command", target=db_host, text=cmd,
                         expect=f"在数据库主机上建立表空间 {name} 的空目录（属主同上级目录，即数据库服务用户）"),
                kind="directory", path=location)
        owner = f" OWNER {q(cfg.tablespace.owner)}" if cfg.tablespace.owner else ""
        add(PlanStep(id=f"tablespace:{name}", kind="sql", target="db",
                     text=f"CREATE TABLESPACE {q(name)}{owner} LOCATION {_literal(location)}", expect=expect),
            kind="tablespace", name=name)

    for y in years_to_prepare(year):
        ts = cfg.tablespace.name(y)
        tablespace(ts, cfg.tablespace.path(y, ts_dir), f"新建 {y} 年度表空间 {ts}")
        for t in cat.tables:
            if t.year(y) is not None:
                continue
            part = t.partition_name(y)
            text = (f"CREATE TABLE {q(t.schema)}.{q(part)} PARTITION OF {q(t.schema)}.{q(t.name)}\n"
                    f"    FOR VALUES FROM ('{y}-01-01') TO ('{y + 1}-01-01') TABLESPACE {q(ts)};\n"
                    f"ALTER TABLE {q(t.schema)}.{q(part)} OWNER TO {q(t.owner)}")
            add(PlanStep(id=f"partition:{t.schema}.{part}", kind="sql", target="db", text=text,
                         expect=f"{t.name} 新增 {y} 年分区 {part}（表空间 {ts}），归属 {t.owner}"),
                kind="partition", schema=t.schema, table=t.name, year=y)

    newest_old = old_years(today, cfg.compress_after_years)
    old = [(t, p) for t in cat.tables for p in t.partitions if p.year is not None and p.year <= newest_old]
    if cfg.postgresql_action == "archive" and old:
        if cfg.archive is None:
            raise ValueError("year_end.database.postgresql_action is 'archive' but year_end.database.archive is missing "
                             "(hint: give archive.tablespace and archive.location)")
        arch = cfg.archive.tablespace
        # a year compacted by an earlier year-end is not planned again (its plan said so then)
        to_compact = [(t, p) for t, p in old if not (p.compacted and p.tablespace == arch)]
        if to_compact:
            tablespace(arch, cfg.archive.path(ts_dir), f"新建归档表空间 {arch}（存放超过 {cfg.compress_after_years} 年的静态数据）")
        for t, p in to_compact:
            add(compact_step(t, p, arch, cfg.compress_after_years), kind="compact", schema=t.schema, table=t.name,
                partition=p.name, year=p.year, tablespace=arch)
        for t, p in old:
            if p.writable:
                add(readonly_step(t, p), kind="readonly", schema=t.schema, table=t.name, partition=p.name, year=p.year)
    facts = {"targets": targets, "compress_years_up_to": newest_old, "tablespace_dir": ts_dir,
             "postgresql_action": cfg.postgresql_action}
    return steps, facts


def compact_step(t: YearTable, p: Partition, archive: str, after_years: int) -> PlanStep:
    rel = f"{q(t.schema)}.{q(p.name)}"
    lines = [f"ALTER TABLE {rel} SET TABLESPACE {q(archive)}"]
    lines += [f"ALTER INDEX {q(t.schema)}.{q(i)} SET TABLESPACE {q(archive)}" for i in p.indexes]
    lines += [f"VACUUM (FULL, ANALYZE) {rel}",
              f"COMMENT ON TABLE {rel} IS {_literal(f'{COMPACTED_MARK}（{p.year} 年，{archive}）')}"]
    return PlanStep(id=f"compact:{t.schema}.{p.name}", kind="sql", target="db", text=";\n".join(lines),
                    expect=(f"{p.year} 年数据（已超过 {after_years} 年）{p.name} 连同索引移入 {archive} 并重写压实；"
                            f"移动前后行数与内容指纹一致"))


def readonly_step(t: YearTable, p: Partition) -> PlanStep:
    rel = f"{q(t.schema)}.{q(p.name)}"
    who = sorted(set(p.writers) | {t.owner, "PUBLIC"})
    grantees = ", ".join("PUBLIC" if w == "PUBLIC" else q(w) for w in who)
    return PlanStep(id=f"readonly:{t.schema}.{p.name}", kind="sql", target="db",
                    text=f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {rel} FROM {grantees}",
                    expect=f"{p.name} 收回写权限（{', '.join(who)}），{p.year} 年数据只读")


def statements(step: PlanStep) -> list[str]:
    """A step's statements, one per line group ending in ';' (the plan's text is what runs)."""
    return [s.strip() for s in step.text.split(";\n") if s.strip()]


def pg_already_done(target: dict, cat: Catalogue) -> str | None:
    """Why the step needs nothing (read from the catalogue as it is now), or None."""
    kind = target["kind"]
    if kind == "tablespace":
        return f"表空间 {target['name']} 已存在" if target["name"] in cat.tablespaces else None
    table = next((t for t in cat.tables if t.schema == target.get("schema") and t.name == target.get("table")), None)
    if kind == "partition":
        p = table.year(target["year"]) if table else None
        return f"{target['table']} 已有 {target['year']} 年分区 {p.name}（{p.tablespace}）" if p else None
    part = next((p for p in table.partitions if p.name == target.get("partition")), None) if table else None
    if part is None:
        return None
    if kind == "compact" and part.compacted and part.tablespace == target["tablespace"]:
        return f"{part.name} 已在 {part.tablespace} 且已标记压实"
    if kind == "readonly" and not part.writable:
        return f"{part.name} 已无写权限"
    return None
