"""The year-end's PostgreSQL-family side: read the catalogue, make the plan, and execute one approved
step at a time through the DBA session (year_end.database.dba, write-capable, apart from the checks'
read-only account). Plan mode opens the same account read-only: planning cannot change anything.
"""
from __future__ import annotations

import time
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from config.secrets import resolve_secret
from config.hosts import HostConfig
from config.settings import Site
from config.year_end import YearEndDatabase
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.backup.verify.reading import Statement
from tasks.connect.database.deadline import Deadline
from tasks.connect.database.params import to_pyformat
from tasks.connect.database.postgresql import pg_session
from tasks.connect.ssh import HostPool
from tasks.core.masking import mask_text
from tasks.core.results import utcnow
from tasks.yearend import proof
from tasks.yearend.catalogue import PG_PARTITIONS_SQL, PG_TABLESPACES_SQL, Catalogue, pg_catalogue
from tasks.yearend.database import DIALECT, pg_already_done, pg_plan, statements


class StepFailed(RuntimeError):
    pass


def dba_session(cfg: YearEndDatabase, *, read_only: bool) -> Any:
    d = cfg.dba
    try:
        return pg_session(d.dsn, d.user, resolve_secret(d.password), Deadline(d.statement_timeout_s, d.lock_timeout_s),
                          connect_timeout_s=d.connect_timeout_s, read_only=read_only,
                          application_name="ebill-ops year-end")
    except psycopg.Error as exc:
        raise StepFailed(f"cannot connect to PostgreSQL ({d.dsn}) as {d.user}: {mask_text(str(exc)).strip()} "
                         f"(hint: check year_end.database.dba in the site file and its password variable)") from None


def fetcher(conn: Any):
    def fetch(st: Statement) -> list[dict]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(to_pyformat(st.sql) if st.params else st.sql, st.params or None)
            return list(cur.fetchall()) if cur.description else []
    return fetch


def read_catalogue(conn: Any, schema: str) -> Catalogue:
    fetch = fetcher(conn)
    return pg_catalogue(schema, fetch(Statement(PG_PARTITIONS_SQL, {"schema": schema})),
                        fetch(Statement(PG_TABLESPACES_SQL)))


def measure_partition(conn: Any, schema: str, table: str, partition: str, how: dict | None = None) -> dict:
    """Row count, fingerprint and size of one partition, in one read-only-looking transaction."""
    fetch = fetcher(conn)
    with conn.transaction():
        shape = proof.partition_shape(proof.parent_shapes(fetch, DIALECT, schema)[table], partition)
        how = how or proof.choose(fetch, DIALECT, schema, shape, table)
        out = proof.measure(fetch, DIALECT, schema, table, shape, how)
    out["bytes"] = int(fetch(Statement("SELECT pg_total_relation_size(CAST(:rel AS regclass)) AS b",
                                          {"rel": f'"{schema}"."{partition}"'}))[0]["b"])
    return out


def plan_database(site: Site, year: int, today: date) -> tuple[list[PlanStep], dict]:
    """Steps and facts from the catalogue, with the plan-time proof of every partition to compact."""
    cfg = site.year_end.database
    db_host = next((h.name for h in site.hosts if h.role == "database"), None)
    with dba_session(cfg, read_only=True) as conn:
        cat = read_catalogue(conn, cfg.schema_name)
        steps, facts = pg_plan(cat, cfg, year, today, db_host)
        measured = {}
        for sid, t in facts["targets"].items():
            if t["kind"] == "compact":
                measured[sid] = measure_partition(conn, t["schema"], t["table"], t["partition"])
    facts.update(catalogue=cat.to_facts(), proof_at_plan=measured)
    return steps, facts


class PgExecutor:
    """already_done(step) and execute(step) for an approved plan, over one DBA session and the
    site's SSH hosts (a pool the caller closes)."""

    def __init__(self, site: Site, plan: Plan, pool: HostPool):
        self.site, self.cfg, self.plan, self.pool = site, site.year_end.database, plan, pool
        self.targets: dict[str, dict] = plan.facts.get("targets", {})
        self.conn = dba_session(self.cfg, read_only=False)

    def close(self) -> None:
        self.conn.close()

    def _host(self, name: str) -> HostConfig:
        return self.site.host(name)

    def already_done(self, step: PlanStep) -> str | None:
        target = self.targets[step.id]
        cat = read_catalogue(self.conn, self.cfg.schema_name)
        if target["kind"] == "directory":
            name = step.id.split(":", 1)[1]
            if name in cat.tablespaces:
                return f"表空间 {name} 已存在，无需目录"
            res = self.pool.get(self._host(step.target)).run(["test", "-d", target["path"]])
            return f"目录 {target['path']} 已存在" if res.ok else None
        return pg_already_done(target, cat)

    def execute(self, step: PlanStep) -> StepOutcome:
        started = utcnow()
        target = self.targets[step.id]
        facts: dict = {"statements": []}
        try:
            if step.kind == "command":
                res = self.pool.get(self._host(step.target)).run(["sh", "-c", step.text])
                facts["statements"].append({"text": step.text, "seconds": round((res.finished_at - res.started_at).total_seconds(), 3),
                                            "output": mask_text((res.stdout + res.stderr).strip())[:2000],
                                            "exit_code": res.exit_code})
                if not res.ok:
                    raise StepFailed(f"exit {res.exit_code}: {(res.stderr or res.stdout).strip()[:500]}")
            else:
                if target["kind"] == "compact":
                    facts["before"] = self._measure(target, step.id)
                for text in statements(step):
                    facts["statements"].append(self._run_sql(text))
                if target["kind"] == "compact":
                    facts["after"] = self._measure(target, step.id)
                    facts["at_plan"] = self.plan.facts.get("proof_at_plan", {}).get(step.id)
                    if not (proof.same(facts["before"], facts["after"]) and proof.same(facts["at_plan"], facts["after"])):
                        raise StepFailed(f"{target['partition']}: 行数或内容指纹前后不一致 "
                                         f"(方案时 {_fig(facts['at_plan'])}，执行前 {_fig(facts['before'])}，执行后 {_fig(facts['after'])})")
        except (StepFailed, psycopg.Error, OSError) as exc:
            return StepOutcome(step_id=step.id, status="failed", output=_output(facts) + f"\n失败：{mask_text(str(exc)).strip()}",
                               started_at=started, finished_at=utcnow(), facts=facts)
        return StepOutcome(step_id=step.id, status="done", output=_output(facts), started_at=started,
                           finished_at=utcnow(), facts=facts)

    def _measure(self, target: dict, step_id: str) -> dict:
        at_plan = self.plan.facts.get("proof_at_plan", {}).get(step_id)
        how = {"method": at_plan["method"], "key_shift": at_plan["key_shift"]} if at_plan else None
        return measure_partition(self.conn, target["schema"], target["table"], target["partition"], how)

    def _run_sql(self, text: str) -> dict:
        began = time.monotonic()
        notices: list[str] = []
        handler = lambda diag: notices.append(f"{diag.severity}: {diag.message_primary}")  # noqa: E731
        self.conn.add_notice_handler(handler)
        try:
            with self.conn.cursor() as cur:
                cur.execute(text)
                status = cur.statusmessage or ""
        finally:
            self.conn.remove_notice_handler(handler)
        return {"text": text, "seconds": round(time.monotonic() - began, 3),
                "output": "\n".join([status, *notices]).strip()}


def _fig(m: dict | None) -> str:
    return "无" if not m else f"{m['rows']} 行/{m['fingerprint'][:12]}"


def _output(facts: dict) -> str:
    return "\n".join(f"{s['text']}\n  -> {s['output'] or 'OK'} ({s['seconds']} s)" for s in facts.get("statements", []))


Executor = PgExecutor  # the name tasks/yearend/compose.py takes from each dialect
