"""Identity beyond a typed name: a confirmation code sent to the site's group robot (WeCom,
DingTalk, through apprise) that the approver must type (`approval.confirm_code: true`).

Whoever approves must be able to read the hospital's maintenance group, which a typed name alone
does not prove. Only a salted, slow hash of the code is kept, in the evidence store under
`_approval_codes/<site>/<plan_sha256>/<n>.json`; a code is good for `approval.confirm_code_minutes`
and for the one plan it was sent for. Each wrong code typed is recorded beside the codes
(`wrong-<n>.json`: who and when, never what was typed); after MAX_WRONG of them every code sent
before is void and a new one must be sent, so guessing is bounded by attempts, not only by the
code's length.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta, timezone

import apprise

from config.settings import Site, resolve_secret
from tasks.approvals.plan import Plan
from tasks.evidence.store import Store

CODES = "_approval_codes"
# No 0/O, 1/I/L: read off a phone and typed. 8 of 31 symbols: ~8.5e11 codes, and PBKDF2 below
# makes trying them all against a stored hash slow.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LEN = 8
ITERATIONS = 200_000
MAX_WRONG = 5


class ConfirmSendFailed(RuntimeError):
    """No notify target accepted the message with the code."""


def _hash(code: str, salt: bytes, iterations: int = ITERATIONS) -> str:
    return hashlib.pbkdf2_hmac("sha256", code.strip().upper().encode(), salt, iterations).hex()


def send_code(store: Store, site: Site, plan: Plan, plan_key: str, now: datetime | None = None) -> datetime:
    """Send a new code for `plan` to every notify target of the site; keep its hash. Returns when
    it expires. Raises ConfirmSendFailed when no target took it (the approver could never type it)."""
    now = now or datetime.now(timezone.utc)
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LEN))
    salt = secrets.token_bytes(16)
    expires = now + timedelta(minutes=site.approval.confirm_code_minutes)
    body = (f"【审批确认码】{site.name}：{plan.title}\n方案 SHA-256：{plan.sha256()[:16]}…\n"
            f"方案：{plan_key}\n确认码：{code}（{site.approval.confirm_code_minutes} 分钟内有效，仅审批人使用）")
    sent_to = []
    for target in site.notify:
        a = apprise.Apprise()
        if a.add(resolve_secret(target.url)) and a.notify(title="ebill-ops 审批确认码", body=body):
            sent_to.append(target.name)
    if not sent_to:
        raise ConfirmSendFailed(f"the confirmation code could not be sent to any notify target of site {site.site} "
                                f"(hint: `ebops config check {site.site}`; check the robot URLs)")
    record = {"plan_sha256": plan.sha256(), "salt": salt.hex(), "hash": _hash(code, salt), "iterations": ITERATIONS,
              "sent_at": now.isoformat(), "expires_at": expires.isoformat(), "sent_to": sent_to}
    prefix = f"{CODES}/{site.site}/{plan.sha256()}/"
    n = len(list(store.list(prefix))) + 1
    while not store.put_if_absent(f"{prefix}{n:04d}.json", json.dumps(record, ensure_ascii=False).encode()):
        n += 1
    return expires


def _records(store: Store, site: Site, plan: Plan) -> tuple[list[dict], list[datetime]]:
    """The codes sent for this plan and the times of the wrong codes typed for it."""
    codes, wrong = [], []
    for o in store.list(f"{CODES}/{site.site}/{plan.sha256()}/"):
        try:
            rec = json.loads(store.get(o.object_name))
            if o.object_name.rsplit("/", 1)[-1].startswith("wrong-"):
                wrong.append(datetime.fromisoformat(rec["at"]))
            elif rec.get("plan_sha256") == plan.sha256():
                rec["sent_at"], rec["expires_at"] = (datetime.fromisoformat(rec[k]) for k in ("sent_at", "expires_at"))
                codes.append(rec)
        except (ValueError, KeyError, TypeError):
            continue
    return codes, wrong


def check_code(store: Store, site: Site, plan: Plan, code: str, approver: str,
               now: datetime | None = None) -> str:
    """'ok' when `code` is one sent for this plan, not expired and not void; else 'wrong' or, when
    MAX_WRONG wrong codes were typed since the newest code was sent, 'locked'. A code that is not
    'ok' is recorded as a wrong attempt."""
    now = now or datetime.now(timezone.utc)
    codes, wrong = _records(store, site, plan)

    def void(rec: dict) -> bool:
        return sum(t >= rec["sent_at"] for t in wrong) >= MAX_WRONG

    for rec in codes:
        if rec["expires_at"] > now and not void(rec) and hmac.compare_digest(
                _hash(code, bytes.fromhex(rec["salt"]), int(rec["iterations"])), rec["hash"]):
            return "ok"
    _record_wrong(store, site, plan, approver, now)
    newest = max(codes, key=lambda r: r["sent_at"], default=None)
    return "locked" if newest is not None and sum(t >= newest["sent_at"] for t in wrong) + 1 >= MAX_WRONG else "wrong"


def _record_wrong(store: Store, site: Site, plan: Plan, approver: str, now: datetime) -> None:
    prefix = f"{CODES}/{site.site}/{plan.sha256()}/wrong-"
    body = json.dumps({"at": now.isoformat(), "approver": approver}, ensure_ascii=False).encode()
    n = len(list(store.list(prefix))) + 1
    while not store.put_if_absent(f"{prefix}{n:04d}.json", body):
        n += 1
