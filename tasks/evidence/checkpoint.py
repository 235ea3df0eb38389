"""Signed checkpoints of the evidence chains, for the hospital to keep (issue 17.3).

The chain, the signatures and the sequence claims all live in the store (and the worker's chain
head on the worker). Someone able to delete objects there (a governance-mode bypass, a store
administrator) who removes the newest bundles *and* their claims, on a worker whose local state
is gone too, leaves a shorter chain that is intact in itself: nothing left vouches for what was
removed. A checkpoint is that voucher, kept outside the store: monthly, every site+duty chain's
newest sequence, newest manifest SHA-256 and a root hash over all its manifests, signed with the
vendor's Ed25519 evidence key, printed into the monthly inspection report (and the service
report) that the hospital's IT department (信息科) files. `ebops evidence verify --checkpoint FILE`
then proves the store still holds every bundle up to it, unchanged.

Root of a chain: SHA-256 over the lines `"<sequence:010d> <manifest sha256> <bundle prefix>\\n"` of
every manifest of the chain up to the checkpoint's sequence, in sequence (then prefix) order; the
checkpoint's root is SHA-256 over `"<site> <duty> <sequence> <newest sha256> <chain root>\\n"` of
its chains in (site, duty) order. The signature is the manifests' (tasks/evidence/sign.py): over
the checkpoint's canonical JSON without its `signature` field.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from config.evidence import EvidenceStoreConfig
from tasks.core import clock
from tasks.evidence.sign import signature_state, signer_for, trusted_keys
from tasks.evidence.store import MANIFEST, Store, manifest_bytes, open_store, sha256_hex, split_key

SCHEMA = "ebill-ops/evidence-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be made or read (no signing key, not a checkpoint file)."""


@dataclass(frozen=True)
class Entry:
    sequence: int
    manifest_sha256: str
    prefix: str


def read_chains(store: Store, site: str | None = None) -> dict[tuple[str, str], list[Entry]]:
    """Every manifest now in the store (current versions), by (site, duty), in sequence order."""
    chains: dict[tuple[str, str], list[Entry]] = {}
    for o in store.list(f"{site}/" if site else ""):
        pk = split_key(o.object_name)
        if not pk or pk[1] != MANIFEST:
            continue
        raw = store.get(o.object_name)
        try:
            seq = json.loads(raw)["sequence"]
        except (ValueError, KeyError, TypeError):
            continue  # not a manifest verify could read either: verify reports it
        s, d = pk[0].split("/")[:2]
        chains.setdefault((s, d), []).append(Entry(int(seq), sha256_hex(raw), pk[0]))
    return {k: sorted(v, key=lambda e: (e.sequence, e.prefix)) for k, v in sorted(chains.items())}


def chain_root(entries: list[Entry]) -> str:
    return sha256_hex("".join(f"{e.sequence:010d} {e.manifest_sha256} {e.prefix}\n" for e in entries).encode())


def overall_root(chains: list[dict]) -> str:
    return sha256_hex("".join(f"{c['site']} {c['duty']} {c['sequence']} {c['newest_manifest_sha256']} {c['root_sha256']}\n"
                              for c in chains).encode())


def chain_summary(site: str, duty: str, entries: list[Entry]) -> dict:
    newest = entries[-1]
    present = {e.sequence for e in entries}
    return {"site": site, "duty": duty, "sequence": newest.sequence, "bundles": len(entries),
            "newest_prefix": newest.prefix, "newest_manifest_sha256": newest.manifest_sha256,
            "root_sha256": chain_root(entries),
            "missing_sequences": [n for n in range(1, newest.sequence + 1) if n not in present][:100]}


def make_checkpoint(cfg: EvidenceStoreConfig, site: str | None = None, now: datetime | None = None) -> dict:
    """The signed checkpoint of every chain of `site` (of the whole bucket when None)."""
    signer, why = signer_for(cfg)
    if signer is None:
        raise CheckpointError(f"a checkpoint must be signed, and the evidence signing key is not usable: {why} "
                              f"(hint: set evidence.signing.private_key to the vendor's key, by reference)")
    store = open_store(cfg)
    chains = [chain_summary(s, d, es) for (s, d), es in read_chains(store, site).items()]
    at = (now or clock.now()).astimezone(timezone.utc).replace(microsecond=0)  # a backfilled month's is dated back
    body = {"schema": SCHEMA, "created_at": at.isoformat().replace("+00:00", "Z"), "bucket": cfg.bucket,
            "scope": site or "*", "chains": chains, "root_sha256": overall_root(chains)}
    return signer.sign(body)


def checkpoint_bytes(cp: dict) -> bytes:
    return manifest_bytes(cp)


def load_checkpoint(data: bytes) -> dict:
    try:
        cp = json.loads(data)
    except ValueError as exc:
        raise CheckpointError(f"not a checkpoint file (not JSON: {exc})") from None
    if not isinstance(cp, dict) or cp.get("schema") != SCHEMA or not isinstance(cp.get("chains"), list):
        raise CheckpointError(f"not a checkpoint file (schema must be {SCHEMA})")
    return cp


@dataclass(frozen=True)
class CheckpointProblem:
    prefix: str
    code: str  # bundle_removed manifest_altered checkpoint_mismatch checkpoint_signature_invalid
    detail: str


def checkpoint_problems(cp: dict, keys: list[str], chains: dict[tuple[str, str], list[Entry]]) -> list[CheckpointProblem]:
    """What the store (`chains`, as read_chains gives it) lacks or changed against checkpoint `cp` (pure)."""
    out: list[CheckpointProblem] = []
    state = signature_state(cp, keys)
    fp = cp.get("signature", {}).get("public_key", "?") if isinstance(cp.get("signature"), dict) else "?"
    if state != "valid":
        out.append(CheckpointProblem("", "checkpoint_signature_invalid",
                                     f"the checkpoint's signature is {state} against the site's public keys "
                                     f"(signed by {fp}): it cannot be trusted as the vendor's"))
    if overall_root(cp["chains"]) != cp.get("root_sha256"):
        out.append(CheckpointProblem("", "checkpoint_mismatch", "the checkpoint's root does not match its own chains"))
    for c in cp["chains"]:
        site, duty, n = c["site"], c["duty"], int(c["sequence"])
        now = [e for e in chains.get((site, duty), []) if e.sequence <= n]
        have = {e.sequence for e in now}
        gone = [k for k in range(1, n + 1) if k not in have and k not in c.get("missing_sequences", [])]
        if gone:
            newest_gone = n in gone
            out.append(CheckpointProblem(
                c["newest_prefix"] if newest_gone else f"{site}/{duty}/", "bundle_removed",
                f"{site}/{duty}: the checkpoint of {cp.get('created_at')} vouches for sequences 1..{n}; "
                f"{_ranges(gone)} not in the store any more" + (f" (the newest then: {c['newest_prefix']})" if newest_gone else "")))
            continue
        newest = [e for e in now if e.sequence == n]
        if not any(e.manifest_sha256 == c["newest_manifest_sha256"] for e in newest):
            out.append(CheckpointProblem(c["newest_prefix"], "manifest_altered",
                                         f"{site}/{duty} sequence {n}: the store's manifest is not the one of the checkpoint "
                                         f"({c['newest_manifest_sha256'][:16]}…)"))
        elif chain_root(now) != c["root_sha256"]:
            out.append(CheckpointProblem(f"{site}/{duty}/", "checkpoint_mismatch",
                                         f"{site}/{duty}: the manifests up to sequence {n} differ from the checkpoint's "
                                         f"(root {chain_root(now)[:16]}…, checkpoint {c['root_sha256'][:16]}…): one was "
                                         f"changed, replaced or added"))
    return out


def _ranges(nums: list[int]) -> str:
    parts, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            parts.append(f"sequence {start}" if start == n else f"sequences {start}..{n}")
            start = None
    return ", ".join(parts)


def verify_checkpoint(cfg: EvidenceStoreConfig, cp: dict) -> list[CheckpointProblem]:
    store = open_store(cfg)
    sites = sorted({c["site"] for c in cp["chains"]})
    chains: dict[tuple[str, str], list[Entry]] = {}
    for s in sites:
        chains.update(read_chains(store, s))
    return checkpoint_problems(cp, trusted_keys(cfg), chains)


def summary_for_report(cp: dict) -> dict:
    """What the monthly inspection report prints: every chain's line, the root, the key, the signature."""
    sig = cp.get("signature", {})
    return {"created_at": cp["created_at"], "root_sha256": cp["root_sha256"], "chains": cp["chains"],
            "key_fingerprint": sig.get("public_key", ""), "signature": sig.get("value", ""),
            "digest": hashlib.sha256(checkpoint_bytes(cp)).hexdigest()}


__all__ = ["CheckpointError", "make_checkpoint", "verify_checkpoint", "load_checkpoint", "checkpoint_bytes",
           "checkpoint_problems", "summary_for_report", "read_chains", "chain_root"]
