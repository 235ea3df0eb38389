"""The site file's `approvers:` and `approval:` sections (QH 9.1.2 多人负责制度).

A risky duty (year-end, migration, the pre-holiday fresh backup, the backup verification's scratch
restore) runs only under an approval recorded in the evidence store by a second person. Prefect's
open-source server has no user accounts, so who may approve is said here: the approver's name must
be in `approvers:`, and the site may also ask for a confirmation code sent to its group robot.
"""
from __future__ import annotations

from pydantic import Field, field_validator

from config.model import Strict

# Keys of earlier versions that held a standing approval as free text in the site file. They are
# refused with a hint (config/problems.py), not ignored: an approval is a record in the store now.
REMOVED_APPROVAL_KEYS = {
    "command_approved_by": "hosts[].backup.command_approved_by",
    "approved_by": "backup_verification.approved_by",
}



class Approver(Strict):
    """One person who may approve a risky duty's plan at this site (never the plan's requester)."""
    name: str = Field(min_length=1, description="the name typed in `ebops approve --as` or the approval form")
    role: str = Field(default="", description="e.g. 信息科科长, 项目经理 (recorded with the approval)")

    @field_validator("name")
    @classmethod
    def _trimmed(cls, v: str) -> str:
        if v != v.strip():
            raise ValueError("name must not begin or end with spaces (it is compared as typed)")
        return v


class ApprovalSettings(Strict):
    expiry_hours: float = Field(default=72, gt=0, le=24 * 366, description=(
        "how long an approval of a one-off plan (year-end, migration) stays valid"))
    standing_expiry_days: int = Field(default=365, ge=1, le=366, description=(
        "how long a standing approval (fresh backup, backup verification) stays valid"))
    pause_timeout_s: int = Field(default=3600, ge=10, le=7 * 24 * 3600, description=(
        "how long an execute run waits in the Prefect UI for its approval before it ends as denied"))
    confirm_code: bool = Field(default=False, description=(
        "send a confirmation code to the site's notify targets; the approver must type it"))
    confirm_code_minutes: int = Field(default=30, ge=1, le=24 * 60, description="how long a confirmation code is valid")


def check_approvers(approvers: list[Approver], approval: ApprovalSettings, notify_count: int) -> None:
    names = [a.name for a in approvers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"approvers: names must be unique; repeated: {', '.join(dupes)}")
    if approval.confirm_code and notify_count == 0:
        raise ValueError("approval.confirm_code is on but the site has no notify targets to send the code to "
                         "(add a wecombot:// or dingtalk:// target under notify:, or set confirm_code: false)")
