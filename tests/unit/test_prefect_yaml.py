"""prefect.yaml is produced from the list `ebops ui` serves: every deployment of every site, the
pre-holiday and backup-verification schedules included (the hand-written file lacked both), each
site on its own work queue."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from deployments import prefect_yaml
from deployments.serve import deployments

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 2)


def test_every_served_deployment_is_in_the_yaml_with_its_schedules_and_site_queue():
    doc = yaml.safe_load(prefect_yaml.render(["example-oracle"], DAY))
    served = {d.name: d for d in deployments("example-oracle", DAY)}
    listed = {e["name"]: e for e in doc["deployments"]}
    assert set(listed) == set(served) and len(listed) == 10  # with the watch, the daily evidence portal, the year-end's December plan and the two service reports
    for name, dep in served.items():
        e = listed[name]
        assert e["entrypoint"] == dep.entrypoint
        # the same parameters, the inspection's checks as plain functions on the work pool
        extra = {"check_task_runs": False} if dep.flow_name == "inspection" else {}
        assert e["parameters"] == {**dep.parameters, **extra}
        assert e["work_pool"] == {"name": prefect_yaml.POOL, "work_queue_name": "example-oracle"}
        assert len(e["schedules"]) == len(dep.schedules) >= 1, name
        assert all(s["timezone"] == "Asia/Shanghai" for s in e["schedules"])
    # the two schedules computed from the holiday calendar, as RRULE sets of dates
    assert "RDATE:20261230T090000" in listed["holiday-precheck-example-oracle"]["schedules"][0]["rrule"]
    assert "20270104T020000" in listed["backup-verification-example-oracle"]["schedules"][0]["rrule"]


def test_two_sites_two_queues_and_each_entrypoint_exists():
    doc = prefect_yaml.document(["example-oracle", "example-oracle"], DAY)
    for e in doc["deployments"]:
        path, func = e["entrypoint"].split(":")
        assert (REPO / path).is_file() and f"def {func}(" in (REPO / path).read_text(encoding="utf-8")


def test_the_checked_in_file_lists_every_served_deployment():
    """deployments/prefect.yaml is the generated file (`ebops fleet yaml example-oracle`): it must
    not lack a deployment serve.py has (dates may be older than today: names and queues must match)."""
    doc = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text(encoding="utf-8"))
    names = {e["name"] for e in doc["deployments"]}
    assert names == {d.name for d in deployments("example-oracle", DAY)}
    assert all(e["work_pool"]["work_queue_name"] == "example-oracle" for e in doc["deployments"])


def test_restores_are_limited_per_verification_server_whatever_the_site():
    from flows.backup_verification import restore_server

    assert restore_server("host=10.1.2.3 port=5433 dbname=postgres") == "10.1.2.3:5433"
    assert restore_server("dbname=postgres host=db.hosp") == "db.hosp:5432"
    assert restore_server("10.1.2.4:1521/ORCLPDB") == "10.1.2.4:1521"
