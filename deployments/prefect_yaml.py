"""prefect.yaml for a Prefect server with workers inside the hospitals' networks, produced from the
very list `ebops ui` serves (deployments/serve.deployments), so the two cannot drift apart.

Each site's deployments go to one work pool and to a work queue named after the site: the worker
inside that hospital's intranet polls only its queue (`prefect worker start --pool P --work-queue
SITE`), so a run of one hospital is never picked up inside another hospital's network. The
pre-holiday and backup-verification dates are RRULE sets computed from the holiday calendar on the
day the file is written: write it again (and `prefect deploy --all`) after each yearly calendar
update, as `ebops fleet yaml` says in the file's head.
"""
from __future__ import annotations

from datetime import date

import yaml

POOL = "hospital-pool"
HEADER = """\
# Written by `ebops fleet yaml` on {today} from deployments/serve.py's list (the same deployments
# `ebops ui` serves): do not edit by hand, write it again. Every site's deployments go to work
# pool {pool!r}, work queue = the site id; a worker inside each hospital's network polls its queue:
#     prefect worker start --pool {pool} --work-queue SITE
# Register them with `prefect deploy --all` (or `ebops fleet deploy`). The pre-holiday and backup-
# verification dates come from the holiday calendar as of {today}: write the file again after each
# yearly calendar update. Schedules are in Asia/Shanghai.
"""


def fleet_parameters(dep) -> dict:
    """A deployment's parameters on the work pool: the inspection's checks as plain functions
    (check_task_runs=False), since a task run per check costs more CPU than the check itself
    (README, "ebops's own cost per site"); the per-check records are in the evidence either way."""
    params = dict(dep.parameters)
    if dep.flow_name == "inspection":
        params["check_task_runs"] = False
    return params


def schedule_entry(sched) -> dict:
    """One DeploymentScheduleCreate as prefect.yaml spells a schedule."""
    s = sched.schedule
    entry: dict = {}
    if getattr(s, "cron", None):
        entry = {"cron": s.cron, "timezone": s.timezone}
    elif getattr(s, "rrule", None):
        entry = {"rrule": s.rrule, "timezone": s.timezone}
    elif getattr(s, "interval", None):
        entry = {"interval": s.interval.total_seconds(), "timezone": s.timezone}
    else:
        raise ValueError(f"schedule {s!r} has no form prefect.yaml knows")
    if sched.active is False:
        entry["active"] = False
    return entry


def deployment_entry(dep, site: str, pool: str = POOL) -> dict:
    """One RunnerDeployment (as serve.py builds it) as a prefect.yaml deployment of `pool`."""
    entry = {
        "name": dep.name,
        "entrypoint": dep.entrypoint,
        "parameters": fleet_parameters(dep),
        "tags": list(dep.tags),
        "work_pool": {"name": pool, "work_queue_name": site},
        "schedules": [schedule_entry(s) for s in dep.schedules],
    }
    if dep.description:
        entry["description"] = dep.description
    return entry


def document(sites: list[str], today: date | None = None, pool: str = POOL) -> dict:
    from deployments.serve import deployments

    entries = [deployment_entry(d, s, pool) for s in sites for d in deployments(s, today)]
    return {
        "name": "ebill-ops",
        "prefect-version": "3.8.8",
        # The worker runs the flows from its checkout of this repository ($EBOPS_HOME).
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $EBOPS_HOME }}"}}],
        "deployments": entries,
    }


def render(sites: list[str], today: date | None = None, pool: str = POOL) -> str:
    today = today or date.today()
    body = yaml.safe_dump(document(sites, today, pool), allow_unicode=True, sort_keys=False, width=120)
    return HEADER.format(today=today.isoformat(), pool=pool) + body
