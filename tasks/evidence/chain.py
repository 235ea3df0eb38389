"""One site+duty's chain as a writer sees it: the local chain head, the lock around "read the
predecessor -> write the manifest -> move the head", the sequence claims in the store, and the
choice of the predecessor (issue 19.1 and 19.3).

- The **local chain head** (`<outbox>/.chain/<site>/<duty>.json`) is what this worker last wrote. It
  is the predecessor of the next bundle whenever it exists: the store's newest manifest is only
  compared with it, never adopted in its place (a rewritten or deleted newest bundle is a FAIL
  finding of the next run), unless the store holds later bundles that lead back to it through
  valid links and signatures (another worker of the same site carried the chain on).
- The **lock** is an `flock` on `<outbox>/.chain/<site>/<duty>.lock`: runs of one duty on one worker,
  in threads or processes, take sequence numbers one after the other.
- A **claim** `_chains/<site>/<duty>/<sequence>.json`, created with `If-None-Match: *` before the
  manifest is uploaded, gives each sequence number to exactly one bundle across workers; it holds the
  bundle's prefix and its manifest, so a worker can link to a bundle whose manifest is still on its
  way, and verify finds a newest bundle removed from the store by its claim.
"""
from __future__ import annotations

import fcntl
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from minio.error import S3Error

from tasks.core.atomic_file import write_atomic
from tasks.evidence.sign import signature_state
from tasks.evidence.store import MANIFEST, Store, sha256_hex

log = logging.getLogger("ebops.evidence")
CHAIN_DIR = ".chain"
CLAIMS = "_chains"
LOCK_TIMEOUT_S = 900  # a run of the same duty may be uploading a large bundle to a slow store
MAX_WALK = 10_000
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


@dataclass(frozen=True)
class ChainLink:
    """What the next bundle of a site and duty needs from the newest one."""

    prefix: str
    manifest_sha256: str
    sequence: int


@dataclass(frozen=True)
class ChainFinding:
    """Something wrong with the chain noticed while writing: the run reports it (FAIL or WARN)."""

    code: str  # chain_head_mismatch claim_mismatch bundle_removed signature_invalid unsigned sequence_taken lock_timeout
    detail: str
    status: str = "FAIL"


# ---------------------------------------------------------------- local state
def _chain_file(outbox_base: Path, site: str, duty: str, suffix: str) -> Path:
    return Path(outbox_base) / CHAIN_DIR / site / f"{duty}{suffix}"


def read_chain_head(outbox_base: Path, site: str, duty: str) -> ChainLink | None:
    f = _chain_file(outbox_base, site, duty, ".json")
    return ChainLink(**json.loads(f.read_text())) if f.exists() else None


def write_chain_head(outbox_base: Path, site: str, duty: str, link: ChainLink) -> None:
    write_atomic(_chain_file(outbox_base, site, duty, ".json"), json.dumps(link.__dict__).encode("utf-8"))


@contextmanager
def chain_lock(outbox_base: Path, site: str, duty: str, timeout_s: float | None = None) -> Iterator[bool]:
    """Exclusive per site+duty on this worker. flock belongs to the open file, so two threads of one
    process exclude each other as two processes do; the kernel drops it if the process dies.
    Yields False when the lock stayed taken past the deadline: the caller goes on without it (the
    store's sequence claim still guards the chain) rather than leave its evidence unfinished."""
    f = _chain_file(outbox_base, site, duty, ".lock")
    f.parent.mkdir(parents=True, exist_ok=True)
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    with open(f, "a+") as fh:
        locked = False
        while not locked:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.error("the evidence chain of %s/%s stayed locked for %.0f s (%s); going on without the lock",
                              site, duty, timeout_s, f)
                    break
                time.sleep(0.05)
        try:
            yield locked
        finally:
            if locked:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------- claims in the store
def claim_key(site: str, duty: str, sequence: int) -> str:
    # Four path parts: outside the bundle layout, so listing and verifying bundles never mistake it.
    return f"{CLAIMS}/{site}/{duty}/{sequence:010d}.json"


def _claim_body(prefix: str, raw: bytes) -> bytes:
    return json.dumps({"bundle": prefix, "manifest": raw.decode("utf-8")}, ensure_ascii=False, sort_keys=True).encode()


def parse_claim(body: bytes) -> tuple[str, bytes] | None:
    try:
        d = json.loads(body)
        return str(d["bundle"]), str(d["manifest"]).encode("utf-8")
    except (ValueError, KeyError, TypeError):
        return None


def _get_or_none(store: Store, key: str) -> bytes | None:
    try:
        return store.get(key)
    except S3Error as exc:
        if exc.code in _MISSING:
            return None
        raise


def read_claim(store: Store, site: str, duty: str, sequence: int) -> tuple[str, bytes] | None:
    body = _get_or_none(store, claim_key(site, duty, sequence))
    return parse_claim(body) if body is not None else None


def claim(store: Store, site: str, duty: str, link: ChainLink, raw: bytes) -> bool:
    """Take `link.sequence` for this bundle; False when another bundle has it. Taking it again for the
    same manifest (a retry after a crash between claim and upload) counts as taken."""
    if store.put_if_absent(claim_key(site, duty, link.sequence), _claim_body(link.prefix, raw)):
        return True
    held = read_claim(store, site, duty, link.sequence)
    return held is not None and sha256_hex(held[1]) == link.manifest_sha256


def newest_claim(store: Store, site: str, duty: str) -> tuple[ChainLink, bytes] | None:
    keys = sorted(o.object_name for o in store.list(f"{CLAIMS}/{site}/{duty}/"))
    for key in reversed(keys):
        held = parse_claim(store.get(key))
        if held is not None:
            seq = int(key.rsplit("/", 1)[1].split(".")[0])
            return ChainLink(held[0], sha256_hex(held[1]), seq), held[1]
    return None


def newest_manifest(store: Store, site: str, duty: str) -> tuple[ChainLink, bytes] | None:
    """The newest bundle (by folder name) that has a manifest (a bundle without one is incomplete)."""
    for year in reversed(store.subfolders(f"{site}/{duty}/")):
        for prefix in reversed(store.subfolders(year)):
            raw = _get_or_none(store, prefix + MANIFEST)
            if raw is not None:
                return ChainLink(prefix, sha256_hex(raw), json.loads(raw)["sequence"]), raw
    return None


def newest_in_store(store: Store, site: str, duty: str) -> tuple[ChainLink, bytes] | None:
    """The highest sequence the store knows, by claims (bundles of this version) or by manifests
    (bundles written before claims existed)."""
    found = [x for x in (newest_claim(store, site, duty), newest_manifest(store, site, duty)) if x]
    return max(found, key=lambda x: x[0].sequence) if found else None


# ---------------------------------------------------------------- the predecessor
def _manifest_of(store: Store, site: str, duty: str, sequence: int, prefix: str | None) -> bytes | None:
    held = read_claim(store, site, duty, sequence)
    if held is not None:
        return held[1]
    return _get_or_none(store, prefix + MANIFEST) if prefix else None


def leads_back(store: Store, site: str, duty: str, newest: ChainLink, raw: bytes, head: ChainLink,
               keys: list[str]) -> bool:
    """Whether the store's chain from `newest` reaches this worker's head through intact links
    (and, with keys, valid signatures): then another worker carried the chain on legitimately."""
    seq = newest.sequence
    for _ in range(MAX_WALK):
        m = json.loads(raw)
        if keys and signature_state(m, keys) != "valid":
            return False
        if seq - 1 == head.sequence:
            return m.get("prev_manifest_sha256") == head.manifest_sha256 and m.get("prev_bundle") == head.prefix
        prev_raw = _manifest_of(store, site, duty, seq - 1, m.get("prev_bundle"))
        if prev_raw is None or sha256_hex(prev_raw) != m.get("prev_manifest_sha256"):
            return False
        raw, seq = prev_raw, seq - 1
    return False


def choose_predecessor(store: Store | None, local: ChainLink | None, local_waiting: bool, site: str, duty: str,
                       keys: list[str]) -> tuple[ChainLink | None, list[ChainFinding]]:
    """The next bundle's predecessor and what is wrong with the store's side of the chain.

    `local` is this worker's newest bundle (chain head or outbox); `local_waiting` whether it is still
    in the outbox (then the store cannot hold it yet)."""
    if store is None:
        return local, []
    findings: list[ChainFinding] = []
    if local is not None and not local_waiting:
        raw = _get_or_none(store, local.prefix + MANIFEST)
        if raw is None:
            findings.append(ChainFinding("bundle_removed", f"this worker's newest bundle {local.prefix} (sequence "
                                         f"{local.sequence}) has no {MANIFEST} in the store any more"))
        elif sha256_hex(raw) != local.manifest_sha256:
            findings.append(ChainFinding("chain_head_mismatch", f"{local.prefix}{MANIFEST} in the store has SHA-256 "
                                         f"{sha256_hex(raw)[:16]}…, this worker wrote {local.manifest_sha256[:16]}…: "
                                         f"rewritten in the store; the next bundle links to the true one"))
    newest = newest_in_store(store, site, duty)
    if local is None:
        if newest is None:
            return None, findings
        stored = _get_or_none(store, newest[0].prefix + MANIFEST)
        if stored is not None and sha256_hex(stored) != newest[0].manifest_sha256:
            findings.append(ChainFinding("claim_mismatch", f"{newest[0].prefix}{MANIFEST} in the store differs from "
                                         f"the manifest claimed for sequence {newest[0].sequence}: rewritten; the "
                                         f"next bundle links to the claimed one"))
        state = signature_state(json.loads(stored if stored is not None else newest[1]), keys)
        if state == "invalid":
            findings.append(ChainFinding("signature_invalid", f"the store's newest manifest {newest[0].prefix} "
                                         f"fails its signature check (rewritten without the worker's key?)"))
        elif state == "unsigned" and keys:
            findings.append(ChainFinding("unsigned", f"the store's newest manifest {newest[0].prefix} is unsigned: "
                                         f"nothing vouches for it", "WARN"))
        return newest[0], findings
    if newest is not None and newest[0].sequence > local.sequence:
        if leads_back(store, site, duty, newest[0], newest[1], local, keys):
            return newest[0], findings
        findings.append(ChainFinding("chain_head_mismatch", f"the store's newest bundle {newest[0].prefix} (sequence "
                                     f"{newest[0].sequence}) does not lead back to this worker's {local.prefix} "
                                     f"(sequence {local.sequence}): forked or forged; the next bundle links to "
                                     f"this worker's"))
    return local, findings
