"""The evidence portal: one static, self-contained HTML page per site in the evidence bucket.

Why one page: a page in the bucket cannot presign links to its neighbours, and a presigned link
lives at most 7 days (S3's limit). So the whole portal (site -> duty -> year -> bundle pages) is a
single HTML object, `_portal/<site>/index.html`, its "pages" being sections shown by their URL
fragment (CSS `:target`, no script: it opens where JavaScript is blocked), the data inline. Its
links to reports and files are presigned URLs valid as long as the portal's own link (default and
at most 7 days). The daily deployment (flows/portal.py) rebuilds it, so the page a week-old link
opens always carries links valid for days more; an auditor with a read-only access key opens the
same object in any S3 console or client and gets the same working page.

Verification status is tasks/evidence/verify.py's result for the site when the portal was built
(the page says when); the object is written without retention, so each rebuild replaces it (with
versioning the old ones stay as versions).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from config.evidence import EvidenceStoreConfig
from tasks.core.reports import render
from tasks.core.results import Status
from tasks.evidence.sign import fingerprint, trusted_keys
from tasks.evidence.store import MANIFEST, content_type, open_store, sha256_hex, split_key
from tasks.evidence.judge import Problem
from tasks.evidence.verify import verify

PORTAL_PREFIX = "_portal"
MAX_HOURS = 168  # S3 SigV4 presigned URLs live at most 7 days
DUTY_ZH = {"inspection": "巡检", "holiday_precheck": "节前巡检", "backup_verification": "备份恢复验证",
           "invoice_quality": "票据数据质量检查"}
CHECK_ZH = {"ok": "校验通过", "warning": "校验通过（有警告）", "failed": "校验未通过"}


def portal_key(site_id: str) -> str:
    return f"{PORTAL_PREFIX}/{site_id}/index.html"


def anchor(prefix: str) -> str:
    """A stable fragment id for a bundle (its prefix has slashes and colons)."""
    return "b-" + hashlib.sha256(prefix.encode()).hexdigest()[:12]


@dataclass
class BundlePage:
    prefix: str
    anchor: str
    duty: str
    year: str
    sequence: int | None
    period: str
    started_local: str
    verdict: str
    verdict_zh: str
    check: str  # ok / warning / failed
    problems: list[Problem]
    files: list[dict]  # name, bytes, sha256, url
    report_url: str | None
    manifest_sha256: str
    manifest_text: str
    signature: str
    prev: dict | None = None  # {prefix, anchor or None, recorded sha}
    next: dict | None = None


@dataclass
class PortalData:
    site: str
    hospital: str
    built_local: str
    valid_until_local: str
    duties: dict[str, dict[str, list[BundlePage]]] = field(default_factory=dict)  # duty -> year -> newest first
    orphans: dict[str, list[Problem]] = field(default_factory=dict)  # duty -> problems of bundles not in the store
    key_fingerprints: list[str] = field(default_factory=list)

    @property
    def bundles(self) -> list[BundlePage]:
        return [b for years in self.duties.values() for bs in years.values() for b in bs]


def _check(problems: list[Problem]) -> str:
    if any(p.severity == "error" for p in problems):
        return "failed"
    return "warning" if problems else "ok"


def _local(iso: str, tz: str) -> str:
    try:
        ts = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    return ts.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


def collect(cfg: EvidenceStoreConfig, site_id: str, hospital: str, tz: str, hours: int = MAX_HOURS,
            now: datetime | None = None, outbox: Path | None = None) -> PortalData:
    """Read every bundle of the site, verify the site's chains (with this worker's chain heads when
    `outbox` is given, as `ebops evidence verify` does on the worker), presign each file for `hours`."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours={hours}: presigned links live 1 to {MAX_HOURS} hours (7 days)")
    now = now or datetime.now(timezone.utc)
    store = open_store(cfg)
    objects: dict[str, list[str]] = {}
    for o in store.list(f"{site_id}/"):
        if (pk := split_key(o.object_name)):
            objects.setdefault(pk[0], []).append(pk[1])
    report = verify(cfg, site=site_id, outbox=outbox)
    by_prefix: dict[str, list[Problem]] = {}
    for p in report.problems:
        by_prefix.setdefault(p.prefix, []).append(p)
    life = timedelta(hours=hours)
    data = PortalData(site_id, hospital, now.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S"),
                      (now + life).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S"),
                      key_fingerprints=[fingerprint(k) for k in trusted_keys(cfg)])
    pages: dict[str, BundlePage] = {}
    for prefix in sorted(objects):
        _site, duty, year = prefix.split("/")[:3]
        raw = store.get(prefix + MANIFEST) if MANIFEST in objects[prefix] else None
        try:
            m = json.loads(raw) if raw is not None else {}
        except ValueError:
            m = {}
        listed = {f.get("name"): f for f in m.get("files", []) if isinstance(f, dict)}
        files = [{"name": n, "bytes": listed.get(n, {}).get("bytes"), "sha256": listed.get(n, {}).get("sha256", ""),
                  "url": store.presigned(prefix + n, life)} for n in sorted(objects[prefix])]
        verdict = str(m.get("verdict", ""))
        problems = by_prefix.pop(prefix, [])
        sig = m.get("signature")
        pages[prefix] = BundlePage(
            prefix=prefix, anchor=anchor(prefix), duty=duty, year=year, sequence=m.get("sequence"),
            period=str(m.get("period", "")), started_local=_local(m.get("started_at", ""), tz), verdict=verdict,
            verdict_zh=Status(verdict).label_zh if verdict in Status.__members__ else (verdict or "—"),
            check=_check(problems), problems=problems, files=files,
            report_url=next((f["url"] for f in files if f["name"] == "report.html"), None),
            manifest_sha256=sha256_hex(raw) if raw is not None else "", manifest_text=(raw or b"").decode("utf-8", "replace"),
            signature=f"Ed25519 {sig.get('public_key', '')}" if isinstance(sig, dict) else "未签名",
            prev={"prefix": m["prev_bundle"], "sha256": m.get("prev_manifest_sha256")} if m.get("prev_bundle") else None)
    for page in pages.values():
        if page.prev:
            before = pages.get(page.prev["prefix"])
            page.prev["anchor"] = before.anchor if before else None
            if before:
                before.next = {"prefix": page.prefix, "anchor": page.anchor, "sha256": page.manifest_sha256}
    for page in sorted(pages.values(), key=lambda b: (b.sequence or 0, b.prefix), reverse=True):
        data.duties.setdefault(page.duty, {}).setdefault(page.year, []).append(page)
    for prefix, problems in by_prefix.items():  # removed bundles, claims without a manifest
        duty = prefix.split("/")[1] if prefix.count("/") >= 2 else "?"
        data.orphans.setdefault(duty, []).extend(problems)
        data.duties.setdefault(duty, {})
    data.duties = dict(sorted(data.duties.items()))
    for duty in data.duties:
        data.duties[duty] = dict(sorted(data.duties[duty].items(), reverse=True))
    return data


def render_portal(data: PortalData) -> str:
    return render("portal.html.j2", d=data, duty_zh=DUTY_ZH, check_zh=CHECK_ZH, max_hours=MAX_HOURS)


def publish(cfg: EvidenceStoreConfig, site_id: str, html: str, hours: int = MAX_HOURS) -> tuple[str, str]:
    """Write the portal (no retention: it is rebuilt daily, not evidence) and presign it: (key, url)."""
    store = open_store(cfg)
    key = portal_key(site_id)
    body = html.encode("utf-8")
    store.call(f"upload of {key}", store.client.put_object, store.bucket, key, BytesIO(body), len(body),
               content_type=content_type(key))
    return key, store.presigned(key, timedelta(hours=hours))


@dataclass(frozen=True)
class PortalBuild:
    key: str
    url: str
    bundles: int
    failing: list[str]  # prefixes whose verification failed
    missing: int  # problems of bundles no longer in the store
    valid_until_local: str


def build_and_publish(cfg: EvidenceStoreConfig, site_id: str, hospital: str, tz: str,
                      hours: int = MAX_HOURS, outbox: Path | None = None) -> PortalBuild:
    data = collect(cfg, site_id, hospital, tz, hours, outbox=outbox)
    key, url = publish(cfg, site_id, render_portal(data), hours)
    return PortalBuild(key, url, len(data.bundles), [b.prefix for b in data.bundles if b.check == "failed"],
                       sum(len(v) for v in data.orphans.values()), data.valid_until_local)
