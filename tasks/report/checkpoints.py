"""The period's signed checkpoints (证据链检查点), reprinted in the service report.

The monthly inspection makes one checkpoint of the site's chains and keeps it as `checkpoint.json`
in its own bundle (flows/inspection.py, tasks/evidence/checkpoint.py). The service report lists
every one of them the period's bundles hold, read from the store like everything else in the
report: the month, when it was made, its root hash, the fingerprint of the key that signed it and
whether that signature checks against the site's public keys, and where the file is, so the 信息科
can match each line against the paper copy it filed and later run
`ebops evidence verify --checkpoint` with the file from that bundle.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tasks.evidence.checkpoint import summary_for_report
from tasks.evidence.sign import signature_state
from tasks.report.collect import Bundle

FILE = "checkpoint.json"
SIGNATURE_ZH = {"valid": "有效", "invalid": "无效（非本院登记的厂商密钥或已被改动）", "unsigned": "未签名",
                "unchecked": "未校验（站点文件未登记公钥）"}


def checkpoints(bundles: list[Bundle], keys: list[str], tz: str) -> list[dict]:
    """One row per checkpoint in the period's bundles, oldest first (pure: the bundles and the keys)."""
    z = ZoneInfo(tz)
    rows = []
    for b in bundles:
        cp = b.files.get(FILE)
        if not cp:
            continue
        s = summary_for_report(cp)
        state = signature_state(cp, list(keys))
        made = datetime.fromisoformat(s["created_at"].replace("Z", "+00:00")).astimezone(z)
        rows.append({"month": b.period, "created_local": made.strftime("%Y-%m-%d %H:%M"), "created_at": s["created_at"],
                     "chains": len(s["chains"]), "root_sha256": s["root_sha256"], "key_fingerprint": s["key_fingerprint"],
                     "signature": state, "signature_zh": SIGNATURE_ZH.get(state, state),
                     "file": b.prefix + FILE, "file_sha256": s["digest"], "bundle_manifest_sha256": b.manifest_sha256})
    return rows
