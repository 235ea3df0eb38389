"""The outbox: evidence bundles waiting on the worker's disk until the store takes them.

A bundle is written here first, whole, then uploaded byte-identical in chain order (its files, its
sequence claim, its manifest); nothing already collected is lost when the store is down. A folder
without a manifest is a bundle whose run was stopped while writing it: never uploaded, set aside.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from pathlib import Path

from tasks.evidence.chain import CHAIN_DIR, ChainFinding, ChainLink, claim
from tasks.evidence.store import MANIFEST, Store, sha256_hex

log = logging.getLogger("ebops.evidence")
# An outbox bundle without a manifest is one whose run was stopped (Ctrl-C, a crash) while writing
# it: it is never uploaded nor chained; the next run moves it here, out of the way, kept for a look.
INCOMPLETE_DIR = ".incomplete"
WRITING = ".writing"  # held locked (flock) by the process writing the bundle; released when it ends
_UNLOCKED_GRACE_S = 600  # a folder without a lock file: only set aside once surely abandoned


def outbox_bundles(outbox_base: Path, site: str | None = None, duty: str | None = None) -> list[Path]:
    """Complete bundles (with a manifest) waiting in the outbox, oldest first: by sequence within a
    chain (concurrent runs take sequences in another order than their start times)."""
    base = Path(outbox_base)
    pattern = f"{site or '*'}/{duty or '*'}/*/*/{MANIFEST}"
    dirs = [m.parent for m in base.glob(pattern) if CHAIN_DIR not in m.relative_to(base).parts]

    def order(d: Path) -> tuple:
        try:
            seq = json.loads((d / MANIFEST).read_bytes())["sequence"]
        except (ValueError, KeyError, OSError):
            seq = 0
        return (d.relative_to(base).parts[:2], seq, d.name)

    return sorted(dirs, key=order)


def link_of_dir(d: Path, outbox_base: Path) -> ChainLink:
    raw = (d / MANIFEST).read_bytes()
    return ChainLink(d.relative_to(outbox_base).as_posix() + "/", sha256_hex(raw), json.loads(raw)["sequence"])


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


def _upload_files(store: Store, d: Path, prefix: str) -> None:
    raw = (d / MANIFEST).read_bytes()
    for f in json.loads(raw)["files"]:
        store.put(prefix + f["name"], (d / f["name"]).read_bytes())


def _upload_waiting(store: Store, d: Path, outbox_base: Path) -> ChainFinding | None:
    """Upload one outbox bundle byte-identical: the listed files, its sequence claim, the manifest.
    A sequence another bundle took meanwhile (a fork while this one waited) is uploaded all the
    same, since evidence is never dropped, and reported."""
    prefix = d.relative_to(outbox_base).as_posix() + "/"
    site, duty = prefix.split("/")[:2]
    raw = (d / MANIFEST).read_bytes()
    link = ChainLink(prefix, sha256_hex(raw), json.loads(raw)["sequence"])
    _upload_files(store, d, prefix)
    finding = None
    if not claim(store, site, duty, link, raw):
        finding = ChainFinding("sequence_taken", f"sequence {link.sequence} of {site}/{duty} was taken by another "
                               f"bundle while {prefix} waited in the outbox: the chain forked; uploaded all the same")
    store.put(prefix + MANIFEST, raw)
    return finding


def remove_local(d: Path, outbox_base: Path) -> None:
    shutil.rmtree(d)
    parent = d.parent
    while parent != Path(outbox_base) and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def flush_chain(store: Store, outbox_base: Path, site: str, duty: str) -> list[ChainFinding]:
    """Upload the waiting bundles of one chain, oldest first (the caller holds its lock)."""
    findings = []
    for d in outbox_bundles(outbox_base, site, duty):
        if (finding := _upload_waiting(store, d, outbox_base)) is not None:
            log.error("evidence chain: %s", finding.detail)
            findings.append(finding)
        prefix = d.relative_to(outbox_base).as_posix() + "/"
        remove_local(d, outbox_base)
        log.info("evidence bundle %s uploaded from the outbox", prefix)
    return findings
