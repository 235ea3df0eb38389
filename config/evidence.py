"""`evidence:` of a site file: the S3 store the evidence bundles go to (object lock, retention),
the outbox, the links' lifetime and the manifests' signing key."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from config.model import Strict
from config.secrets import SecretRef


# ---------------------------------------------------------------- evidence store
class Retention(Strict):
    mode: Literal["COMPLIANCE", "GOVERNANCE", "none"] = "COMPLIANCE"
    days: int = Field(default=3650, ge=1, le=36500)


class ManifestSigning(Strict):
    """The worker's Ed25519 key that signs every manifest (tasks/evidence/sign.py). The private key
    only by reference; an auditor's copy of the site file may leave it out and still verify."""

    private_key: SecretRef | None = Field(default=None, description="PEM, or base64 of the 32-byte seed")
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    previous_public_keys: list[str] = Field(default_factory=list, description="retired keys that signed older bundles")

    @field_validator("public_key", "previous_public_keys")
    @classmethod
    def _raw_ed25519(cls, v):
        import base64
        import binascii

        for key in [v] if isinstance(v, str) else v:
            try:
                ok = len(base64.b64decode(key, validate=True)) == 32
            except (binascii.Error, ValueError):
                ok = False
            if not ok:
                raise ValueError("must be base64 of a raw 32-byte Ed25519 public key "
                                 "(`ebops evidence public-key --env NAME` prints it for the worker's key)")
        return v


class EvidenceStoreConfig(Strict):
    endpoint: str = Field(description="host:port of the S3 API (MinIO)")
    secure: bool = True
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str | None = None
    access_key: SecretRef
    secret_key: SecretRef
    retention: Retention = Field(default_factory=Retention)
    outbox: str = Field(default=".ebops/outbox", description="local folder where bundles wait while the store is down")
    # A presigned link carries the access key id and works for anyone who has it until it expires:
    # the links a run prints, puts into its Prefect artifact and sends to the group robots live hours.
    link_hours: int = Field(default=12, ge=1, le=168, description="lifetime of the report links a run hands out, hours")
    signing: ManifestSigning | None = None
    allow_unsigned: bool = Field(default=False, description="store unsigned manifests without a FAIL finding "
                                 "(verify still reports them as unsigned)")
