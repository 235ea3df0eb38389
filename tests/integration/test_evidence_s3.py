"""Evidence bundles against a real SeaweedFS S3 store started for this module (sandbox.s3).

Covers: manifest last and retention, the outbox while the store is down and the byte-identical
upload after it comes back, verify catching an altered and a removed bundle by prefix, and the
auditor CLI's exit codes.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.settings import EvidenceStoreConfig
from sandbox import s3 as sandbox_s3
from sandbox.ports import port_open
from tasks.evidence import BundleWriter, flush_outbox
from tasks.evidence_store import MANIFEST, open_store
from tasks.evidence_verify import list_bundles, show, verify

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def s3(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("sandbox")
    creds = {"EBOPS_DEMO_S3_ACCESS_KEY": "ebops" + secrets.token_hex(6),
             "EBOPS_DEMO_S3_SECRET_KEY": secrets.token_urlsafe(18)}
    mp = pytest.MonkeyPatch()
    for k, v in creds.items():
        mp.setenv(k, v)
    holder = {"state": sandbox_s3.start(root, creds), "root": root, "creds": creds}
    yield holder
    sandbox_s3.stop(holder["state"])
    mp.undo()


def _cfg(port: int, bucket: str = sandbox_s3.EVIDENCE_BUCKET) -> EvidenceStoreConfig:
    return EvidenceStoreConfig.model_validate({
        "endpoint": f"127.0.0.1:{port}", "secure": False, "bucket": bucket,
        "access_key": {"env": "EBOPS_DEMO_S3_ACCESS_KEY"}, "secret_key": {"env": "EBOPS_DEMO_S3_SECRET_KEY"},
        "retention": {"mode": "GOVERNANCE", "days": 1}})


def _bundle(cfg, outbox: Path, duty: str, i: int, site: str = "demo"):
    w = BundleWriter(site, duty, f"2026-11-{i:02d}", f"run-{duty}-{i}", T0 + timedelta(days=i), cfg, outbox)
    w.add_file("report.html", f"<html><body>巡检报告 {i}</body></html>")
    w.add_file("report.md", f"# 巡检报告 {i}\n")
    w.add_json("result.json", {"i": i, "status": "OK"})
    w.add_file("logs/step1.log", b"raw step log\n" * i)
    return w.finish("OK", T0 + timedelta(days=i, minutes=5), approvals=[])


def test_bundle_stored_with_manifest_last_and_retention(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    b1 = _bundle(cfg, tmp_path, "stored", 1)
    b2 = _bundle(cfg, tmp_path, "stored", 2)
    assert b1.location == b2.location == "store"
    assert b2.report_url and b2.report_url.startswith("http://127.0.0.1:") and "X-Amz-Signature" in b2.report_url
    store = open_store(cfg)
    objs = {o.object_name: o for o in store.list(b1.prefix)}
    assert set(objs) == {b1.prefix + n for n in ("report.html", "report.md", "result.json", "logs/step1.log", MANIFEST)}
    # The manifest is the last object written (the store's clock has one-second resolution: ties allowed).
    assert all(objs[b1.prefix + MANIFEST].last_modified >= o.last_modified for o in objs.values())
    assert store.client.stat_object(cfg.bucket, b1.prefix + "report.html").content_type == "text/html; charset=utf-8"
    m2 = show(cfg, b2.prefix)
    assert m2["sequence"] == 2 and m2["prev_bundle"] == b1.prefix
    assert m2["prev_manifest_sha256"] == hashlib.sha256(store.get(b1.prefix + MANIFEST)).hexdigest()
    assert b2.manifest_sha256 == hashlib.sha256(store.get(b2.prefix + MANIFEST)).hexdigest()
    # Object lock: the bucket has it, versioning is on, and the object carries the retention we asked.
    assert store.object_lock() and store.versioning()
    ret = store.object_retention(b1.prefix + "report.html")
    assert ret is not None and ret.mode == "GOVERNANCE"
    assert ret.retain_until_date > datetime.now(timezone.utc) + timedelta(hours=23)
    assert not any(tmp_path.glob("stored/**/manifest.json")), "uploaded bundles must leave the outbox"


def test_outbox_while_store_down_then_byte_identical_upload(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    first = _bundle(cfg, tmp_path, "outage", 1)
    assert first.location == "store"
    sandbox_s3.stop(s3["state"])
    assert not port_open(s3["state"]["s3_port"])
    waiting = _bundle(cfg, tmp_path, "outage", 2)
    assert waiting.location == "outbox" and waiting.report_url is None and waiting.upload_error
    local = tmp_path / waiting.prefix
    before = {p.relative_to(local).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in local.rglob("*") if p.is_file()}
    assert MANIFEST in before and len(before) == 5
    # The chain still links to the last stored bundle (through the local chain head).
    assert json.loads((local / MANIFEST).read_text())["prev_bundle"] == first.prefix

    s3["state"] = sandbox_s3.start(s3["root"], s3["creds"])
    assert s3["state"]["s3_port"] == int(cfg.endpoint.rsplit(":", 1)[1]), "restart must keep the port"
    third = _bundle(cfg, tmp_path, "outage", 3)  # flushes the outbox first
    assert third.location == "store" and not local.exists()
    store = open_store(cfg)
    after = {n: hashlib.sha256(store.get(waiting.prefix + n)).hexdigest() for n in before}
    assert after == before
    m3 = show(cfg, third.prefix)
    assert (m3["sequence"], m3["prev_bundle"]) == (3, waiting.prefix)
    assert verify(cfg, site="demo", duty="outage").ok
    assert flush_outbox(cfg, tmp_path) == []


def test_verify_names_altered_and_removed_bundles(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    bundles = [_bundle(cfg, tmp_path, "tamper", i) for i in range(1, 6)]
    report = verify(cfg, site="demo", duty="tamper")
    assert report.ok and report.bundles_checked == 5
    store = open_store(cfg)
    altered, removed = bundles[1], bundles[3]
    store.client.put_object(cfg.bucket, altered.prefix + "result.json", __import__("io").BytesIO(b'{"status":"OK!"}'), 16)
    for o in list(store.list(removed.prefix)):
        store.client.remove_object(cfg.bucket, o.object_name)
    report = verify(cfg, site="demo", duty="tamper")
    assert not report.ok and report.bundles_checked == 4
    kinds = {(p.prefix, p.kind) for p in report.problems}
    assert kinds == {(altered.prefix, "file_altered"), (removed.prefix, "bundle_removed")}
    detail = {p.kind: p.detail for p in report.problems}
    assert "result.json" in detail["file_altered"]
    assert "sequence 4" in detail["bundle_removed"] and bundles[2].prefix in detail["bundle_removed"]
    assert bundles[4].prefix in detail["bundle_removed"]


def test_cli_list_and_verify_exit_codes(s3, tmp_path, monkeypatch):
    from flows.cli_evidence import evidence_app

    port = s3["state"]["s3_port"]
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / "audit.yaml").write_text(f"""
site: audit
name: 审计医院
database: {{dialect: postgresql, dsn: "host=127.0.0.1 dbname=x", user: u, password: {{env: NOPE}}}}
evidence:
  endpoint: "127.0.0.1:{port}"
  secure: false
  bucket: {sandbox_s3.EVIDENCE_BUCKET}
  access_key: {{env: EBOPS_DEMO_S3_ACCESS_KEY}}
  secret_key: {{env: EBOPS_DEMO_S3_SECRET_KEY}}
  retention: {{mode: GOVERNANCE, days: 1}}
""", encoding="utf-8")
    monkeypatch.setenv("EBOPS_SITES_DIR", str(sites))
    cfg = _cfg(port)
    made = [_bundle(cfg, tmp_path / "outbox", "cli", i, site="audit") for i in (1, 2)]
    runner = CliRunner()
    res = runner.invoke(evidence_app, ["list", "-s", "audit", "--site", "audit"])
    assert res.exit_code == 0, res.output
    assert all(b.prefix.split("/")[3][:20] in res.output for b in made)
    res = runner.invoke(evidence_app, ["verify", "-s", "audit", "--site", "audit"])
    assert res.exit_code == 0 and "chain intact" in res.output, res.output
    res = runner.invoke(evidence_app, ["url", made[0].prefix, "-s", "audit"])
    assert res.exit_code == 0 and "X-Amz-Signature" in res.output
    res = runner.invoke(evidence_app, ["get", made[0].prefix, "-s", "audit", "--dest", str(tmp_path / "dl")])
    assert res.exit_code == 0 and (tmp_path / "dl" / made[0].prefix.split("/")[3] / MANIFEST).exists()
    open_store(cfg).client.remove_object(cfg.bucket, made[0].prefix + "report.md")
    res = runner.invoke(evidence_app, ["verify", "-s", "audit", "--site", "audit"])
    assert res.exit_code == 1 and "file_missing" in res.output, res.output
    res = runner.invoke(evidence_app, ["list", "-s", "nosuchsite"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    monkeypatch.delenv("EBOPS_DEMO_S3_SECRET_KEY")
    res = runner.invoke(evidence_app, ["verify", "-s", "audit"])
    assert res.exit_code == 2 and "EBOPS_DEMO_S3_SECRET_KEY" in res.output
    monkeypatch.setenv("EBOPS_DEMO_S3_SECRET_KEY", s3["creds"]["EBOPS_DEMO_S3_SECRET_KEY"])
    assert list_bundles(cfg, site="audit", year=2026)
