"""Ed25519 signatures on evidence manifests (issue 19.1).

The hash chain alone cannot protect the newest bundle: whoever can write to the bucket can rewrite
its files, fix the SHA-256 in its manifest and put both back, and no later manifest vouches for
it yet. A signature made with the worker's private key (never in the store, the repository, logs or
evidence; by reference only, like every secret) closes that: a manifest rewritten without the key
fails verification against the public key in the site file.

The signature lives inside manifest.json (`signature`), over `manifest_bytes()` of the manifest
without that field, so the chain's SHA-256 of a manifest covers its signature too.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from config.evidence import EvidenceStoreConfig
from config.settings import SecretMissing, resolve_secret
from tasks.evidence.store import manifest_bytes

ALG = "Ed25519"


class SigningKeyUnusable(RuntimeError):
    """The private key reference resolves to something that is not an Ed25519 key."""


def fingerprint(public_key_b64: str) -> str:
    """`SHA256:<hex>` of the raw public key: what the reports print and the site file can be compared with."""
    return "SHA256:" + hashlib.sha256(base64.b64decode(public_key_b64)).hexdigest()


def public_key_b64(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 key, or base64 of the 32-byte seed (fits one line of an env file)."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise SigningKeyUnusable(f"the evidence signing key is not an Ed25519 key ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyUnusable("the evidence signing key is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey
    public_key: str

    def sign(self, manifest: dict) -> dict:
        """The manifest with its `signature` field."""
        body = {k: v for k, v in manifest.items() if k != "signature"}
        value = base64.b64encode(self.key.sign(manifest_bytes(body))).decode()
        return body | {"signature": {"alg": ALG, "public_key": fingerprint(self.public_key), "value": value}}


def signer_for(cfg: EvidenceStoreConfig) -> tuple[Signer | None, str | None]:
    """The site's signer, or None and why not (no key configured, key unavailable or unusable).
    A missing key never stops the bundle from being stored: the caller records the reason."""
    if cfg.signing is None or cfg.signing.private_key is None:
        return None, "no evidence.signing.private_key in the site file"
    try:
        key = load_private_key(resolve_secret(cfg.signing.private_key))
    except (SecretMissing, SigningKeyUnusable) as exc:
        return None, str(exc)
    if public_key_b64(key) != cfg.signing.public_key:
        return None, "the signing key does not match evidence.signing.public_key of the site file"
    return Signer(key, cfg.signing.public_key), None


def trusted_keys(cfg: EvidenceStoreConfig) -> list[str]:
    if cfg.signing is None:
        return []
    return [cfg.signing.public_key, *cfg.signing.previous_public_keys]


def signature_state(manifest: dict, keys: list[str]) -> str:
    """"valid", "unsigned", "invalid" (wrong signature or unknown key) or "unchecked" (no key to check with)."""
    sig = manifest.get("signature")
    if sig is None:
        return "unsigned"
    if not keys:
        return "unchecked"
    if not isinstance(sig, dict) or sig.get("alg") != ALG:
        return "invalid"
    body = manifest_bytes({k: v for k, v in manifest.items() if k != "signature"})
    for k in keys:
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(k)).verify(base64.b64decode(str(sig.get("value"))), body)
            return "valid"
        except (InvalidSignature, ValueError, binascii.Error):
            continue
    return "invalid"
