"""What auditors do with the evidence bucket: list, show, get, presigned links, and verify the chain.

verify() re-downloads every file and recomputes its SHA-256 and size against the manifest, checks
each manifest's `prev_manifest_sha256` against the previous manifest actually in the store, and
looks for gaps in the sequence numbers, so it names exactly which bundle was altered (which file)
or removed (between which bundles, which sequence numbers). With versioning (which object lock
implies), delete markers and overwritten versions also say when it happened.

The chain logic (`chain_problems`) is pure: it works on what was read from the store.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from config.settings import EvidenceStoreConfig
from tasks.evidence_store import MANIFEST, Store, open_store, sha256_hex, split_key


@dataclass(frozen=True)
class Problem:
    prefix: str
    kind: str  # file_altered file_missing file_extra manifest_missing manifest_invalid manifest_altered
    #            bundle_removed chain_broken sequence_duplicate
    detail: str


@dataclass
class VerifyReport:
    ok: bool
    bundles_checked: int
    problems: list[Problem] = field(default_factory=list)


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


def _chain_key(prefix: str) -> str:
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
    of a bundle whose objects carry delete markers to when that happened."""
    deleted = deleted or {}
    linked = sorted((b for b in bundles if isinstance(b.manifest, dict) and isinstance(b.manifest.get("sequence"), int)),
                    key=lambda b: (b.manifest["sequence"], b.prefix))
    out: list[Problem] = []
    prev: BundleState | None = None
    for b in linked:
        m = b.manifest
        seq = m["sequence"]
        expected = prev.manifest["sequence"] + 1 if prev else 1
        if prev and seq == prev.manifest["sequence"]:
            out.append(Problem(b.prefix, "sequence_duplicate", f"sequence {seq} is also used by {prev.prefix}"))
        elif seq != expected:
            missing = f"sequence {expected}" if seq - expected == 1 else f"sequences {expected}..{seq - 1}"
            gone = m.get("prev_bundle")
            where = f"between {prev.prefix} and {b.prefix}" if prev else f"before {b.prefix}"
            removed = f"; the next bundle names {gone} as its predecessor" if gone else ""
            if gone in deleted:
                removed += f" (delete markers at {deleted[gone]})"
            out.append(Problem(gone or b.prefix, "bundle_removed", f"{missing} missing {where}{removed}"))
        elif prev:
            actual = sha256_hex(prev.manifest_raw)
            if m.get("prev_manifest_sha256") != actual:
                out.append(Problem(prev.prefix, "manifest_altered",
                                   f"{MANIFEST} has SHA-256 {actual[:16]}…, but {b.prefix} recorded "
                                   f"{str(m.get('prev_manifest_sha256'))[:16]}…"))
            if m.get("prev_bundle") != prev.prefix:
                out.append(Problem(b.prefix, "chain_broken", f"prev_bundle is {m.get('prev_bundle')}, expected {prev.prefix}"))
        elif m.get("prev_manifest_sha256") is not None:
            out.append(Problem(b.prefix, "chain_broken", "sequence 1 must not name a previous manifest"))
        prev = b
    return out


# ---------------------------------------------------------------- reading the store
def _scope(site: str | None, duty: str | None) -> str:
    if duty and not site:
        return ""  # duty alone: list everything and filter
    return f"{site}/{duty}/" if site and duty else (f"{site}/" if site else "")


def _versions(store: Store, scope: str) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    """Bundle prefixes with current objects, delete-marker times per fully deleted bundle, and
    overwrite notes per key. Falls back to a plain listing where versions cannot be listed."""
    current: dict[str, list[str]] = {}
    deleted: dict[str, str] = {}
    history: dict[str, str] = {}
    if not store.versioning():
        for o in store.list(scope):
            if (pk := split_key(o.object_name)):
                current.setdefault(pk[0], []).append(pk[1])
        return current, deleted, history
    versions: dict[str, list] = {}
    for o in store.list(scope, versions=True):
        versions.setdefault(o.object_name, []).append(o)
    for key, vs in versions.items():
        pk = split_key(key)
        if not pk:
            continue
        # minio-py gives is_latest as the XML text "true"/"false", not a bool.
        latest = next((v for v in vs if str(v.is_latest).lower() == "true"), max(vs, key=lambda v: v.last_modified))
        if latest.is_delete_marker:
            deleted.setdefault(pk[0], str(latest.last_modified))
            history[key] = f"deleted at {latest.last_modified}"
        else:
            current.setdefault(pk[0], []).append(pk[1])
            if len([v for v in vs if not v.is_delete_marker]) > 1:
                history[key] = f"overwritten at {latest.last_modified}, {len(vs)} versions"
    for prefix in current:
        deleted.pop(prefix, None)  # only partly deleted: the per-file problems say which
    return current, deleted, history


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


def verify(store_cfg: EvidenceStoreConfig, site: str | None = None, duty: str | None = None) -> VerifyReport:
    store = open_store(store_cfg)
    current, deleted, history = _versions(store, _scope(site, duty))
    chains: dict[str, list[BundleState]] = {}
    problems: list[Problem] = []
    for prefix in sorted(current):
        if duty and prefix.split("/")[1] != duty:
            continue
        b = _read_bundle(store, prefix, current[prefix], history)
        problems += bundle_problems(b)
        chains.setdefault(_chain_key(prefix), []).append(b)
    for key in sorted(chains):
        gone = {p: t for p, t in deleted.items() if _chain_key(p) == key}
        problems += chain_problems(chains[key], gone)
    checked = sum(len(v) for v in chains.values())
    return VerifyReport(ok=not problems, bundles_checked=checked, problems=problems)


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


def presigned_url(store_cfg: EvidenceStoreConfig, key: str, expires: timedelta) -> str:
    return open_store(store_cfg).presigned(key, expires)
