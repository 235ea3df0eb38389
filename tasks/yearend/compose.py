"""The year-end's parts in one plan and one executor: the database's (tasks/yearend/pg_runner.py or
oracle_runner.py, `year_end.database`) and the file server's (tasks/yearend/files.py,
`year_end.files`); each step goes to the part that planned it. The closing list
(tasks/yearend/closing.py) is read, never planned: it changes nothing.
"""
from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from config.settings import Site
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.connect.ssh import HostPool
from tasks.core.results import error_result
from tasks.yearend import closing, files

FILE_PREFIXES = (files.ARCHIVE_PREFIX, files.REMOVE_PREFIX)


class NothingToPlan(ValueError):
    pass


def _db_runner(site: Site):
    if site.database.dialect == "oracle":
        from tasks.yearend import oracle_runner as runner
    else:
        from tasks.yearend import pg_runner as runner
    return runner


def plan_parts(site: Site, year: int, today: date) -> tuple[list[PlanStep], dict]:
    """Steps of every configured part, database first (next year's partitions are the urgent part)."""
    ye = site.year_end
    if ye is None or (ye.database is None and ye.files is None):
        raise NothingToPlan(f"site {site.site} has no year_end.database nor year_end.files (hint: see config/sites/demo.yaml)")
    steps: list[PlanStep] = []
    facts: dict = {"parts": []}
    if ye.database is not None:
        db_steps, db_facts = _db_runner(site).plan_database(site, year, today)
        steps += db_steps
        facts.update(db_facts)
        facts["parts"].append("database")
    if ye.files is not None:
        # the year being closed is the one before the year prepared: its layout files older than two full years
        steps += files.plan_file_archives(site, year - 1)
        facts["parts"].append("files")
        facts["files_closing_year"] = year - 1
    return steps, facts


class YearEndExecutor:
    """already_done(step) and execute(step) over every part; close() ends the database session."""

    def __init__(self, site: Site, plan: Plan, pool: HostPool):
        self.site, self.plan, self.pool = site, plan, pool
        has_db = any(not s.id.startswith(FILE_PREFIXES) for s in plan.steps)
        self.db = _db_runner(site).Executor(site, plan, pool) if has_db else None

    def _files_session(self):
        return self.pool.get(self.site.host(self.site.year_end.files.host))

    def already_done(self, step: PlanStep) -> str | None:
        if step.id.startswith(FILE_PREFIXES):
            return None  # files.execute_step says "already done" itself, with the archive's member list
        return self.db.already_done(step)

    def execute(self, step: PlanStep) -> StepOutcome:
        if step.id.startswith(FILE_PREFIXES):
            return files.execute_step(self.site, step, self._files_session())
        return self.db.execute(step)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def closing_part(site: Site, year: int) -> tuple[list, dict, dict]:
    """(records, context, evidence files) of the 年度票据归档清单 of `year`, the year being closed; an
    ERROR record when the database cannot be read (the steps' record is kept all the same)."""
    try:
        cl = closing.closing_list(site, year)
    except Exception as exc:  # noqa: BLE001 - unreachable, timeout: ERROR with the reason
        return [error_result(exc, check="closing_number_continuity", title=f"{year}年度票据归档清单", site=site.site,
                             target=str(year))], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        csv = closing.write_csv(cl, Path(tmp) / f"closing_{year}.csv").read_bytes()
    return cl.results(), {"closing_md": closing.render_section(cl)}, {f"closing_{year}.csv": csv}
