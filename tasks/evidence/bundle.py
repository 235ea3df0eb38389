"""Evidence bundles (docs/architecture.md, "A run, from site file to evidence"): one per flow run, under
`<site>/<duty>/<yyyy>/<started-at>_<run-id>/`, with `manifest.json` written last.

The manifest lists each file's SHA-256 and size and the SHA-256 of the previous manifest of the
same site and duty, so the bundles form a chain in which a removed or altered bundle is detectable
(tasks/evidence/verify.py checks it).

Every manifest is signed with the worker's Ed25519 key (tasks/evidence/sign.py), and the steps
from reading the predecessor to moving the chain head run under a per-chain lock and a sequence
claim in the store (tasks/evidence/chain.py), so concurrent runs cannot fork the chain.

Evidence is never lost: every file is first written to a local outbox folder, byte for byte as it
will be uploaded, and the local copy is removed only once its manifest is in the store. A run that
cannot reach the store leaves its bundle in the outbox; the next run of the same duty uploads the
waiting bundles of its chain oldest first, before its own, so the order of the chain is kept.
"""
from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from minio.error import S3Error

from config.evidence import EvidenceStoreConfig
from tasks.core.atomic_file import write_atomic
from tasks.evidence.chain import (
    ChainFinding,
    ChainLink,
    chain_lock,
    choose_predecessor,
    claim,
    read_chain_head,
    write_chain_head,
)
from tasks.evidence.outbox import WRITING, flush_chain, link_of_dir, outbox_bundles, remove_local, set_aside_incomplete
from tasks.evidence.sign import signer_for, trusted_keys
from tasks.evidence.store import (
    MANIFEST,
    SCHEMA,
    Store,
    StoreUnreachable,
    bundle_prefix,
    manifest_bytes,
    open_store,
    sha256_hex,
)

log = logging.getLogger("ebops.evidence")
REPO = Path(__file__).resolve().parents[2]
REPORT = "report.html"
MAX_CLAIMS = 20  # sequence claims lost to concurrent runs before giving up (6 at once need at most 5)


@dataclass(frozen=True)
class StoredBundle:
    prefix: str
    manifest_sha256: str
    location: str  # "store" | "outbox"
    report_url: str | None = None
    upload_error: str | None = None  # why it stayed in the outbox
    findings: tuple[ChainFinding, ...] = ()  # what was wrong with the chain (tampering, a fork, unsigned)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe --always --dirty` of this checkout, else the installed package's version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        return f"ebill-ops {version('ebill-ops')}"
    except Exception:  # noqa: BLE001 - not installed as a package
        return "unknown"


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def build_manifest(*, site: str, duty: str, period: str, flow_run_id: str, started_at: datetime,
                   finished_at: datetime, verdict: str, approvals: list[dict], files: list[dict],
                   prev: ChainLink | None, code: str, extra: dict | None = None) -> dict:
    """The manifest's content (pure: the caller supplies the file list and the previous link)."""
    manifest: dict[str, Any] = {
        "schema": SCHEMA, "site": site, "duty": duty, "period": period, "flow_run_id": flow_run_id,
        "started_at": _iso(started_at), "finished_at": _iso(finished_at), "verdict": verdict,
        "code_version": code, "approvals": approvals, "files": files,
        "sequence": (prev.sequence + 1) if prev else 1,
        "prev_manifest_sha256": prev.manifest_sha256 if prev else None,
        "prev_bundle": prev.prefix if prev else None,
    }
    if extra:
        manifest["extra"] = extra
    return manifest


def newest_link(candidates: list[ChainLink | None]) -> ChainLink | None:
    """The link with the highest sequence. The local chain head counts too, so that deleting the
    newest bundle from the store cannot make the next run reuse its sequence number and hide the gap."""
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda c: c.sequence) if found else None


def _check_name(name: str) -> str:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or name.endswith("/") or "\\" in name:
        raise ValueError(f"evidence file name {name!r} must be a relative path without '..'")
    if name == MANIFEST:
        raise ValueError(f"{MANIFEST} is written by finish(), not added as a file")
    return name


# ---------------------------------------------------------------- one bundle
class BundleWriter:
    def __init__(self, site_id: str, duty: str, period: str, flow_run_id: str, started_at: datetime,
                 store_cfg: EvidenceStoreConfig, outbox_base: Path):
        self.site, self.duty, self.period, self.flow_run_id = site_id, duty, period, flow_run_id
        self.started_at = started_at
        self.store_cfg = store_cfg
        self.outbox_base = Path(outbox_base)
        self.prefix = bundle_prefix(site_id, duty, started_at, flow_run_id)
        self.local_dir = self.outbox_base / self.prefix
        self._files: dict[str, dict] = {}
        self._finished = False
        self._lock = None  # the open WRITING file, locked while this process writes the folder

    def _claim_folder(self) -> None:
        if self._lock is None:
            self.local_dir.mkdir(parents=True, exist_ok=True)
            # Locked before it takes its name: another run that finds WRITING unlocked sets the folder
            # aside as abandoned, so it must never see the file between its creation and the lock.
            pending = self.local_dir / f"{WRITING}.{os.getpid()}.{threading.get_ident()}"
            lock = open(pending, "a")
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.replace(pending, self.local_dir / WRITING)
            self._lock = lock

    @property
    def public_key(self) -> str | None:
        """The public key that verifies this site's manifests (the reports print it)."""
        return self.store_cfg.signing.public_key if self.store_cfg.signing else None

    def add_file(self, name: str, data: bytes | str) -> None:
        if self._finished:
            raise RuntimeError(f"bundle {self.prefix} is finished; no more files")
        self._claim_folder()
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        path = self.local_dir / _check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        self._files[name] = {"name": name, "sha256": sha256_hex(raw), "bytes": len(raw)}

    def add_json(self, name: str, obj: Any) -> None:
        self.add_file(name, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n")

    def _signer(self):
        """The worker's signer, and the finding to report when it has none and unsigned manifests
        are not accepted."""
        signer, why = signer_for(self.store_cfg)
        return signer, [] if signer or self.store_cfg.allow_unsigned else [_unsigned_finding(why)]

    def chain_findings(self) -> list[ChainFinding]:
        """What is wrong with the chain as things stand, for the report (read only, no lock): the
        same check finish() repeats under the lock, whose result is authoritative."""
        findings = self._signer()[1]
        try:
            store = open_store(self.store_cfg)
            return findings + self._previous(store)[1]
        except (StoreUnreachable, S3Error, OSError) as exc:
            log.warning("could not check the evidence chain of %s/%s: %s", self.site, self.duty, exc)
            return findings

    def finish(self, verdict: str, finished_at: datetime, approvals: list[dict], extra: dict | None = None) -> StoredBundle:
        """Write the manifest last, flush older bundles, then upload this one (or leave it waiting).
        Everything from reading the predecessor to moving the chain head holds the chain's lock."""
        if self._finished:
            raise RuntimeError(f"bundle {self.prefix} is already finished")
        self._claim_folder()
        try:
            return self._finish(verdict, finished_at, approvals, extra)
        finally:
            self._lock.close()  # closing releases the flock

    def _finish(self, verdict: str, finished_at: datetime, approvals: list[dict], extra: dict | None) -> StoredBundle:
        set_aside_incomplete(self.outbox_base, self.site)
        signer, findings = self._signer()

        def manifest_for(prev: ChainLink | None, found: list[ChainFinding]) -> bytes:
            m = build_manifest(site=self.site, duty=self.duty, period=self.period, flow_run_id=self.flow_run_id,
                               started_at=self.started_at, finished_at=finished_at, verdict=verdict,
                               approvals=approvals, files=list(self._files.values()), prev=prev,
                               code=code_version(), extra=extra)
            if found:
                m["chain_findings"] = [f.__dict__ for f in found]
            return manifest_bytes(signer.sign(m) if signer else m)

        with chain_lock(self.outbox_base, self.site, self.duty) as locked:
            if not locked:
                findings.append(ChainFinding("lock_timeout", f"another run of {self.site}/{self.duty} held the chain's "
                                             f"lock too long; written without it (the store's claim still applies)", "WARN"))
            store, error = None, None
            try:
                store = open_store(self.store_cfg)
                findings += flush_chain(store, self.outbox_base, self.site, self.duty)
                for f in self._files.values():  # under a prefix of its own: no sequence needed yet
                    store.put(self.prefix + f["name"], (self.local_dir / f["name"]).read_bytes())
            except (StoreUnreachable, S3Error) as exc:
                store, error = None, str(exc)
                log.warning("evidence store not usable, bundle %s waits in the outbox: %s", self.prefix, exc)
            link, raw, error, found = self._take_sequence(store, error, manifest_for, findings)
            findings += found
            (self.local_dir / WRITING).unlink(missing_ok=True)  # complete now: the manifest says so
            self._finished = True
            write_chain_head(self.outbox_base, self.site, self.duty, link)
            if error is None:
                try:
                    store.put(self.prefix + MANIFEST, raw)
                    remove_local(self.local_dir, self.outbox_base)
                except (StoreUnreachable, S3Error) as exc:
                    error = str(exc)
                    log.warning("upload of bundle %s failed, it waits in the outbox: %s", self.prefix, exc)
        for f in findings:
            log.error("evidence chain of %s/%s: %s: %s", self.site, self.duty, f.code, f.detail)
        if error is not None:
            return StoredBundle(self.prefix, link.manifest_sha256, "outbox", None, error, tuple(findings))
        url = store.presigned(self.prefix + REPORT, timedelta(hours=self.store_cfg.link_hours)) if REPORT in self._files else None
        return StoredBundle(self.prefix, link.manifest_sha256, "store", url, None, tuple(findings))

    def _take_sequence(self, store: Store | None, error: str | None, manifest_for, findings: list[ChainFinding]):
        """Write the manifest locally and claim its sequence; after a claim lost to a concurrent run,
        read the chain again and renumber. Returns (link, manifest bytes, error, new findings)."""
        tried: set[ChainLink | None] = set()
        link, raw = None, b""   # the previous attempt's, when the chain did not move on (a fork)
        for _attempt in range(MAX_CLAIMS):
            prev, found = self._previous(store)
            if prev in tried:  # the chain did not move on: a fork, not a concurrent run
                return link, raw, error, found + [ChainFinding(
                    "sequence_taken", f"sequence {link.sequence} is held by a bundle that does not follow "
                    f"{prev.prefix if prev else 'nothing'}: {self.prefix} keeps it too (verify: sequence_duplicate)")]
            tried.add(prev)
            raw = manifest_for(prev, findings + found)
            link = ChainLink(self.prefix, sha256_hex(raw), json.loads(raw)["sequence"])
            # Written before the claim: once the sequence is ours, the outbox must hold the bundle.
            # Atomically: a folder with a manifest is complete, a stopped run leaves none.
            write_atomic(self.local_dir / MANIFEST, raw)
            if error is not None:
                return link, raw, error, found
            try:
                if claim(store, self.site, self.duty, link, raw):
                    return link, raw, None, found
            except (StoreUnreachable, S3Error) as exc:
                log.warning("claiming sequence %s failed, bundle %s waits in the outbox: %s", link.sequence, self.prefix, exc)
                return link, raw, str(exc), found
            log.info("sequence %s of %s/%s was taken by a concurrent run; reading the chain again",
                     link.sequence, self.site, self.duty)
        return link, raw, error, found + [ChainFinding(
            "sequence_taken", f"no free sequence after {MAX_CLAIMS} tries: {self.prefix} keeps {link.sequence} too")]

    def _previous(self, store: Store | None) -> tuple[ChainLink | None, list[ChainFinding]]:
        waiting = [d for d in outbox_bundles(self.outbox_base, self.site, self.duty) if d != self.local_dir]
        in_outbox = link_of_dir(waiting[-1], self.outbox_base) if waiting else None
        local = newest_link([in_outbox, read_chain_head(self.outbox_base, self.site, self.duty)])
        local_waiting = local is not None and (self.outbox_base / local.prefix / MANIFEST).exists()
        try:
            return choose_predecessor(store, local, local_waiting, self.site, self.duty, trusted_keys(self.store_cfg))
        except (StoreUnreachable, S3Error) as exc:
            log.warning("could not read the chain of %s/%s from the store: %s", self.site, self.duty, exc)
            return local, []


def _unsigned_finding(why: str | None) -> ChainFinding:
    return ChainFinding("unsigned", f"the manifest is stored unsigned: {why} (set evidence.signing, or "
                        f"evidence.allow_unsigned: true to accept unsigned manifests)")
