"""What auditors do with the evidence bucket: list, show, get, presigned links, and verify the chain.

verify() re-downloads every file and recomputes its SHA-256 and size against the manifest, checks
each manifest's `prev_manifest_sha256` against the previous manifest actually in the store, and
looks for gaps in the sequence numbers, so it names exactly which bundle was altered (which file)
or removed (between which bundles, which sequence numbers). With versioning (which object lock
implies), delete markers and overwritten versions also say when it happened.

The newest bundle has no successor to vouch for it, so three more checks cover it: each manifest's
Ed25519 signature against the site file's public key (`signature_invalid`; an unsigned newest
stretch is `unsigned`), object versions whose content changed after they were first written
(`newer_version`), and the sequence claims (`_chains/…`) each bundle made before its manifest was
uploaded: a claimed bundle missing from the store is `bundle_removed` at once, a claim whose manifest
differs from the store's is `claim_mismatch`. Run on the worker, verify also compares the store with
the worker's local chain head (`chain_head_mismatch`, `bundle_removed`).

The chain logic (`chain_problems`) is pure: it works on what was read from the store.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from config.evidence import EvidenceStoreConfig
from tasks.evidence.chain import CHAIN_DIR, CLAIMS, parse_claim
from tasks.evidence.sign import trusted_keys
from tasks.evidence.judge import (
    BundleInfo,
    BundleState,
    Problem,
    VerifyReport,
    chain_key,
    bundle_problems,
    chain_problems,
    signature_problems,
)
from tasks.evidence.store import MANIFEST, Store, open_store, sha256_hex, split_key


# ---------------------------------------------------------------- reading the store
def _scope(site: str | None, duty: str | None) -> str:
    if duty and not site:
        return ""  # duty alone: list everything and filter
    return f"{site}/{duty}/" if site and duty else (f"{site}/" if site else "")


@dataclass
class StoreListing:
    current: dict[str, list[str]] = field(default_factory=dict)  # bundle prefix -> names of current objects
    deleted: dict[str, str] = field(default_factory=dict)  # fully deleted bundle -> when
    history: dict[str, str] = field(default_factory=dict)  # key -> "overwritten at ..." / "deleted at ..."
    rewritten: dict[str, str] = field(default_factory=dict)  # key -> how its content changed after the first write


def _versions(store: Store, scope: str) -> StoreListing:
    """What the bucket holds under `scope`, with its history where versions can be listed."""
    out = StoreListing()
    if not store.versioning():
        for o in store.list(scope):
            if (pk := split_key(o.object_name)):
                out.current.setdefault(pk[0], []).append(pk[1])
        return out
    versions: dict[str, list] = {}
    for o in store.list(scope, versions=True):
        versions.setdefault(o.object_name, []).append(o)
    for key, vs in versions.items():
        pk = split_key(key)
        if not pk:
            continue
        # minio-py gives is_latest as the XML text "true"/"false", not a bool.
        latest = next((v for v in vs if str(v.is_latest).lower() == "true"), max(vs, key=lambda v: v.last_modified))
        kept = sorted((v for v in vs if not v.is_delete_marker), key=lambda v: v.last_modified)
        if latest.is_delete_marker:
            out.deleted.setdefault(pk[0], str(latest.last_modified))
            out.history[key] = f"deleted at {latest.last_modified}"
        else:
            out.current.setdefault(pk[0], []).append(pk[1])
            if len(kept) > 1:
                out.history[key] = f"overwritten at {latest.last_modified}, {len(vs)} versions"
        # The same bytes uploaded again (an outbox retry after a timeout) are no change.
        if len({v.etag for v in kept}) > 1:
            out.rewritten[key] = (f"{len(kept)} versions with different content: first written at {kept[0].last_modified}, "
                                  f"replaced at {kept[-1].last_modified}")
    for prefix in out.current:
        out.deleted.pop(prefix, None)  # only partly deleted: the per-file problems say which
    return out


def _read_bundle(store: Store, prefix: str, names: list[str], history: dict[str, str]) -> BundleState:
    objects = {}
    manifest_raw = None
    for name in names:
        data = store.get(prefix + name)
        if name == MANIFEST:
            manifest_raw = data
        else:
            objects[name] = (sha256_hex(data), len(data))
    hist = {k[len(prefix):]: v for k, v in history.items() if k.startswith(prefix)}
    return BundleState(prefix, manifest_raw, objects, hist)


def _claims(store: Store, site: str | None, duty: str | None) -> dict[str, tuple[int, str, str]]:
    """bundle prefix -> (sequence, manifest SHA-256, when) of every sequence claim in scope."""
    out = {}
    for o in store.list(f"{CLAIMS}/{site}/" if site else f"{CLAIMS}/"):
        parts = o.object_name.split("/")
        if len(parts) != 4 or (duty and parts[2] != duty):
            continue
        held = parse_claim(store.get(o.object_name))
        if held:
            out[held[0]] = (int(parts[3].split(".")[0]), sha256_hex(held[1]), str(o.last_modified))
    return out


def _local_heads(outbox: Path | None, site: str | None, duty: str | None) -> dict[str, tuple[str, int]]:
    """This worker's chain heads: prefix -> (manifest SHA-256, sequence), the ones still waiting
    in its outbox left out (the store cannot hold them yet)."""
    if outbox is None:
        return {}
    out = {}
    for f in Path(outbox).glob(f"{CHAIN_DIR}/{site or '*'}/{duty or '*'}.json"):
        head = json.loads(f.read_text())
        if not (Path(outbox) / head["prefix"] / MANIFEST).exists():
            out[head["prefix"]] = (head["manifest_sha256"], head["sequence"])
    return out


def newest_problems(listing: StoreListing, manifests: dict[str, bytes], claims: dict[str, tuple[int, str, str]],
                    heads: dict[str, tuple[str, int]]) -> list[Problem]:
    """What the chain links cannot show about the newest bundles: removed bundles (delete markers, a
    claim or the local head without a manifest), rewritten objects, manifests that differ from their
    claim or from the worker's chain head. `manifests`: prefix -> manifest bytes now in the store."""
    out = [Problem(p, "bundle_removed", f"every object of the bundle was deleted (delete markers at {t})")
           for p, t in sorted(listing.deleted.items())]
    for key, how in sorted(listing.rewritten.items()):
        prefix, name = split_key(key)
        out.append(Problem(prefix, "newer_version", f"{name}: {how}"))
    for prefix, (seq, sha, when) in sorted(claims.items()):
        if prefix not in manifests:
            out.append(Problem(prefix, "bundle_removed", f"sequence {seq} was claimed by this bundle at {when}, but "
                               f"its {MANIFEST} is not in the store (removed, or still in a worker's outbox)"))
        elif sha256_hex(manifests[prefix]) != sha:
            out.append(Problem(prefix, "claim_mismatch", f"{MANIFEST} differs from the one claimed for sequence {seq} "
                               f"at {when}: rewritten after it was written"))
    for prefix, (sha, seq) in sorted(heads.items()):
        if prefix not in manifests:
            out.append(Problem(prefix, "bundle_removed", f"this worker's newest bundle (sequence {seq}) is not in the store"))
        elif sha256_hex(manifests[prefix]) != sha:
            out.append(Problem(prefix, "chain_head_mismatch", f"{MANIFEST} has SHA-256 {sha256_hex(manifests[prefix])[:16]}…, "
                               f"this worker wrote {sha[:16]}… (its local chain head)"))
    return out


def verify(store_cfg: EvidenceStoreConfig, site: str | None = None, duty: str | None = None,
           outbox: Path | None = None) -> VerifyReport:
    """Every bundle in scope; `outbox` (the worker's, when run there) adds its local chain heads."""
    store = open_store(store_cfg)
    listing = _versions(store, _scope(site, duty))
    chains: dict[str, list[BundleState]] = {}
    problems: list[Problem] = []
    for prefix in sorted(listing.current):
        if duty and prefix.split("/")[1] != duty:
            continue
        b = _read_bundle(store, prefix, listing.current[prefix], listing.history)
        problems += bundle_problems(b)
        chains.setdefault(chain_key(prefix), []).append(b)
    keys = trusted_keys(store_cfg)
    for key in sorted(chains):
        gone = {p: t for p, t in listing.deleted.items() if chain_key(p) == key}
        problems += chain_problems(chains[key], gone)
        problems += signature_problems(chains[key], keys, store_cfg.allow_unsigned)
    manifests = {b.prefix: b.manifest_raw for bs in chains.values() for b in bs if b.manifest_raw is not None}
    listing.deleted = {p: t for p, t in listing.deleted.items() if not duty or p.split("/")[1] == duty}
    listing.rewritten = {k: v for k, v in listing.rewritten.items() if not duty or k.split("/")[1] == duty}
    seen = {(p.prefix, p.code) for p in problems}
    claims = {p: c for p, c in _claims(store, site, duty).items() if not (outbox and (Path(outbox) / p / MANIFEST).exists())}
    for p in newest_problems(listing, manifests, claims, _local_heads(outbox, site, duty)):
        if (p.prefix, p.code) not in seen:
            seen.add((p.prefix, p.code))
            problems.append(p)
    checked = sum(len(v) for v in chains.values())
    return VerifyReport(ok=not any(p.severity == "error" for p in problems), bundles_checked=checked, problems=problems)


def list_bundles(store_cfg: EvidenceStoreConfig, site: str | None = None, duty: str | None = None,
                 year: int | None = None, period: str | None = None) -> list[BundleInfo]:
    store = open_store(store_cfg)
    prefixes = sorted({pk[0] for o in store.list(_scope(site, duty)) if (pk := split_key(o.object_name))
                       and pk[1] == MANIFEST})
    out = []
    for prefix in prefixes:
        s, d, y = prefix.split("/")[:3]
        if (duty and d != duty) or (year and y != str(year)):
            continue
        raw = store.get(prefix + MANIFEST)
        m = json.loads(raw)
        if period and m.get("period") != period:
            continue
        out.append(BundleInfo(prefix, s, d, m.get("period", ""), m.get("sequence"), m.get("started_at", ""),
                              m.get("finished_at", ""), m.get("verdict", ""), len(m.get("files", [])), sha256_hex(raw)))
    return out


def _norm(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


def show(store_cfg: EvidenceStoreConfig, prefix: str) -> dict:
    return json.loads(open_store(store_cfg).get(_norm(prefix) + MANIFEST))


def get(store_cfg: EvidenceStoreConfig, prefix: str, dest: Path) -> list[Path]:
    """Download every object of a bundle into dest/<bundle folder>/ (the manifest included)."""
    store = open_store(store_cfg)
    prefix = _norm(prefix)
    target = Path(dest) / prefix.rstrip("/").split("/")[-1]
    written = []
    for o in store.list(prefix):
        name = o.object_name[len(prefix):]
        if not name or ".." in Path(name).parts:
            continue
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(o.object_name))
        written.append(path)
    return sorted(written)
