"""Evidence bundles (architecture.md, "Evidence bundles"): one per flow run, under
`<site>/<duty>/<yyyy>/<started-at>_<run-id>/`, with `manifest.json` written last.

The manifest lists each file's SHA-256 and size and the SHA-256 of the previous manifest of the
same site and duty, so the bundles form a chain in which a removed or altered bundle is detectable
(tasks/evidence_verify.py checks it).

Evidence is never lost: every file is first written to a local outbox folder, byte for byte as it
will be uploaded, and the local copy is removed only once its manifest is in the store. A run that
cannot reach the store leaves its bundle in the outbox; the next run uploads waiting bundles oldest
first, before its own, so the order of the chain is kept.
"""
from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from minio.error import S3Error

from config.settings import EvidenceStoreConfig
from tasks.evidence_store import (MANIFEST, SCHEMA, Store, StoreUnreachable, bundle_prefix, manifest_bytes,
                                  open_store, sha256_hex)

log = logging.getLogger("ebops.evidence")
REPO = Path(__file__).resolve().parents[1]
CHAIN_DIR = ".chain"
REPORT = "report.html"
# An outbox bundle without a manifest is one whose run was stopped (Ctrl-C, a crash) while writing
# it: it is never uploaded nor chained; the next run moves it here, out of the way, kept for a look.
INCOMPLETE_DIR = ".incomplete"
WRITING = ".writing"  # held locked (flock) by the process writing the bundle; released when it ends
_UNLOCKED_GRACE_S = 600  # a folder without a lock file: only set aside once surely abandoned


@dataclass(frozen=True)
class StoredBundle:
    prefix: str
    manifest_sha256: str
    location: str  # "store" | "outbox"
    report_url: str | None = None
    upload_error: str | None = None  # why it stayed in the outbox


@dataclass(frozen=True)
class ChainLink:
    """What the next bundle of a site and duty needs from the newest one."""

    prefix: str
    manifest_sha256: str
    sequence: int


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


# ---------------------------------------------------------------- the outbox
def _outbox_bundles(outbox_base: Path, site: str | None = None, duty: str | None = None) -> list[Path]:
    """Complete bundles (with a manifest) waiting in the outbox, oldest first."""
    base = Path(outbox_base)
    pattern = f"{site or '*'}/{duty or '*'}/*/*/{MANIFEST}"
    dirs = [m.parent for m in base.glob(pattern) if CHAIN_DIR not in m.relative_to(base).parts]
    return sorted(dirs, key=lambda d: (d.name, str(d)))


def _link_of_dir(d: Path, outbox_base: Path) -> ChainLink:
    raw = (d / MANIFEST).read_bytes()
    return ChainLink(d.relative_to(outbox_base).as_posix() + "/", sha256_hex(raw), json.loads(raw)["sequence"])


def _chain_head_file(outbox_base: Path, site: str, duty: str) -> Path:
    return Path(outbox_base) / CHAIN_DIR / site / f"{duty}.json"


def read_chain_head(outbox_base: Path, site: str, duty: str) -> ChainLink | None:
    f = _chain_head_file(outbox_base, site, duty)
    return ChainLink(**json.loads(f.read_text())) if f.exists() else None


def _write_chain_head(outbox_base: Path, site: str, duty: str, link: ChainLink) -> None:
    f = _chain_head_file(outbox_base, site, duty)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(link.__dict__))
    tmp.replace(f)


def _writer_gone(d: Path) -> bool:
    """No process is writing bundle folder `d` any more (its lock is free), so it will never complete."""
    try:
        fd = os.open(d / WRITING, os.O_RDWR)  # never created here: a writer that just finished removed it
    except FileNotFoundError:
        return time.time() - d.stat().st_mtime > _UNLOCKED_GRACE_S
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases the lock if taken


def set_aside_incomplete(outbox_base: Path, site: str) -> list[str]:
    """Move a site's outbox bundles that have no manifest and no living writer to `.incomplete/`."""
    base = Path(outbox_base)
    moved = []
    for d in sorted(base.glob(f"{site}/*/*/*/")):
        if not d.is_dir() or (d / MANIFEST).exists() or not _writer_gone(d) or (d / MANIFEST).exists():
            continue  # (asked again: a writer may have finished while we looked)
        prefix = d.relative_to(base).as_posix() + "/"
        target = base / INCOMPLETE_DIR / prefix
        target.parent.mkdir(parents=True, exist_ok=True)
        d.replace(target)
        log.warning("outbox bundle %s has no manifest (its run was interrupted while writing it): not evidence, "
                    "moved to %s", prefix, target)
        moved.append(prefix)
    return moved


def _upload_dir(store: Store, d: Path, prefix: str) -> None:
    """Upload one outbox bundle byte-identical: the listed files, then the manifest."""
    raw = (d / MANIFEST).read_bytes()
    for f in json.loads(raw)["files"]:
        store.put(prefix + f["name"], (d / f["name"]).read_bytes())
    store.put(prefix + MANIFEST, raw)


def _remove_local(d: Path, outbox_base: Path) -> None:
    shutil.rmtree(d)
    parent = d.parent
    while parent != Path(outbox_base) and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def flush_outbox(store_cfg: EvidenceStoreConfig, outbox_base: Path, *, store: Store | None = None,
                 site: str | None = None) -> list[str]:
    """Upload waiting bundles (of one site, or all) oldest first; return their prefixes. Stops at
    the first failure (raising it) so a later bundle never reaches the store before an earlier one."""
    waiting = _outbox_bundles(outbox_base, site=site)
    if not waiting:
        return []
    store = store or open_store(store_cfg)
    done = []
    for d in waiting:
        prefix = d.relative_to(outbox_base).as_posix() + "/"
        _upload_dir(store, d, prefix)
        _remove_local(d, Path(outbox_base))
        log.info("evidence bundle %s uploaded from the outbox", prefix)
        done.append(prefix)
    return done


def newest_in_store(store: Store, site: str, duty: str) -> ChainLink | None:
    """The newest bundle of a site and duty that has a manifest (a bundle without one is incomplete)."""
    for year in reversed(store.subfolders(f"{site}/{duty}/")):
        for prefix in reversed(store.subfolders(year)):
            try:
                raw = store.get(prefix + MANIFEST)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    continue
                raise
            return ChainLink(prefix, sha256_hex(raw), json.loads(raw)["sequence"])
    return None


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
            self._lock = open(self.local_dir / WRITING, "a")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def add_file(self, name: str, data: bytes | str) -> None:
        if self._finished:
            raise RuntimeError(f"bundle {self.prefix} is finished; no more files")
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        self._claim_folder()
        path = self.local_dir / _check_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        self._files[name] = {"name": name, "sha256": sha256_hex(raw), "bytes": len(raw)}

    def add_json(self, name: str, obj: Any) -> None:
        self.add_file(name, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n")

    def finish(self, verdict: str, finished_at: datetime, approvals: list[dict], extra: dict | None = None) -> StoredBundle:
        """Write the manifest last, flush older bundles, then upload this one (or leave it waiting)."""
        if self._finished:
            raise RuntimeError(f"bundle {self.prefix} is already finished")
        self._claim_folder()
        try:
            return self._finish(verdict, finished_at, approvals, extra)
        finally:
            self._lock.close()  # closing releases the flock

    def _finish(self, verdict: str, finished_at: datetime, approvals: list[dict], extra: dict | None) -> StoredBundle:
        set_aside_incomplete(self.outbox_base, self.site)
        error: str | None = None
        store: Store | None = None
        try:
            store = open_store(self.store_cfg)
            # Only this site's waiting bundles: hospitals of a fleet run may share one outbox, and
            # flushing another site's bundle raced with that site's own upload of it.
            flush_outbox(self.store_cfg, self.outbox_base, store=store, site=self.site)
        except (StoreUnreachable, S3Error) as exc:
            error = str(exc)
            log.warning("evidence store not usable, bundle %s waits in the outbox: %s", self.prefix, exc)
        prev = self._previous(store if error is None else None)
        manifest = build_manifest(
            site=self.site, duty=self.duty, period=self.period, flow_run_id=self.flow_run_id,
            started_at=self.started_at, finished_at=finished_at, verdict=verdict, approvals=approvals,
            files=list(self._files.values()), prev=prev, code=code_version(), extra=extra)
        raw = manifest_bytes(manifest)
        # Last, and atomically: a folder with a manifest is complete, a stopped run leaves none.
        tmp = self.local_dir / f".{MANIFEST}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, self.local_dir / MANIFEST)
        (self.local_dir / WRITING).unlink(missing_ok=True)  # complete now: the manifest says so
        self._finished = True
        link = ChainLink(self.prefix, sha256_hex(raw), manifest["sequence"])
        _write_chain_head(self.outbox_base, self.site, self.duty, link)
        if error is None:
            try:
                _upload_dir(store, self.local_dir, self.prefix)
                _remove_local(self.local_dir, self.outbox_base)
            except (StoreUnreachable, S3Error) as exc:
                error = str(exc)
                log.warning("upload of bundle %s failed, it waits in the outbox: %s", self.prefix, exc)
        if error is not None:
            return StoredBundle(self.prefix, link.manifest_sha256, "outbox", None, error)
        url = None
        if REPORT in self._files:
            url = store.presigned(self.prefix + REPORT, timedelta(hours=self.store_cfg.link_hours))
        return StoredBundle(self.prefix, link.manifest_sha256, "store", url)

    def _previous(self, store: Store | None) -> ChainLink | None:
        waiting = [d for d in _outbox_bundles(self.outbox_base, self.site, self.duty) if d != self.local_dir]
        in_outbox = _link_of_dir(waiting[-1], self.outbox_base) if waiting else None
        in_store = None
        if store is not None and in_outbox is None:
            try:
                in_store = newest_in_store(store, self.site, self.duty)
            except (StoreUnreachable, S3Error) as exc:
                log.warning("could not read the newest bundle of %s/%s from the store: %s", self.site, self.duty, exc)
        return newest_link([in_outbox, in_store, read_chain_head(self.outbox_base, self.site, self.duty)])
