"""The evidence bucket as the bundles see it: a client with short timeouts, keys, content types,
object-lock retention where the bucket has it, and "unreachable" told apart from "refused".

The keys are resolved from the site's secret references at the moment a client is made and are
never logged or kept beyond the client object.
"""
from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from io import BytesIO
from typing import Iterator

import urllib3
from minio import Minio
from minio.error import S3Error
from minio.helpers import genheaders
from minio.retention import Retention as LockRetention

from config.evidence import EvidenceStoreConfig
from config.settings import resolve_secret

log = logging.getLogger("ebops.evidence")

MANIFEST = "manifest.json"
SCHEMA = "ebill-ops/evidence-manifest/1"
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 30
_NO_LOCK_CODES = {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "InvalidRequest",
                  "NotImplemented", "InvalidBucketState"}
# Python's own table, not the worker's /etc/mime.types: the same type for a file on every worker.
_MIME = mimetypes.MimeTypes()
_MIME.add_type("text/markdown", ".md")   # report.md; Python 3.11's table lacks it
_MIME.add_type("text/plain", ".log")     # raw command output


class StoreUnreachable(RuntimeError):
    """The evidence store did not answer (refused, timed out, reset): bundles wait in the outbox."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_type(name: str) -> str:
    """The object's Content-Type; text is always written as UTF-8, so say so (a browser opening
    report.html from a presigned link would guess otherwise)."""
    kind = _MIME.guess_type(name.lower())[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind


def stamp(ts: datetime) -> str:
    """A sortable UTC stamp, e.g. 20261126T020000Z (naive datetimes are taken as UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def bundle_prefix(site: str, duty: str, started_at: datetime, flow_run_id: str) -> str:
    s = stamp(started_at)
    return f"{site}/{duty}/{s[:4]}/{s}_{flow_run_id}/"


def split_key(key: str) -> tuple[str, str] | None:
    """(bundle prefix, file name) of an object key, or None for a key outside the bundle layout.
    Keys under a folder beginning with "_" (`_chains/`, `_approvals/`, `_runbooks/`) are records of
    their own, never bundles: a site id cannot begin with "_"."""
    if key.startswith("_"):
        return None
    parts = key.split("/", 4)
    if len(parts) < 5 or not parts[4]:
        return None
    return "/".join(parts[:4]) + "/", parts[4]


def manifest_bytes(manifest: dict) -> bytes:
    """The one serialisation of a manifest: its SHA-256 is what the next bundle records."""
    return json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, (urllib3.exceptions.HTTPError, OSError, TimeoutError))


@dataclass
class Store:
    """One bucket of one site's evidence store."""

    cfg: EvidenceStoreConfig
    client: Minio
    _lock: bool | None = field(default=None, repr=False)

    @property
    def bucket(self) -> str:
        return self.cfg.bucket

    def call(self, what: str, fn, *args, **kwargs):
        """Run one S3 call; connection trouble becomes StoreUnreachable naming the endpoint."""
        try:
            return fn(*args, **kwargs)
        except S3Error:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted below
            if _unreachable(exc):
                raise StoreUnreachable(f"evidence store {self.cfg.endpoint} unreachable during {what}: "
                                       f"{type(exc).__name__}") from exc
            raise

    # ---------------------------------------------------------------- object lock
    def object_lock(self) -> bool:
        """Whether the bucket has object lock (asked once). SeaweedFS answers
        ObjectLockConfigurationNotFoundError for a bucket without it, which minio-py raises."""
        if self._lock is None:
            try:
                cfg = self.call("object lock check", self.client.get_object_lock_config, self.bucket)
                self._lock = cfg is not None
            except S3Error as exc:
                if exc.code not in _NO_LOCK_CODES:
                    raise
                self._lock = False
        return self._lock

    def retention(self) -> LockRetention | None:
        mode = self.cfg.retention.mode
        if mode == "none" or not self.object_lock():
            return None
        until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=self.cfg.retention.days)
        return LockRetention(mode, until)

    def object_retention(self, key: str, version_id: str | None = None) -> LockRetention | None:
        try:
            return self.call("retention read", self.client.get_object_retention, self.bucket, key, version_id)
        except S3Error as exc:
            if exc.code in _NO_LOCK_CODES:
                return None
            raise

    # ---------------------------------------------------------------- objects
    def put(self, key: str, data: bytes) -> None:
        self.call(f"upload of {key}", self.client.put_object, self.bucket, key, BytesIO(data), len(data),
                  content_type=content_type(key), retention=self.retention())

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if no object has that name (`If-None-Match: *`); False when one has.
        The store decides atomically, so of several workers only one can take a key (SeaweedFS 4.48
        and MinIO honour it; tests/integration/test_evidence_concurrency.py checks it). minio-py's
        put_object would turn the header into user metadata, hence its lower-level _put_object."""
        headers = genheaders({"Content-Type": content_type(key)}, None, None, self.retention(), False)
        headers["If-None-Match"] = "*"
        try:
            self.call(f"conditional upload of {key}", self.client._put_object, self.bucket, key, data, headers)
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def get(self, key: str) -> bytes:
        resp = self.call(f"download of {key}", self.client.get_object, self.bucket, key)
        try:
            return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def exists(self, key: str) -> bool:
        try:
            self.call(f"stat of {key}", self.client.stat_object, self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
                return False
            raise

    def list(self, prefix: str, recursive: bool = True, versions: bool = False) -> Iterator:
        it = self.call(f"listing of {prefix or '/'}", self.client.list_objects, self.bucket, prefix=prefix,
                       recursive=recursive, include_version=versions)
        while True:
            try:
                yield self.call(f"listing of {prefix or '/'}", next, it)
            except StopIteration:
                return

    def subfolders(self, prefix: str) -> list[str]:
        return sorted(o.object_name for o in self.list(prefix, recursive=False) if o.is_dir)

    def versioning(self) -> bool:
        try:
            return self.call("versioning check", self.client.get_bucket_versioning, self.bucket).status == "Enabled"
        except S3Error:
            return False

    def presigned(self, key: str, expires: timedelta) -> str:
        return self.call("presigning", self.client.presigned_get_object, self.bucket, key, expires=expires)


def open_store(cfg: EvidenceStoreConfig, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Store:
    """A client for the site's bucket with short timeouts and one retry, so a store that is down is
    noticed in seconds and the bundle goes to the outbox instead of hanging the flow."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout_s, read=READ_TIMEOUT_S),
        retries=urllib3.Retry(total=1, connect=1, read=0, backoff_factor=0.2, status_forcelist=()),
        maxsize=4,
    )
    client = Minio(cfg.endpoint, access_key=resolve_secret(cfg.access_key), secret_key=resolve_secret(cfg.secret_key),
                   secure=cfg.secure, region=cfg.region or "us-east-1", http_client=http)
    return Store(cfg, client)
