"""The year-end's pre-check: no DDL without a recent, proven restore of this site's backup and a fresh
backup now. Read from the evidence store, never from a local note: the newest PASSED 备份恢复验证记录
of the site within year_end.max_backup_verification_age_days, whose chain and signatures verify
(`ebops evidence verify` of that duty) before it is believed.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from config.settings import Site
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow
from tasks.evidence.verify import list_bundles, verify

DUTY = "backup_verification"


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def verification_gate(site: Site, now: datetime | None = None) -> CheckResult:
    """OK when a PASSED backup verification of the site, at most N days old, is in the store and its
    chain verifies; FAIL otherwise (the reason names what is missing); ERROR when the store cannot be read."""
    now = now or utcnow()
    max_days = site.year_end.max_backup_verification_age_days
    base = dict(check="backup_verification_gate", title="执行前提：近期备份恢复验证通过", site=site.site,
                target=f"{site.site}/{DUTY}", threshold=f"{max_days} 天内有一次结论为通过的备份恢复验证，且证据链校验通过")
    started = utcnow()
    try:
        bundles = list_bundles(site.evidence, site.site, DUTY)
        passed = [b for b in bundles if b.verdict == "OK" and (t := _when(b.finished_at)) and now - t <= timedelta(days=max_days)]
        if not passed:
            newest = max(bundles, key=lambda b: b.finished_at, default=None)
            seen = f"最近一次为 {newest.finished_at[:19]}，结论 {newest.verdict}" if newest else "证据库中没有任何备份恢复验证记录"
            return CheckResult(**base, status=Status.FAIL, code=Code.VERIFICATION_MISSING, started_at=started,
                               value=None, reason=f"{max_days} 天内没有通过的备份恢复验证（{seen}）；先运行 ebops verify-backup")
        chosen = max(passed, key=lambda b: b.finished_at)
        report = verify(site.evidence, site.site, DUTY)
        errors = [p for p in report.problems if p.severity == "error"]
        if errors:
            listed = "；".join(f"{p.code} {p.prefix}" for p in errors[:5])
            return CheckResult(**base, status=Status.FAIL, code=Code.VERIFICATION_CHAIN_BROKEN, started_at=started,
                               value=chosen.prefix, reason=f"备份恢复验证的证据链校验未通过：{listed}")
    except Exception as exc:  # noqa: BLE001 - the store unreachable, unreadable: ERROR, no execution
        return error_result(exc, started_at=started, **base)
    age = (now - _when(chosen.finished_at)).total_seconds() / 86400
    return CheckResult(**base, status=Status.OK, value=chosen.prefix, started_at=started,
                       reason=f"通过的备份恢复验证 {chosen.prefix}（{age:.1f} 天前，第 {chosen.sequence} 号证据），"
                              f"证据链校验通过（{report.bundles_checked} 份）")
