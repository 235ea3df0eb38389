"""Checkpoints judged without a store (tasks/evidence/checkpoint.checkpoint_problems is pure): what a
removed, altered or added manifest and a forged signature look like against a kept checkpoint."""
from __future__ import annotations

import base64
import secrets

from tasks.evidence.checkpoint import (SCHEMA, Entry, chain_summary, checkpoint_problems, overall_root)
from tasks.evidence.sign import Signer, load_private_key, public_key_b64

SEED = base64.b64encode(secrets.token_bytes(32)).decode()
KEY = load_private_key(SEED)
PUB = public_key_b64(KEY)


def _chain(n: int, duty: str = "inspection") -> list[Entry]:
    return [Entry(i, f"{i:064x}", f"demo/{duty}/2026/2026110{i}T000000Z_r{i}/") for i in range(1, n + 1)]


def _checkpoint(chains: dict) -> dict:
    cs = [chain_summary("demo", duty, es) for duty, es in sorted(chains.items())]
    return Signer(KEY, PUB).sign({"schema": SCHEMA, "created_at": "2026-12-01T01:00:00Z", "bucket": "b", "scope": "demo",
                                  "chains": cs, "root_sha256": overall_root(cs)})


def _codes(problems) -> set[tuple[str, str]]:
    return {(p.prefix, p.code) for p in problems}


def test_an_intact_store_and_later_bundles_pass():
    cp = _checkpoint({"inspection": _chain(3), "watch": _chain(2, "watch")})
    later = {("demo", "inspection"): _chain(5), ("demo", "watch"): _chain(2, "watch")}
    assert checkpoint_problems(cp, [PUB], later) == []


def test_the_removed_newest_bundle_is_named():
    cp = _checkpoint({"inspection": _chain(3)})
    problems = checkpoint_problems(cp, [PUB], {("demo", "inspection"): _chain(2)})
    assert _codes(problems) == {(_chain(3)[-1].prefix, "bundle_removed")}
    assert "sequence 3" in problems[0].detail


def test_a_removed_middle_bundle_a_rewritten_manifest_and_a_whole_chain_gone():
    cp = _checkpoint({"inspection": _chain(4), "watch": _chain(2, "watch")})
    chain = _chain(4)
    assert _codes(checkpoint_problems(cp, [PUB], {("demo", "inspection"): chain[:1] + chain[2:],
                                                  ("demo", "watch"): _chain(2, "watch")})) == \
        {("demo/inspection/", "bundle_removed")}
    rewritten = chain[:1] + [Entry(2, "f" * 64, chain[1].prefix)] + chain[2:]
    assert _codes(checkpoint_problems(cp, [PUB], {("demo", "inspection"): rewritten, ("demo", "watch"): _chain(2, "watch")})) == \
        {("demo/inspection/", "checkpoint_mismatch")}
    newest = chain[:3] + [Entry(4, "e" * 64, chain[3].prefix)]
    assert _codes(checkpoint_problems(cp, [PUB], {("demo", "inspection"): newest, ("demo", "watch"): _chain(2, "watch")})) == \
        {(chain[3].prefix, "manifest_altered")}
    # the whole watch chain gone: named by its newest bundle at the checkpoint
    assert _codes(checkpoint_problems(cp, [PUB], {("demo", "inspection"): chain})) == \
        {(_chain(2, "watch")[-1].prefix, "bundle_removed")}


def test_a_checkpoint_edited_or_signed_with_another_key_is_refused():
    cp = _checkpoint({"inspection": _chain(3)})
    edited = {**cp, "chains": [{**cp["chains"][0], "sequence": 2}]}
    assert "checkpoint_signature_invalid" in {p.code for p in checkpoint_problems(edited, [PUB], {("demo", "inspection"): _chain(3)})}
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    other_pub = public_key_b64(load_private_key(other))
    assert {p.code for p in checkpoint_problems(cp, [other_pub], {("demo", "inspection"): _chain(3)})} == \
        {"checkpoint_signature_invalid"}


def test_the_monthly_inspection_report_prints_the_checkpoint_for_the_it_department():
    from tasks.core.reports import render_both
    from tasks.evidence.checkpoint import summary_for_report
    from tests.unit.test_report_forms import _contexts

    cp = _checkpoint({"inspection": _chain(3), "watch": _chain(2, "watch")})
    ctx = {**_contexts()["inspection"], "checkpoint": summary_for_report(cp)}
    for name, page in render_both("inspection", **ctx).items():
        assert "证据链检查点（请信息科留存）" in page, name
        assert cp["root_sha256"] in page and cp["signature"]["value"] in page, name
        assert all(c["root_sha256"] in page and c["newest_manifest_sha256"] in page for c in cp["chains"]), name
    plain = render_both("inspection", **_contexts()["inspection"])["report.md"]
    assert "证据链检查点" not in plain  # only the monthly inspection carries one
