"""The service report reprints the period's signed checkpoints (tasks/report/checkpoints.py) and the
days a function was not fully available: built in memory from bundles as collect.read_bundle gives
them (the integration tests read real ones from the sandbox's S3)."""
from __future__ import annotations

import base64
import secrets
from datetime import datetime, timezone

from tasks.core.reports import render_both
from tasks.evidence.checkpoint import SCHEMA, Entry, chain_summary, checkpoint_bytes, overall_root
from tasks.evidence.sign import Signer, fingerprint, load_private_key, public_key_b64
from tasks.evidence.store import sha256_hex
from tasks.report.build import build
from tasks.report.checkpoints import checkpoints
from tasks.report.collect import Bundle, parse_period

KEY = load_private_key(base64.b64encode(secrets.token_bytes(32)).decode())
PUB = public_key_b64(KEY)
OTHER = public_key_b64(load_private_key(base64.b64encode(secrets.token_bytes(32)).decode()))
TZ = "Asia/Shanghai"


def _checkpoint(created: str) -> dict:
    cs = [chain_summary("demo", "inspection", [Entry(1, "a" * 64, "demo/inspection/2026/20261101T010000Z_r1/")])]
    return Signer(KEY, PUB).sign({"schema": SCHEMA, "created_at": created, "bucket": "b", "scope": "demo",
                                  "chains": cs, "root_sha256": overall_root(cs)})


def _monthly(month: int, cp: dict | None) -> Bundle:
    at = datetime(2026, month, 1, 1, 0, tzinfo=timezone.utc)
    b = Bundle(prefix=f"demo/inspection/2026/2026{month:02d}01T010000Z_r{month}/", site="demo", duty="inspection",
               period=f"2026-{month:02d}", verdict="OK", started_at=at, finished_at=at, sequence=month,
               manifest_sha256="m" * 64, backdated=False)
    if cp is not None:
        b.files["checkpoint.json"] = cp
    return b


def test_each_checkpoint_of_the_period_is_listed_with_its_root_key_signature_and_file():
    nov, dec = _checkpoint("2026-11-01T01:00:05Z"), _checkpoint("2026-12-01T01:00:05Z")
    forged = {**dec, "root_sha256": "0" * 64}   # changed after signing: its signature no longer holds
    rows = checkpoints([_monthly(11, nov), _monthly(12, forged), _monthly(10, None)], [PUB], TZ)
    assert [(r["month"], r["created_local"], r["signature"]) for r in rows] == [
        ("2026-11", "2026-11-01 09:00", "valid"), ("2026-12", "2026-12-01 09:00", "invalid")]
    first = rows[0]
    assert first["root_sha256"] == nov["root_sha256"] and first["key_fingerprint"] == fingerprint(PUB)
    assert first["file"] == "demo/inspection/2026/20261101T010000Z_r11/checkpoint.json"
    assert first["file_sha256"] == sha256_hex(checkpoint_bytes(nov))   # the bytes the bundle keeps
    # signed with a key the site file does not list: not the vendor's
    assert checkpoints([_monthly(11, nov)], [OTHER], TZ)[0]["signature"] == "invalid"
    assert checkpoints([_monthly(11, nov)], [], TZ)[0]["signature"] == "unchecked"


def test_the_report_prints_the_checkpoints_and_keeps_them_in_its_figures():
    nov = _checkpoint("2026-11-01T01:00:05Z")
    period = parse_period("2026-11")
    start, end = period.bounds(TZ)
    built = build("demo", "演示医院", TZ, period, [_monthly(11, nov)], start, end, keys=[PUB])
    [fig] = built.figures["checkpoints"]
    assert fig == {"month": "2026-11", "created_at": "2026-11-01T01:00:05Z", "root_sha256": nov["root_sha256"],
                   "key_fingerprint": fingerprint(PUB), "signature": "valid",
                   "file": "demo/inspection/2026/20261101T010000Z_r11/checkpoint.json",
                   "file_sha256": sha256_hex(checkpoint_bytes(nov))}
    ctx = {**built.context, "hospital": "演示医院", "title": "月度服务报告", "kind_zh": "月度服务报告", "timezone": TZ,
           "verdict": "OK", "verdict_zh": "正常", "evidence_prefix": "demo/service_report/x/", "site_id": "demo",
           "duty_zh": {}, "flow_run_id": "r", "finished_local": "", "engineer": "", "results": [], "summary": [],
           "suggestions": [], "evidence_key": ""}
    out = render_both("service_report", **ctx)
    for text in out.values():
        assert "证据链检查点" in text and nov["root_sha256"] in text and fingerprint(PUB) in text
        assert "demo/inspection/2026/20261101T010000Z_r11/checkpoint.json" in text and "有效" in text
