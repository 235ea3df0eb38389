"""A duty's run meets a forged newest bundle (issue 19.1): the report prints the public key, the
next run links to the true manifest, and the tampering is a FAIL finding of that run.

A small flow through flows/common.py's store_evidence and finish (what every duty ends with),
against the sandbox's S3 (its test bucket, a site id of this run's own), and the shared Prefect server or the harness.
"""
from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone

import pytest
from prefect import flow

from config.settings import load_site
from flows.common import finish, store_evidence
from sandbox import manager
from tasks.evidence.sign import fingerprint
from tasks.evidence.store import MANIFEST, open_store
from tasks.core.results import CheckResult, Status


@flow(name="evidence-tamper-probe")
def probe(site_name: str, started: datetime):
    site = load_site(site_name)
    results = [CheckResult(check="disk_usage", title="磁盘使用率", site=site.site, target="/u01", value=41.0,
                           unit="%", threshold="WARN ≥ 80", status=Status.OK)]
    bundle = store_evidence(site, "tamper_probe", "2026-11-01", "inspection", "巡检报告", "日常巡检", results, started)
    return finish(site, "tamper_probe", results, bundle, raise_on_failure=False)


@pytest.fixture()
def site(sites_dir, sandbox):
    """A site of this run's own in the sandbox's test bucket (one bucket per sandbox: each SeaweedFS
    bucket takes volumes of its own, and the sandbox has 100)."""
    public_key = manager.evidence_public_key(manager.credentials())

    def edit(d):
        d["evidence"]["bucket"] = "ebops-test-chains"
        d["evidence"]["signing"]["public_key"] = public_key  # also for a sandbox started before the key existed

    name = sites_dir("t" + secrets.token_hex(4), edit)
    cfg = load_site(name).evidence
    client = open_store(cfg).client
    if not client.bucket_exists(cfg.bucket):
        client.make_bucket(cfg.bucket, object_lock=True)
    return name, cfg, public_key


def test_forged_newest_bundle_fails_the_next_run(prefect_harness, site):
    name, cfg, public_key = site
    first = probe(name, datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc))
    assert first.verdict is Status.OK and first.bundle.location == "store"
    store = open_store(cfg)
    report = store.get(first.bundle.prefix + "report.html").decode()
    assert public_key in report and fingerprint(public_key) in report
    assert fingerprint(public_key) in store.get(first.bundle.prefix + "report.md").decode()
    # Forge it: a clean report, its SHA-256 and size in the manifest, both put back.
    forged = report.replace("磁盘使用率", "磁盘使用率（已复核）").encode()
    m = json.loads(store.get(first.bundle.prefix + MANIFEST))
    for f in m["files"]:
        if f["name"] == "report.html":
            f.update(sha256=__import__("hashlib").sha256(forged).hexdigest(), bytes=len(forged))
    store.put(first.bundle.prefix + "report.html", forged)
    store.put(first.bundle.prefix + MANIFEST, json.dumps(m, ensure_ascii=False, indent=2, sort_keys=True).encode())

    second = probe(name, datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc))
    assert second.verdict is Status.FAIL
    chain = [r for r in second.results if r.check == "evidence_chain"]
    assert [(r.target, r.status) for r in chain] == [("chain_head_mismatch", Status.FAIL)]
    again = finish(load_site(name), "tamper_probe", second.results, second.bundle, raise_on_failure=False)
    assert len([r for r in again.results if r.check == "evidence_chain"]) == 1  # a flow may finish twice
    m2 = json.loads(store.get(second.bundle.prefix + MANIFEST))
    assert m2["prev_manifest_sha256"] == first.bundle.manifest_sha256 and m2["verdict"] == "FAIL"
    stored = json.loads(store.get(second.bundle.prefix + "result.json"))
    assert any(r["check"] == "evidence_chain" and r["target"] == "chain_head_mismatch" for r in stored["results"])
