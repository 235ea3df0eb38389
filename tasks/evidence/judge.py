"""Judging what was read from the evidence store, pure: the problem codes, a bundle's files
against its manifest, the chain's links and sequence numbers, the signatures. verify.py reads the
store and hands its findings here, so the rules are tested without a store."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from tasks.evidence.sign import signature_state
from tasks.evidence.store import MANIFEST, sha256_hex


# Every finding has a machine-readable code; tests and tools match on it, never on the wording.
CODES = ("file_altered", "file_missing", "file_extra", "manifest_missing", "manifest_invalid", "manifest_altered",
         "bundle_removed", "chain_broken", "sequence_duplicate", "signature_invalid", "unsigned",
         "signature_unchecked", "newer_version", "chain_head_mismatch", "claim_mismatch",
         # against a signed checkpoint the hospital keeps (tasks/evidence/checkpoint.py)
         "checkpoint_mismatch", "checkpoint_signature_invalid")


@dataclass(frozen=True)
class Problem:
    prefix: str
    code: str  # one of CODES
    detail: str
    severity: str = "error"  # "warning": reported, but the chain still counts as intact (an accepted risk)

    @property
    def kind(self) -> str:  # the code's former name
        return self.code


@dataclass
class VerifyReport:
    ok: bool
    bundles_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def codes(self) -> set[tuple[str, str]]:
        return {(p.prefix, p.code) for p in self.problems}


@dataclass(frozen=True)
class BundleInfo:
    prefix: str
    site: str
    duty: str
    period: str
    sequence: int | None
    started_at: str
    finished_at: str
    verdict: str
    files: int
    manifest_sha256: str


@dataclass
class BundleState:
    """One bundle as found in the store: its manifest (raw bytes) and the objects beside it."""

    prefix: str
    manifest_raw: bytes | None
    objects: dict[str, tuple[str, int]]  # name -> (sha256, bytes) as downloaded now
    history: dict[str, str] = field(default_factory=dict)  # name -> "overwritten at ..." from versions

    @property
    def manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest_raw) if self.manifest_raw is not None else None
        except ValueError:
            return None


def chain_key(prefix: str) -> str:
    return "/".join(prefix.split("/")[:2])


def bundle_problems(b: BundleState) -> list[Problem]:
    """Files of one bundle against its manifest."""
    if b.manifest_raw is None:
        return [Problem(b.prefix, "manifest_missing", f"no {MANIFEST}: the bundle is incomplete or its manifest was removed")]
    m = b.manifest
    if not isinstance(m, dict) or not isinstance(m.get("files"), list) or not isinstance(m.get("sequence"), int):
        return [Problem(b.prefix, "manifest_invalid", f"{MANIFEST} is not a valid manifest")]
    out = []
    listed = {f["name"]: f for f in m["files"]}
    for name, f in listed.items():
        when = f" ({b.history[name]})" if name in b.history else ""
        if name not in b.objects:
            out.append(Problem(b.prefix, "file_missing", f"{name} is listed in the manifest but not in the store{when}"))
            continue
        sha, size = b.objects[name]
        if sha != f["sha256"] or size != f["bytes"]:
            out.append(Problem(b.prefix, "file_altered",
                               f"{name}: SHA-256 {sha[:16]}… ({size} bytes), manifest says {f['sha256'][:16]}… "
                               f"({f['bytes']} bytes){when}"))
    for name in sorted(set(b.objects) - set(listed)):
        out.append(Problem(b.prefix, "file_extra", f"{name} is in the bundle but not in its manifest"))
    return out


def chain_problems(bundles: list[BundleState], deleted: dict[str, str] | None = None) -> list[Problem]:
    """Links of one site+duty chain: sequence gaps and duplicates, and each manifest's
    prev_manifest_sha256 against the previous manifest's actual SHA-256. `deleted` maps the prefix
    of a bundle whose objects carry delete markers to when that happened. Where the chain forked
    (two bundles with one sequence), each next bundle is checked against the one it names."""
    deleted = deleted or {}
    groups: dict[int, list[BundleState]] = {}
    for b in sorted((b for b in bundles if isinstance(b.manifest, dict) and isinstance(b.manifest.get("sequence"), int)),
                    key=lambda b: (b.manifest["sequence"], b.prefix)):
        groups.setdefault(b.manifest["sequence"], []).append(b)
    out: list[Problem] = []
    prev: list[BundleState] = []
    for seq, group in groups.items():
        out += [Problem(b.prefix, "sequence_duplicate", f"sequence {seq} is also used by {group[0].prefix}") for b in group[1:]]
        expected = prev[0].manifest["sequence"] + 1 if prev else 1
        if seq != expected:
            m = group[0].manifest
            missing = f"sequence {expected}" if seq - expected == 1 else f"sequences {expected}..{seq - 1}"
            gone = m.get("prev_bundle")
            where = f"between {prev[-1].prefix} and {group[0].prefix}" if prev else f"before {group[0].prefix}"
            removed = f"; the next bundle names {gone} as its predecessor" if gone else ""
            if gone in deleted:
                removed += f" (delete markers at {deleted[gone]})"
            out.append(Problem(gone or group[0].prefix, "bundle_removed", f"{missing} missing {where}{removed}"))
        for b in group if seq == expected else []:
            m = b.manifest
            if not prev:
                if m.get("prev_manifest_sha256") is not None:
                    out.append(Problem(b.prefix, "chain_broken", "sequence 1 must not name a previous manifest"))
                continue
            named = next((p for p in prev if p.prefix == m.get("prev_bundle")), prev[0])
            actual = sha256_hex(named.manifest_raw)
            if m.get("prev_manifest_sha256") != actual:
                out.append(Problem(named.prefix, "manifest_altered",
                                   f"{MANIFEST} has SHA-256 {actual[:16]}…, but {b.prefix} recorded "
                                   f"{str(m.get('prev_manifest_sha256'))[:16]}…"))
            if m.get("prev_bundle") != named.prefix:
                out.append(Problem(b.prefix, "chain_broken", f"prev_bundle is {m.get('prev_bundle')}, expected {named.prefix}"))
        prev = group
    return out


def signature_problems(bundles: list[BundleState], keys: list[str], allow_unsigned: bool) -> list[Problem]:
    """Signatures of one chain. A manifest that fails its signature is named; unsigned manifests
    matter only after the last validly signed one, since a signed manifest vouches for every earlier
    one through the hash chain (so bundles from before signing was introduced stay covered)."""
    linked = sorted((b for b in bundles if isinstance(b.manifest, dict) and isinstance(b.manifest.get("sequence"), int)),
                    key=lambda b: (b.manifest["sequence"], b.prefix))
    states = [(b, signature_state(b.manifest, keys)) for b in linked]
    out = [Problem(b.prefix, "signature_invalid", f"{MANIFEST}'s signature does not verify with the site's public "
                   f"key: the manifest was written or rewritten without the worker's key") for b, st in states if st == "invalid"]
    last_valid = max((i for i, (_, st) in enumerate(states) if st == "valid"), default=-1)
    tail = [b for b, st in states[last_valid + 1:] if st == "unsigned"]
    if tail:
        severity = "warning" if allow_unsigned else "error"
        out.append(Problem(tail[-1].prefix, "unsigned", f"{len(tail)} manifest(s) from sequence {tail[0].manifest['sequence']} "
                           f"to {tail[-1].manifest['sequence']} are unsigned and no signed manifest after them vouches "
                           f"for them: the newest can be rewritten undetected", severity))
    unchecked = [b for b, st in states if st == "unchecked"]
    if unchecked:
        out.append(Problem(unchecked[-1].prefix, "signature_unchecked", f"{len(unchecked)} signed manifest(s), but the "
                           f"site file has no evidence.signing.public_key to check them with", "warning"))
    return out
