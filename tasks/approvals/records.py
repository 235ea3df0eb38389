"""Plans and approval records in the evidence store (QH 9.1.2 多人负责制度).

- A plan is stored in an evidence bundle as `plan.json` (its canonical form: the SHA-256 is taken
  over exactly these bytes) and `plan.md` (what a reviewer reads). The bundle's prefix is the
  PLAN_KEY an approver names. A duty's own plan run adds the two files to its bundle
  (`plan_files`); `store_plan` writes a bundle of its own (chain `<site>/plans/`) for callers
  without one (standing approvals, the CLI, tests).
- An approval is an object of its own, `_approvals/<site>/<duty>/<plan_sha256>/<n>.json`, created
  with `If-None-Match: *` under the bucket's object lock: a second approval of the same plan takes
  the next n and never overwrites the first. Keys under `_` are outside the bundle layout.
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from minio.error import S3Error
from pydantic import BaseModel, ValidationError

from config.settings import Site
from tasks.approvals.plan import Plan, canonical_json, render_markdown
from tasks.evidence.bundle import BundleWriter, StoredBundle
from tasks.evidence.store import MANIFEST, Store, sha256_hex

APPROVALS = "_approvals"
PLAN_JSON, PLAN_MD = "plan.json", "plan.md"
PLANS_DUTY = "plans"
MAX_RECORDS = 1000  # approvals of one plan; past it something is writing in a loop
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


class PlanNotFound(LookupError):
    """The PLAN_KEY names no stored plan (or one whose bytes differ from its manifest)."""


class ApprovalRecord(BaseModel):
    """One approval of one plan, as stored. The approver's name is as typed and checked against the
    site's `approvers:` list when written and again when the plan is executed."""
    site: str
    duty: str
    plan_sha256: str
    plan_key: str                    # the evidence bundle holding plan.json / plan.md
    plan_title: str
    requested_by: str                # the plan's requester (never its approver)
    approver: str
    role: str = ""
    approved_at: datetime
    expires_at: datetime
    ticket: str | None = None        # the hospital's change ticket (变更单号), if any
    via: Literal["cli", "ui", "api"] = "cli"
    confirmed_by_code: bool = False  # the approver typed the code sent to the site's group
    sequence: int = 0                # n of the object key: 1 for the first approval of the plan
    key: str = ""                    # the object key it is stored under

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(timezone.utc)) >= self.expires_at

    def summary(self) -> dict:
        """What the evidence manifest of the run keeps about the approval it ran under."""
        return {"action": self.duty, "plan_sha256": self.plan_sha256, "plan_key": self.plan_key,
                "approved_by": self.approver, "role": self.role, "approved_at": self.approved_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "ticket": self.ticket, "record": self.key,
                "kind": "approval record in the evidence store"}


# ---------------------------------------------------------------- plans
def plan_files(plan: Plan) -> dict[str, str]:
    """plan.json and plan.md, for a duty's plan run to add to its evidence bundle."""
    return {PLAN_JSON: canonical_json(plan), PLAN_MD: render_markdown(plan)}


def _outbox(site: Site) -> Path:
    p = Path(site.evidence.outbox)
    if not p.is_absolute() and site.source is not None:
        p = site.source.parent / p
    return p.resolve()


def store_plan(site: Site, plan: Plan, run_id: str = "plan", started_at: datetime | None = None) -> StoredBundle:
    """A bundle holding only the plan, in the site's `plans` chain; its prefix is the PLAN_KEY."""
    started_at = started_at or datetime.now(timezone.utc)
    # Its own folder even when one run stores several plans in the same second.
    # (the run id's first 8 characters: a PLAN_KEY is typed and read by people)
    folder_id = f"{run_id[:8]}-{plan.duty}-{secrets.token_hex(4)}"
    w = BundleWriter(site.site, PLANS_DUTY, started_at.strftime("%Y-%m-%d"), folder_id, started_at, site.evidence,
                     _outbox(site))
    for name, text in plan_files(plan).items():
        w.add_file(name, text)
    return w.finish("OK", datetime.now(timezone.utc), approvals=[],
                    extra={"plan_sha256": plan.sha256(), "plan_duty": plan.duty, "plan_title": plan.title})


def load_plan(store: Store, plan_key: str) -> Plan:
    """The plan stored under `plan_key`, checked against its bundle's manifest (bytes unchanged)."""
    prefix = plan_key if plan_key.endswith("/") else plan_key + "/"
    try:
        raw = store.get(prefix + PLAN_JSON)
        manifest = json.loads(store.get(prefix + MANIFEST))
    except S3Error as exc:
        if exc.code in _MISSING:
            raise PlanNotFound(f"no plan under {prefix} in bucket {store.bucket} (hint: the PLAN_KEY is the "
                               f"evidence prefix a plan run prints; `ebops evidence list` lists them)") from None
        raise
    listed = {f["name"]: f["sha256"] for f in manifest.get("files", [])}
    if listed.get(PLAN_JSON) != sha256_hex(raw):
        raise PlanNotFound(f"{prefix}{PLAN_JSON} differs from what its manifest recorded: not approvable "
                           f"(hint: render the plan again)")
    try:
        return Plan.model_validate_json(raw)
    except ValidationError as exc:
        raise PlanNotFound(f"{prefix}{PLAN_JSON} is not a plan: {exc.errors()[0]['msg']}") from None


# ---------------------------------------------------------------- approval records
def approvals_prefix(site: str, duty: str | None = None, sha: str | None = None) -> str:
    return f"{APPROVALS}/{site}/" + (f"{duty}/" if duty else "") + (f"{sha}/" if duty and sha else "")


def write_approval(store: Store, record: ApprovalRecord) -> ApprovalRecord:
    """Store `record` as the next n of its plan, never overwriting an earlier approval."""
    prefix = approvals_prefix(record.site, record.duty, record.plan_sha256)
    n = len(list(store.list(prefix))) + 1
    for _ in range(MAX_RECORDS):
        key = f"{prefix}{n:04d}.json"
        rec = record.model_copy(update={"sequence": n, "key": key})
        body = json.dumps(rec.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        if store.put_if_absent(key, body):
            return rec
        n += 1  # another approval of the same plan took this n meanwhile
    raise RuntimeError(f"{prefix}: more than {MAX_RECORDS} approvals of one plan")


def list_approvals(store: Store, site: str, duty: str | None = None, sha: str | None = None) -> list[ApprovalRecord]:
    """The approvals under a site (a duty, a plan), oldest first. An object that is not a record
    (hand-written, truncated) is skipped: it can approve nothing."""
    out = []
    for o in store.list(approvals_prefix(site, duty, sha)):
        try:
            rec = ApprovalRecord.model_validate_json(store.get(o.object_name))
        except (ValidationError, ValueError):
            continue
        if rec.key == o.object_name:
            out.append(rec)
    return sorted(out, key=lambda r: (r.approved_at, r.sequence))


def new_record(site: Site, plan: Plan, plan_key: str, approver: str, role: str, *, ticket: str | None,
               via: str, expires: timedelta, confirmed: bool, now: datetime | None = None) -> ApprovalRecord:
    now = now or datetime.now(timezone.utc)
    return ApprovalRecord(site=site.site, duty=plan.duty, plan_sha256=plan.sha256(), plan_key=plan_key,
                          plan_title=plan.title, requested_by=plan.requested_by, approver=approver, role=role,
                          approved_at=now, expires_at=now + expires, ticket=ticket or None, via=via,
                          confirmed_by_code=confirmed)
