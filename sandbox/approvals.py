"""The demo site's standing approvals (QH 9.1.2): the sandbox hospital's 信息科主任 approves the
fresh backup's and the backup verification's standing plans once, through the same function a
hospital's `ebops approve` uses, so `make demo` runs the backup and the verification as a hospital
with recorded approvals would. The requester named is the demo's engineer, never the approver."""
from __future__ import annotations

from config.settings import load_site

DEMO_ENGINEER = "演示工程师"


def ensure_demo_approvals(site_name: str = "demo") -> list:
    from tasks.approvals.standing import ensure_standing_approvals

    site = load_site(site_name)
    if not site.approvers:
        raise ValueError(f"site {site_name} lists no approvers: the demo's standing approvals need one")
    return ensure_standing_approvals(site, site.approvers[0].name, requested_by=DEMO_ENGINEER, run_id="sandbox")
