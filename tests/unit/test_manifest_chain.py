"""Pure parts of the evidence bundles: manifest content, chain linking, problem detection.

The store itself is never faked here: everything that talks to S3 is tested against SeaweedFS in
tests/integration/test_evidence_s3.py.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from tasks.evidence import ChainLink, _check_name, build_manifest, newest_link
from tasks.evidence_store import bundle_prefix, content_type, manifest_bytes, sha256_hex, split_key, stamp
from tasks.evidence_verify import BundleState, bundle_problems, chain_problems

T0 = datetime(2026, 11, 26, 2, 0, 0, tzinfo=timezone.utc)


def test_prefix_is_site_duty_year_and_sortable_utc_stamp():
    from zoneinfo import ZoneInfo

    local = datetime(2026, 1, 1, 7, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # 2025-12-31 23:30 UTC
    assert bundle_prefix("demo", "daily", local, "run-1") == "demo/daily/2025/20251231T233000Z_run-1/"
    assert stamp(T0) == "20261126T020000Z"
    assert split_key("demo/daily/2026/20261126T020000Z_r/logs/a.log") == ("demo/daily/2026/20261126T020000Z_r/", "logs/a.log")
    assert split_key("demo/daily/2026/") is None


def test_content_types():
    assert content_type("report.html") == "text/html; charset=utf-8"
    assert content_type("result.json") == "application/json"
    assert content_type("raw.bin") == "application/octet-stream"


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../b", "manifest.json", "dir/"])
def test_unsafe_file_names_are_refused(bad):
    with pytest.raises(ValueError):
        _check_name(bad)


def _manifest(seq_prev: ChainLink | None, files=None, **kw):
    return build_manifest(site="demo", duty="daily", period="2026-11-26", flow_run_id="r1", started_at=T0,
                          finished_at=T0, verdict="OK", approvals=[{"by": "张工", "at": "2026-11-26T02:00:00Z"}],
                          files=files or [], prev=seq_prev, code="abc123", **kw)


def test_first_manifest_has_sequence_1_and_no_predecessor():
    m = _manifest(None, extra={"note": "x"})
    assert m["sequence"] == 1 and m["prev_manifest_sha256"] is None and m["prev_bundle"] is None
    assert m["started_at"] == "2026-11-26T02:00:00Z" and m["code_version"] == "abc123"
    assert m["extra"] == {"note": "x"} and m["approvals"][0]["by"] == "张工"
    assert {"schema", "site", "duty", "period", "flow_run_id", "finished_at", "verdict", "files"} <= set(m)


def test_next_manifest_links_to_previous_bytes():
    first = manifest_bytes(_manifest(None))
    link = ChainLink("demo/daily/2026/a/", sha256_hex(first), 1)
    m = _manifest(link)
    assert m["sequence"] == 2
    assert m["prev_manifest_sha256"] == hashlib.sha256(first).hexdigest()
    assert m["prev_bundle"] == "demo/daily/2026/a/"


def test_manifest_bytes_are_deterministic_utf8():
    m = _manifest(None)
    assert manifest_bytes(m) == manifest_bytes(json.loads(manifest_bytes(m)))
    assert "张工".encode() in manifest_bytes(m)


def test_newest_link_takes_highest_sequence():
    a, b = ChainLink("p/a/", "1" * 64, 3), ChainLink("p/b/", "2" * 64, 5)
    assert newest_link([None, a, b]) == b
    assert newest_link([None, None]) is None


# ---------------------------------------------------------------- verify logic on read data
def _chain(n: int) -> list[BundleState]:
    """n linked bundles, each with one file, as read from a store."""
    out, prev = [], None
    for i in range(1, n + 1):
        data = f"report {i}".encode()
        files = [{"name": "report.html", "sha256": sha256_hex(data), "bytes": len(data)}]
        raw = manifest_bytes(_manifest(prev, files=files))
        prefix = f"demo/daily/2026/2026112{i}T020000Z_r{i}/"
        out.append(BundleState(prefix, raw, {"report.html": (sha256_hex(data), len(data))}))
        prev = ChainLink(prefix, sha256_hex(raw), i)
    return out


def _all_problems(chain):
    return [p for b in chain for p in bundle_problems(b)] + chain_problems(chain)


def test_intact_chain_has_no_problems():
    assert _all_problems(_chain(4)) == []


def test_altered_file_names_bundle_and_file():
    chain = _chain(3)
    chain[1].objects["report.html"] = (sha256_hex(b"forged"), 6)
    chain[1].history["report.html"] = "overwritten at 2026-11-27, 2 versions"
    probs = _all_problems(chain)
    assert [(p.prefix, p.kind) for p in probs] == [(chain[1].prefix, "file_altered")]
    assert "report.html" in probs[0].detail and "overwritten" in probs[0].detail


def test_removed_middle_bundle_is_named_with_sequence_and_neighbours():
    chain = _chain(4)
    gone = chain.pop(1)
    probs = chain_problems(chain, {gone.prefix: "2026-11-27 10:00:00"})
    assert len(probs) == 1
    p = probs[0]
    assert p.kind == "bundle_removed" and p.prefix == gone.prefix
    assert "sequence 2" in p.detail and chain[0].prefix in p.detail and chain[1].prefix in p.detail
    assert "delete markers at 2026-11-27" in p.detail


def test_removed_first_bundles_are_detected():
    chain = _chain(3)[2:]
    probs = chain_problems(chain)
    assert [p.kind for p in probs] == ["bundle_removed"] and "sequences 1..2" in probs[0].detail


def test_altered_manifest_breaks_the_next_link():
    chain = _chain(3)
    m = chain[0].manifest
    m["verdict"] = "FAIL"
    chain[0].manifest_raw = manifest_bytes(m)
    probs = chain_problems(chain)
    assert [(p.prefix, p.kind) for p in probs] == [(chain[0].prefix, "manifest_altered")]


def test_missing_extra_and_manifestless_bundles():
    chain = _chain(2)
    chain[0].objects.pop("report.html")
    chain[1].objects["evil.sh"] = ("0" * 64, 1)
    orphan = BundleState("demo/daily/2026/20261129T020000Z_x/", None, {"report.html": ("0" * 64, 1)})
    kinds = {(p.prefix, p.kind) for p in _all_problems(chain + [orphan])}
    assert kinds == {(chain[0].prefix, "file_missing"), (chain[1].prefix, "file_extra"),
                     (orphan.prefix, "manifest_missing")}


def test_duplicate_sequence_is_reported():
    chain = _chain(2)
    twin = BundleState("demo/daily/2026/20261122T030000Z_t/", chain[1].manifest_raw, dict(chain[1].objects))
    kinds = [p.kind for p in chain_problems(chain + [twin])]
    assert "sequence_duplicate" in kinds
