"""Signed checkpoints against the sandbox's real S3 store (object lock, versioning), through the
auditors' command: `ebops evidence checkpoint` and `ebops evidence verify --checkpoint FILE`.

The attack the checkpoint exists for: someone with the right to bypass governance retention deletes
every version of the newest bundle and of its sequence claim, and the worker's local state (its
outbox and chain heads) is gone too. The store's chain is then intact in itself (plain verify finds
nothing: asserted, so the test shows the gap the checkpoint closes), and the kept checkpoint names
the removed bundle. Each test writes a site of its own into the shared bucket.
"""
from __future__ import annotations

import json
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.settings import load_site
from tasks.evidence.bundle import BundleWriter
from tasks.evidence.chain import claim_key
from tasks.evidence.store import open_store
from tasks.evidence.verify import verify

pytestmark = pytest.mark.sandbox
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


def _bundle(site, outbox: Path, duty: str, i: int):
    w = BundleWriter(site.site, duty, f"2026-11-{i:02d}", f"run-{i}", T0 + timedelta(days=i), site.evidence, outbox)
    w.add_file("report.md", f"# 巡检报告 {i}\n")
    w.add_json("result.json", {"i": i})
    return w.finish("OK", T0 + timedelta(days=i, minutes=5), approvals=[])


def _destroy(store, key: str) -> None:
    """Remove every version of `key` for good, as an account allowed to bypass governance retention can."""
    for v in list(store.list(key, versions=True)):
        if v.object_name == key:
            store.client._execute("DELETE", store.bucket, key, query_params={"versionId": v.version_id},
                                  headers={"x-amz-bypass-governance-retention": "true"})


def _cli(*args: str):
    from flows.cli_evidence import evidence_app

    return CliRunner().invoke(evidence_app, list(args))


@pytest.fixture()
def chain(sites_dir, tmp_path):
    name = f"ckpt{uuid.uuid4().hex[:8]}"
    sites_dir(name)
    site = load_site(name)
    worker = Path(site.evidence.outbox)
    bundles = [_bundle(site, worker, "inspection", i) for i in (1, 2, 3)] + [_bundle(site, worker, "watch", 1)]
    return name, site, worker, bundles


def test_checkpoint_detects_the_deleted_newest_bundle_without_the_workers_local_state(chain, tmp_path):
    name, site, worker, bundles = chain
    kept = tmp_path / "信息科" / "checkpoint.json"
    kept.parent.mkdir()
    made = _cli("checkpoint", "-s", name, "--out", str(kept))
    assert made.exit_code == 0, made.output
    cp = json.loads(kept.read_text())
    assert {(c["duty"], c["sequence"], c["newest_prefix"]) for c in cp["chains"]} == {
        ("inspection", 3, bundles[2].prefix), ("watch", 1, bundles[3].prefix)}
    assert cp["signature"]["alg"] == "Ed25519"
    ok = _cli("verify", "-s", name, "--site-id", name, "--checkpoint", str(kept), "--format", "json")
    assert ok.exit_code == 0, ok.output

    store = open_store(site.evidence)
    newest = bundles[2]
    for o in list(store.list(newest.prefix)):
        _destroy(store, o.object_name)
    _destroy(store, claim_key(name, "inspection", 3))
    shutil.rmtree(worker)  # the worker's outbox and chain heads are gone as well

    plain = verify(site.evidence, site=name)
    assert plain.ok and plain.problems == [] and plain.bundles_checked == 3  # the store alone shows nothing
    checked = _cli("verify", "-s", name, "--site-id", name, "--checkpoint", str(kept), "--format", "json")
    assert checked.exit_code == 1, checked.output
    found = json.loads(checked.output)
    assert {(p["prefix"], p["code"]) for p in found["problems"]} == {(newest.prefix, "bundle_removed")}


def test_checkpoint_refuses_a_rewritten_manifest_and_an_edited_checkpoint(chain, tmp_path):
    name, site, worker, bundles = chain
    kept = tmp_path / "checkpoint.json"
    assert _cli("checkpoint", "-s", name, "--out", str(kept)).exit_code == 0
    edited = json.loads(kept.read_text())
    edited["chains"][0]["sequence"] = 2  # "the chain only ever had two bundles"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(edited))
    out = _cli("verify", "-s", name, "--site-id", name, "--checkpoint", str(forged), "--format", "json", "--no-local")
    assert out.exit_code == 1 and "checkpoint_signature_invalid" in {p["code"] for p in json.loads(out.output)["problems"]}
    not_one = tmp_path / "not.json"
    not_one.write_text("{}")
    bad = _cli("verify", "-s", name, "--checkpoint", str(not_one))
    assert bad.exit_code == 2 and "schema" in bad.output and "Traceback" not in bad.output


def test_the_monthly_inspection_keeps_a_signed_checkpoint_and_prints_it(chain, prefect_harness):
    from flows.inspection import inspection
    from tasks.evidence.checkpoint import load_checkpoint, verify_checkpoint
    from tasks.evidence.sign import signature_state, trusted_keys
    from tasks.evidence.verify import list_bundles

    name, site, worker, bundles = chain
    inspection(site=name, kind="monthly", return_state=True)  # its verdict depends on the shared sandbox
    [monthly] = [b for b in list_bundles(site.evidence, site=name, duty="inspection") if b.sequence == 4]
    store = open_store(site.evidence)
    cp = load_checkpoint(store.get(monthly.prefix + "checkpoint.json"))
    assert signature_state(cp, trusted_keys(site.evidence)) == "valid"
    assert {(c["duty"], c["sequence"]) for c in cp["chains"]} == {("inspection", 3), ("watch", 1)}  # before itself
    assert verify_checkpoint(site.evidence, cp) == []
    report = store.get(monthly.prefix + "report.md").decode()
    assert "证据链检查点（请信息科留存）" in report and cp["root_sha256"] in report
    assert cp["signature"]["value"] in report
