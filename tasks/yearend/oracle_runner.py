"""The year-end's Oracle side: the catalogue read through the DBA account (year_end.database.dba), the plan,
and one approved step at a time. Plan mode reads inside SET TRANSACTION READ ONLY. Proof as on
PostgreSQL: row count and content fingerprint of each compressed partition (`PARTITION (name)`)
at plan time, before and after MOVE PARTITION, all equal.
"""
from __future__ import annotations

import time
from datetime import date
from typing import Any

from config.secrets import resolve_secret
from config.settings import Site
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.backup.verify.reading import Statement
from tasks.connect.database.oracle import READ_ONLY_SQL, oracle_session
from tasks.connect.ssh import HostPool
from tasks.core.masking import mask_text
from tasks.core.results import utcnow
from tasks.yearend import proof
from tasks.yearend.catalogue import Catalogue
from tasks.yearend.oracle import (
    ORACLE_PART_TABLES_SQL,
    ORACLE_PARTITIONS_SQL,
    ORACLE_SEGMENTS_SQL,
    ORACLE_TABLESPACES_SQL,
    oracle_already_done,
    oracle_catalogue,
    oracle_plan,
)

D = "oracle"


class StepFailed(RuntimeError):
    pass


def dba_session(site: Site) -> Any:
    d = site.year_end.database.dba
    return oracle_session(d.dsn, d.user, resolve_secret(d.password), connect_timeout_s=d.connect_timeout_s,
                          call_timeout_ms=d.statement_timeout_s * 1000)


def fetcher(conn: Any):
    def fetch(st: Statement) -> list[dict]:
        with conn.cursor() as cur:
            cur.execute(st.sql, st.params or {})
            if cur.description is None:
                return []
            names = [d[0].lower() for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
    return fetch


def read_catalogue(conn: Any, schema: str, compression: str) -> Catalogue:
    fetch = fetcher(conn)
    s = schema.upper()
    return oracle_catalogue(s, fetch(Statement(ORACLE_PART_TABLES_SQL, {"schema": s})),
                            fetch(Statement(ORACLE_PARTITIONS_SQL, {"schema": s})),
                            fetch(Statement(ORACLE_TABLESPACES_SQL)),
                            fetch(Statement(ORACLE_SEGMENTS_SQL, {"schema": s})), compression)


def measure_partition(conn: Any, schema: str, table: str, partition: str, how: dict | None = None) -> dict:
    fetch = fetcher(conn)
    shape = proof.partition_shape(proof.parent_shapes(fetch, D, schema)[table], partition)
    how = how or proof.choose(fetch, D, schema, shape, table)
    out = proof.measure(fetch, D, schema, table, shape, how)
    size = fetch(Statement("SELECT NVL(SUM(bytes), 0) AS b FROM dba_segments WHERE owner = :o AND segment_name = :t "
                              "AND partition_name = :p", {"o": schema, "t": table, "p": partition}))
    out["bytes"] = int(size[0]["b"]) if size else None
    return out


def plan_database(site: Site, year: int, today: date) -> tuple[list[PlanStep], dict]:
    cfg = site.year_end.database
    conn = dba_session(site)
    try:
        with conn.cursor() as cur:
            cur.execute(READ_ONLY_SQL)  # the plan reads only: SET TRANSACTION READ ONLY
        cat = read_catalogue(conn, cfg.schema_name, cfg.oracle_compression)
        steps, facts = oracle_plan(cat, cfg, year, today)
        facts["proof_at_plan"] = {sid: measure_partition(conn, t["schema"], t["table"], t["partition"])
                                  for sid, t in facts["targets"].items() if t["kind"] == "compact"}
        conn.rollback()
    finally:
        conn.close()
    facts["catalogue"] = cat.to_facts()
    return steps, facts


class OracleExecutor:
    def __init__(self, site: Site, plan: Plan, pool: HostPool):
        self.site, self.cfg, self.plan = site, site.year_end.database, plan
        self.targets: dict[str, dict] = plan.facts.get("targets", {})
        self.conn = dba_session(site)

    def close(self) -> None:
        self.conn.close()

    def already_done(self, step: PlanStep) -> str | None:
        return oracle_already_done(self.targets[step.id], read_catalogue(self.conn, self.cfg.schema_name,
                                                                        self.cfg.oracle_compression))

    def execute(self, step: PlanStep) -> StepOutcome:
        started = utcnow()
        target = self.targets[step.id]
        at_plan = self.plan.facts.get("proof_at_plan", {}).get(step.id)
        how = {"method": at_plan["method"], "key_shift": at_plan["key_shift"]} if at_plan else None
        facts: dict = {"statements": []}
        try:
            if target["kind"] == "compact":
                facts["before"] = measure_partition(self.conn, target["schema"], target["table"], target["partition"], how)
            began = time.monotonic()
            with self.conn.cursor() as cur:
                cur.execute(step.text)  # DDL commits by itself
            facts["statements"].append({"text": step.text, "seconds": round(time.monotonic() - began, 3), "output": "OK"})
            if target["kind"] == "compact":
                facts["after"] = measure_partition(self.conn, target["schema"], target["table"], target["partition"], how)
                facts["at_plan"] = at_plan
                if not (proof.same(facts["before"], facts["after"]) and proof.same(at_plan, facts["after"])):
                    raise StepFailed(f"{target['partition']}: 行数或内容指纹前后不一致")
        except Exception as exc:  # noqa: BLE001 - ORA- errors, lost session: the step failed, with its message
            return StepOutcome(step_id=step.id, status="failed", started_at=started, finished_at=utcnow(), facts=facts,
                               output=f"{step.text}\n失败：{mask_text(str(exc)).strip()}")
        return StepOutcome(step_id=step.id, status="done", started_at=started, finished_at=utcnow(), facts=facts,
                           output=f"{step.text}\n  -> OK ({facts['statements'][0]['seconds']} s)")


Executor = OracleExecutor  # the name tasks/yearend/compose.py takes from each dialect
