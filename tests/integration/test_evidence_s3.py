"""Evidence bundles against a real SeaweedFS S3 store started for this module (sandbox.s3).

Covers: manifest last and retention, the outbox while the store is down (for a whole run, and
killed in the middle of an upload) and the byte-identical upload after it comes back, verify
catching an altered, a removed and a manifest-less bundle by prefix, the forged and the deleted
newest bundle (with and without the worker's local state), unsigned sites, and the auditor CLI's
exit codes. Findings are asserted by their codes, never by wording.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.evidence import EvidenceStoreConfig
from sandbox import s3 as sandbox_s3
from sandbox.ports import port_open
from tasks.evidence.bundle import BundleWriter
from tasks.evidence.outbox import outbox_bundles
from tasks.evidence.sign import load_private_key, public_key_b64
from tasks.evidence.store import MANIFEST, open_store
from tasks.evidence.verify import list_bundles, show, verify

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def s3(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("sandbox")
    creds = {"EBOPS_DEMO_S3_ACCESS_KEY": "ebops" + secrets.token_hex(6),
             "EBOPS_DEMO_S3_SECRET_KEY": secrets.token_urlsafe(18)}
    mp = pytest.MonkeyPatch()
    for k, v in creds.items():
        mp.setenv(k, v)
    mp.setenv("EBOPS_TEST_SIGNING_KEY", SIGNING_SEED)
    holder = {"state": sandbox_s3.start(root, creds), "root": root, "creds": creds}
    yield holder
    sandbox_s3.stop(holder["state"])
    mp.undo()


SIGNING_SEED = base64.b64encode(secrets.token_bytes(32)).decode()
PUBLIC_KEY = public_key_b64(load_private_key(SIGNING_SEED))


def _cfg(port: int, bucket: str = sandbox_s3.EVIDENCE_BUCKET, signing: bool = True, **more) -> EvidenceStoreConfig:
    return EvidenceStoreConfig.model_validate({
        "endpoint": f"127.0.0.1:{port}", "secure": False, "bucket": bucket,
        "access_key": {"env": "EBOPS_DEMO_S3_ACCESS_KEY"}, "secret_key": {"env": "EBOPS_DEMO_S3_SECRET_KEY"},
        "retention": {"mode": "GOVERNANCE", "days": 1}}
        | ({"signing": {"private_key": {"env": "EBOPS_TEST_SIGNING_KEY"}, "public_key": PUBLIC_KEY}} if signing else {})
        | more)


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
    # Signed with the worker's key, which never reaches the store (nor the outbox's chain state).
    assert m2["signature"]["alg"] == "Ed25519" and verify(cfg, site="demo", duty="stored").problems == []
    seed = SIGNING_SEED.encode()
    assert not any(seed in store.get(o.object_name) for o in store.list("") if "/stored/" in o.object_name)
    assert not any(seed in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


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
    assert outbox_bundles(tmp_path) == []  # nothing left waiting


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
    assert report.codes == {(altered.prefix, "file_altered"), (altered.prefix, "newer_version"),
                            (removed.prefix, "bundle_removed")}
    detail = {p.code: p.detail for p in report.problems if p.code != "newer_version"}
    assert "result.json" in detail["file_altered"]
    assert "sequence 4" in detail["bundle_removed"] and bundles[2].prefix in detail["bundle_removed"]
    assert bundles[4].prefix in detail["bundle_removed"]


def _site_file(sites: Path, site: str, name: str, port: int, *evidence_lines: str) -> None:
    """A site file whose evidence store is the sandbox's S3 (the database is never reached)."""
    extra = "".join(f"\n  {line}" for line in evidence_lines)
    (sites / f"{site}.yaml").write_text(f"""
site: {site}
name: {name}
database: {{dialect: postgresql, dsn: "host=127.0.0.1 dbname=x", user: u, password: {{env: NOPE}}}}
evidence:
  endpoint: "127.0.0.1:{port}"
  secure: false
  bucket: {sandbox_s3.EVIDENCE_BUCKET}
  access_key: {{env: EBOPS_DEMO_S3_ACCESS_KEY}}
  secret_key: {{env: EBOPS_DEMO_S3_SECRET_KEY}}
  retention: {{mode: GOVERNANCE, days: 1}}{extra}
""", encoding="utf-8")


def test_cli_list_and_verify_exit_codes(s3, tmp_path, monkeypatch):
    from flows.cli_evidence import evidence_app

    port = s3["state"]["s3_port"]
    sites = tmp_path / "sites"
    sites.mkdir()
    _site_file(sites, "audit", "审计医院", port, f'signing: {{public_key: "{PUBLIC_KEY}"}}')
    monkeypatch.setenv("EBOPS_SITES_DIR", str(sites))
    cfg = _cfg(port)
    made = [_bundle(cfg, tmp_path / "outbox", "cli", i, site="audit") for i in (1, 2)]
    runner = CliRunner()
    res = runner.invoke(evidence_app, ["list", "-s", "audit", "--site-id", "audit"])
    assert res.exit_code == 0, res.output
    assert all(b.prefix.split("/")[3][:20] in res.output for b in made)
    res = runner.invoke(evidence_app, ["verify", "-s", "audit", "--site-id", "audit"])
    assert res.exit_code == 0 and "chain intact" in res.output, res.output
    res = runner.invoke(evidence_app, ["url", made[0].prefix, "-s", "audit"])
    assert res.exit_code == 0 and "X-Amz-Signature" in res.output
    res = runner.invoke(evidence_app, ["get", made[0].prefix, "-s", "audit", "--dest", str(tmp_path / "dl")])
    assert res.exit_code == 0 and (tmp_path / "dl" / made[0].prefix.split("/")[3] / MANIFEST).exists()
    open_store(cfg).client.remove_object(cfg.bucket, made[0].prefix + "report.md")
    res = runner.invoke(evidence_app, ["verify", "-s", "audit", "--site-id", "audit"])
    assert res.exit_code == 1 and "file_missing" in res.output, res.output
    res = runner.invoke(evidence_app, ["verify", "-s", "audit", "--site-id", "audit", "--format", "json"])
    assert res.exit_code == 1 and {(p["prefix"], p["code"]) for p in json.loads(res.output)["problems"]} == {
        (made[0].prefix, "file_missing")}, res.output
    res = runner.invoke(evidence_app, ["list", "-s", "nosuchsite"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    monkeypatch.delenv("EBOPS_DEMO_S3_SECRET_KEY")
    res = runner.invoke(evidence_app, ["verify", "-s", "audit"])
    assert res.exit_code == 2 and "EBOPS_DEMO_S3_SECRET_KEY" in res.output
    monkeypatch.setenv("EBOPS_DEMO_S3_SECRET_KEY", s3["creds"]["EBOPS_DEMO_S3_SECRET_KEY"])
    assert list_bundles(cfg, site="audit", year=2026)


# ---------------------------------------------------------------- issue 19.1 and issue 13's fault rows
def _forge_newest(cfg, b) -> None:
    """What someone with write access to the bucket but without the worker's key does: rewrite the
    newest report.html, fix its SHA-256 and size in manifest.json, put both back as new versions."""
    store = open_store(cfg)
    forged = "<html><body>巡检报告 全部正常</body></html>".encode()
    m = json.loads(store.get(b.prefix + MANIFEST))
    for f in m["files"]:
        if f["name"] == "report.html":
            f["sha256"], f["bytes"] = hashlib.sha256(forged).hexdigest(), len(forged)
    store.put(b.prefix + "report.html", forged)
    store.put(b.prefix + MANIFEST, json.dumps(m, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n")


def test_forged_newest_bundle_is_detected_with_and_without_local_state(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    worker = tmp_path / "worker"
    bundles = [_bundle(cfg, worker, "forge", i) for i in (1, 2, 3)]
    assert verify(cfg, site="demo", duty="forge", outbox=worker).ok
    assert json.loads(open_store(cfg).get(bundles[2].prefix + MANIFEST))["signature"]["alg"] == "Ed25519"
    _forge_newest(cfg, bundles[2])
    newest = bundles[2].prefix
    # An auditor without the worker's state: the signature, the versions and the claim give it away.
    report = verify(cfg, site="demo", duty="forge")
    assert not report.ok
    assert {(newest, "signature_invalid"), (newest, "newer_version"), (newest, "claim_mismatch")} <= report.codes
    assert {p.prefix for p in report.problems} == {newest}
    # On the worker: its chain head holds the true manifest's SHA-256 too.
    assert (newest, "chain_head_mismatch") in verify(cfg, site="demo", duty="forge", outbox=worker).codes
    # The next run links to the true manifest and reports the tampering as a FAIL finding.
    nxt = _bundle(cfg, worker, "forge", 4)
    m4 = show(cfg, nxt.prefix)
    assert m4["prev_manifest_sha256"] == bundles[2].manifest_sha256 and m4["sequence"] == 4
    assert [(f.code, f.status) for f in nxt.findings] == [("chain_head_mismatch", "FAIL")]
    assert m4["chain_findings"][0]["code"] == "chain_head_mismatch"
    # A new worker (no local state) never adopts the forged manifest silently either.
    fresh = _bundle(cfg, tmp_path / "new-worker", "forge", 5)
    assert fresh.findings == ()  # the newest is now bundle 4, intact and signed
    _forge_newest(cfg, fresh)
    sixth = _bundle(cfg, tmp_path / "third-worker", "forge", 6)
    assert {f.code for f in sixth.findings} == {"claim_mismatch", "signature_invalid"}
    assert show(cfg, sixth.prefix)["prev_manifest_sha256"] == fresh.manifest_sha256  # the claimed, true manifest


def test_deleted_newest_bundle_is_reported_at_once(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    worker = tmp_path / "worker"
    bundles = [_bundle(cfg, worker, "delnewest", i) for i in (1, 2, 3)]
    store = open_store(cfg)
    for o in list(store.list(bundles[2].prefix)):
        store.client.remove_object(cfg.bucket, o.object_name)
    for outbox in (None, worker):
        report = verify(cfg, site="demo", duty="delnewest", outbox=outbox)
        assert not report.ok and report.codes == {(bundles[2].prefix, "bundle_removed")}, report.problems
    nxt = _bundle(cfg, worker, "delnewest", 4)
    assert [f.code for f in nxt.findings] == ["bundle_removed"]
    assert show(cfg, nxt.prefix)["sequence"] == 4  # the gap stays visible, its number is not reused


def test_deleted_manifest_and_overwritten_object_are_named(s3, tmp_path):
    cfg = _cfg(s3["state"]["s3_port"])
    bundles = [_bundle(cfg, tmp_path, "delmanifest", i) for i in (1, 2, 3)]
    store = open_store(cfg)
    store.client.remove_object(cfg.bucket, bundles[1].prefix + MANIFEST)
    store.put(bundles[0].prefix + "logs/step1.log", b"rewritten\n")
    report = verify(cfg, site="demo", duty="delmanifest")
    assert {(bundles[1].prefix, "manifest_missing"), (bundles[1].prefix, "bundle_removed"),
            (bundles[0].prefix, "file_altered"), (bundles[0].prefix, "newer_version")} == report.codes


def test_store_killed_mid_upload(s3, tmp_path, monkeypatch):
    """S3 dies after two of the bundle's files: no manifest without all files in the store, the
    bundle waits complete in the outbox, goes up byte-identical later, and the chain continues from it."""
    from tasks.evidence import store as evidence_store

    cfg = _cfg(s3["state"]["s3_port"])
    first = _bundle(cfg, tmp_path, "midkill", 1)
    real_put, calls = evidence_store.Store.put, []

    def put_then_kill(self, key, data):
        calls.append(key)
        if len(calls) == 3:
            sandbox_s3.stop(s3["state"])  # a real kill of the real server, between two uploads
        return real_put(self, key, data)

    monkeypatch.setattr(evidence_store.Store, "put", put_then_kill)
    try:
        waiting = _bundle(cfg, tmp_path, "midkill", 2)
    finally:
        monkeypatch.setattr(evidence_store.Store, "put", real_put)
        s3["state"] = sandbox_s3.start(s3["root"], s3["creds"])
    assert waiting.location == "outbox" and len(calls) == 3
    local = tmp_path / waiting.prefix
    before = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
    assert MANIFEST in before and len(before) == 5
    store = open_store(cfg)
    in_store = {o.object_name[len(waiting.prefix):] for o in store.list(waiting.prefix)}
    assert in_store and MANIFEST not in in_store and len(in_store) < 4
    third = _bundle(cfg, tmp_path, "midkill", 3)
    assert third.location == "store" and not local.exists() and third.findings == ()
    assert {n: store.get(waiting.prefix + n) for n in before} == before
    assert (show(cfg, third.prefix)["sequence"], show(cfg, third.prefix)["prev_bundle"]) == (3, waiting.prefix)
    assert show(cfg, waiting.prefix)["prev_bundle"] == first.prefix
    report = verify(cfg, site="demo", duty="midkill", outbox=tmp_path)
    assert report.ok and report.problems == [], report.problems  # the re-uploaded files are the same bytes


def test_unsigned_only_with_an_explicit_setting(s3, tmp_path, monkeypatch):
    port = s3["state"]["s3_port"]
    b = _bundle(_cfg(port, signing=False), tmp_path, "unsigned", 1)
    assert [(f.code, f.status) for f in b.findings] == [("unsigned", "FAIL")]
    assert "signature" not in show(_cfg(port), b.prefix)
    report = verify(_cfg(port), site="demo", duty="unsigned")
    assert not report.ok and report.codes == {(b.prefix, "unsigned")}
    relaxed = _cfg(port, signing=False, allow_unsigned=True)
    b2 = _bundle(relaxed, tmp_path, "unsigned", 2)
    assert b2.findings == ()
    report = verify(relaxed, site="demo", duty="unsigned")
    assert report.ok and [(p.code, p.severity) for p in report.problems] == [("unsigned", "warning")]
    # Signed from now on: the signed manifest vouches for the unsigned ones before it.
    _bundle(_cfg(port), tmp_path, "unsigned", 3)
    assert verify(_cfg(port), site="demo", duty="unsigned").problems == []
    # A key that is not the site's is refused and the bundle is stored unsigned, with the finding.
    monkeypatch.setenv("EBOPS_TEST_SIGNING_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    b4 = _bundle(_cfg(port), tmp_path, "unsigned", 4)
    assert [f.code for f in b4.findings] == ["unsigned"] and "signature" not in show(_cfg(port), b4.prefix)


def test_cli_verify_on_the_worker_compares_its_chain_head(s3, tmp_path, monkeypatch):
    from flows.cli_evidence import evidence_app

    port = s3["state"]["s3_port"]
    sites, outbox = tmp_path / "sites", tmp_path / "outbox"
    sites.mkdir()
    _site_file(sites, "worker", "工作站医院", port, f"outbox: {outbox}",
               f'signing: {{private_key: {{env: EBOPS_TEST_SIGNING_KEY}}, public_key: "{PUBLIC_KEY}"}}')
    monkeypatch.setenv("EBOPS_SITES_DIR", str(sites))
    made = [_bundle(_cfg(port), outbox, "clilocal", i, site="worker") for i in (1, 2)]
    _forge_newest(_cfg(port), made[1])
    runner = CliRunner()

    def codes(*extra):
        res = runner.invoke(evidence_app, ["verify", "-s", "worker", "--site-id", "worker", "--format", "json", *extra])
        assert res.exit_code == 1, res.output
        return {p["code"] for p in json.loads(res.output)["problems"]}

    assert "chain_head_mismatch" in codes() and "signature_invalid" in codes()
    assert "chain_head_mismatch" not in codes("--no-local")
    res = runner.invoke(evidence_app, ["verify", "-s", "worker", "--format", "yaml"])
    assert res.exit_code == 2 and "Traceback" not in res.output
