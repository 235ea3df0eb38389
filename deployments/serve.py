"""The in-process `serve` entry for a single machine: every duty's deployment with its schedule.

Schedules are in Asia/Shanghai (the hospitals' time), whatever the worker machine's timezone is.
`python -m deployments.serve [SITE ...]` serves them; the Prefect UI then shows each deployment
with its next run times and a form for manual runs.
"""
from __future__ import annotations

import sys

from prefect import serve
from prefect.schedules import Cron

from flows.inspection import inspection

TZ = "Asia/Shanghai"


def deployments(site: str):
    return [
        # QH: monthly on-site inspection with report (1st of the month, 09:00).
        inspection.to_deployment(name=f"inspection-monthly-{site}", parameters={"site": site, "kind": "monthly"},
                                 schedules=[Cron("0 9 1 * *", timezone=TZ)], tags=[site, "inspection"]),
        # MZ 一.2-16: the quarterly list (first day of each quarter, 10:00).
        inspection.to_deployment(name=f"inspection-quarterly-{site}", parameters={"site": site, "kind": "quarterly"},
                                 schedules=[Cron("0 10 1 1,4,7,10 *", timezone=TZ)], tags=[site, "inspection"]),
    ]


def main(argv: list[str]) -> None:
    sites = argv or ["demo"]
    serve(*[d for s in sites for d in deployments(s)])


if __name__ == "__main__":
    main(sys.argv[1:])
