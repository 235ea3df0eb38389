"""Pure parts of the evidence bundles: manifest content, chain linking, problem detection.

The store itself is never faked here: everything that talks to S3 is tested against SeaweedFS in
tests/integration/test_evidence_s3.py.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from tasks.evidence.bundle import ChainLink, _check_name, build_manifest, newest_link
from tasks.evidence.store import bundle_prefix, content_type, manifest_bytes, sha256_hex, split_key, stamp
from tasks.evidence.judge import BundleState, bundle_problems, chain_problems

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
    assert content_type("s/inspection/2026/x/report.md") == "text/markdown; charset=utf-8"
    assert content_type("raw/db1/messages.LOG") == "text/plain; charset=utf-8"
    assert content_type("findings.csv") == "text/csv; charset=utf-8" and content_type("chart.png") == "image/png"
    assert content_type("README") == "application/octet-stream"


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


# ---------------------------------------------------------------- signatures (issue 19.1)
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from tasks.evidence.sign import (
    Signer,
    SigningKeyUnusable,
    fingerprint,
    load_private_key,
    public_key_b64,
    signature_state,
)
from tasks.evidence.verify import StoreListing, newest_problems
from tasks.evidence.judge import signature_problems

KEY = Ed25519PrivateKey.generate()
PUB = public_key_b64(KEY)
SIGNER = Signer(KEY, PUB)


def test_signature_covers_every_field_and_only_the_sites_key_verifies():
    m = SIGNER.sign(_manifest(None))
    assert m["signature"]["alg"] == "Ed25519" and m["signature"]["public_key"] == fingerprint(PUB)
    assert signature_state(m, [PUB]) == "valid"
    assert signature_state(json.loads(manifest_bytes(m)), [PUB]) == "valid"  # survives the round trip
    forged = dict(m, files=[{"name": "report.html", "sha256": "0" * 64, "bytes": 1}])
    assert signature_state(forged, [PUB]) == "invalid"
    other = public_key_b64(Ed25519PrivateKey.generate())
    assert signature_state(m, [other]) == "invalid"
    assert signature_state(m, [other, PUB]) == "valid"  # a retired key next to the current one
    assert signature_state(_manifest(None), [PUB]) == "unsigned"
    assert signature_state(m, []) == "unchecked"
    resigned = Signer(Ed25519PrivateKey.generate(), other).sign(forged)  # signed, but with someone else's key
    assert signature_state(resigned, [PUB]) == "invalid"


def test_private_key_as_pem_or_base64_seed():
    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    seed = __import__("base64").b64encode(KEY.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                            serialization.NoEncryption())).decode()
    assert public_key_b64(load_private_key(pem)) == PUB == public_key_b64(load_private_key(seed + "\n"))
    for bad in ("not a key", "AAAA", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(SigningKeyUnusable) as exc:
            load_private_key(bad)
        assert bad not in str(exc.value)  # the secret never goes into a message


def test_site_file_public_key_must_be_a_raw_ed25519_key():
    from pydantic import ValidationError

    from config.evidence import ManifestSigning

    assert ManifestSigning.model_validate({"public_key": PUB}).private_key is None  # an auditor's copy
    for bad in ("abc", "A" * 44, __import__("base64").b64encode(b"x" * 31).decode()):
        with pytest.raises(ValidationError):
            ManifestSigning.model_validate({"public_key": bad})
    with pytest.raises(ValidationError):
        ManifestSigning.model_validate({"public_key": PUB, "private_key": "-----BEGIN PRIVATE KEY-----"})


def _signed_chain(n: int, signer: Signer | None = SIGNER) -> list[BundleState]:
    out, prev = [], None
    for i in range(1, n + 1):
        m = _manifest(prev)
        raw = manifest_bytes(signer.sign(m) if signer else m)
        prefix = f"demo/daily/2026/2026112{i}T020000Z_r{i}/"
        out.append(BundleState(prefix, raw, {}))
        prev = ChainLink(prefix, sha256_hex(raw), i)
    return out


def test_signature_problems_name_the_forged_newest_and_the_unsigned_tail():
    chain = _signed_chain(3)
    assert signature_problems(chain, [PUB], allow_unsigned=False) == []
    m = chain[2].manifest
    m["verdict"] = "FAIL"
    chain[2].manifest_raw = manifest_bytes(m)  # the newest rewritten: the chain links cannot see it
    assert chain_problems(chain) == []
    assert [(p.prefix, p.code) for p in signature_problems(chain, [PUB], False)] == [(chain[2].prefix, "signature_invalid")]
    unsigned = _signed_chain(2, signer=None)
    [p] = signature_problems(unsigned, [PUB], allow_unsigned=False)
    assert (p.prefix, p.code, p.severity) == (unsigned[1].prefix, "unsigned", "error")
    [p] = signature_problems(unsigned, [PUB], allow_unsigned=True)
    assert (p.code, p.severity) == ("unsigned", "warning")
    # Bundles from before signing are vouched for by the first signed manifest after them.
    legacy_then_signed = _signed_chain(2, signer=None)
    link = ChainLink(legacy_then_signed[1].prefix, sha256_hex(legacy_then_signed[1].manifest_raw), 2)
    legacy_then_signed.append(BundleState("demo/daily/2026/20261129T020000Z_r3/",
                                          manifest_bytes(SIGNER.sign(_manifest(link))), {}))
    assert signature_problems(legacy_then_signed, [PUB], allow_unsigned=False) == []
    assert [p.code for p in signature_problems(_signed_chain(2), [], False)] == ["signature_unchecked"]


def test_newest_problems_codes():
    chain = _signed_chain(2)
    manifests = {b.prefix: b.manifest_raw for b in chain}
    gone = "demo/daily/2026/20261130T020000Z_r9/"
    listing = StoreListing(deleted={gone: "2026-11-30 10:00"},
                           rewritten={chain[1].prefix + "report.html": "2 versions with different content"})
    claims = {chain[0].prefix: (1, sha256_hex(chain[0].manifest_raw), "t1"),
              chain[1].prefix: (2, "f" * 64, "t2"),  # the claim holds another manifest than the store
              "demo/daily/2026/20261131T020000Z_r3/": (3, "e" * 64, "t3")}  # claimed, no manifest
    heads = {chain[1].prefix: ("d" * 64, 2)}
    got = {(p.prefix, p.code) for p in newest_problems(listing, manifests, claims, heads)}
    assert got == {(gone, "bundle_removed"), (chain[1].prefix, "newer_version"), (chain[1].prefix, "claim_mismatch"),
                   ("demo/daily/2026/20261131T020000Z_r3/", "bundle_removed"), (chain[1].prefix, "chain_head_mismatch")}
    assert newest_problems(StoreListing(), manifests, {}, {chain[1].prefix: (sha256_hex(chain[1].manifest_raw), 2)}) == []


def test_a_fork_is_one_duplicate_and_the_next_bundle_is_checked_against_the_one_it_names():
    chain = _chain(3)  # 1 <- 2 <- 3
    first = ChainLink(chain[0].prefix, sha256_hex(chain[0].manifest_raw), 1)
    fork = BundleState("demo/daily/2026/20261122T090000Z_z/", manifest_bytes(_manifest(first, files=[])), {})
    assert fork.prefix > chain[1].prefix  # sorted after the bundle that bundle 3 follows
    assert [(p.prefix, p.code) for p in chain_problems(chain + [fork])] == [(fork.prefix, "sequence_duplicate")]
