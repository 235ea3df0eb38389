#!/usr/bin/env python3
"""Stand-alone verification of an exported evidence period (ebill-ops `ebops evidence export`).

Runs with plain Python 3.9+ and its standard library only (hashlib, json): no ebill-ops, no
network. `ebops evidence export` copies this file into the export folder as verify_evidence.py;
an auditor runs `python3 verify_evidence.py` in that folder (or `python3 verify_evidence.py DIR`).

What it checks, bundle by bundle (bundles/<site>/<duty>/<year>/<bundle>/):
  1. every file listed in manifest.json: present, SHA-256 and size as the manifest says, and no
     file beside them that the manifest does not list;
  2. the chain of each site+duty: sequence numbers without gaps, and each manifest's
     prev_manifest_sha256 / prev_bundle equal to the SHA-256 / folder of the manifest before it
     (the first bundle of the period is checked against its predecessor's manifest, exported in
     chain_context/, when the period does not start the chain);
  3. each manifest's Ed25519 signature against the public key(s) in export.json, only when the
     `cryptography` package can be imported; otherwise it says so and leaves signatures unchecked.
Compare the key fingerprint it prints with the one in the hospital's reports or site file: a key
shipped with the export proves nothing by itself.

Exit code 0: everything checked is intact; 1: a problem was found; 2: the folder is not an export.
This file must stay standard-library only (tests/unit/test_portal_export.py runs it with `python3 -I`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

MANIFEST = "manifest.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    """The one serialisation of a manifest (as ebill-ops writes and signs it)."""
    return json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def fingerprint(public_key_b64: str) -> str:
    return "SHA256:" + sha256_hex(base64.b64decode(public_key_b64))


def signature_checker():
    """A function (manifest, keys) -> "valid"/"invalid"/"unsigned", or None without `cryptography`."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None

    def check(manifest: dict, keys: list) -> str:
        sig = manifest.get("signature")
        if sig is None:
            return "unsigned"
        if not isinstance(sig, dict) or sig.get("alg") != "Ed25519":
            return "invalid"
        body = manifest_bytes({k: v for k, v in manifest.items() if k != "signature"})
        for key in keys:
            try:
                Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
                    base64.b64decode(str(sig.get("value"))), body)
                return "valid"
            except (InvalidSignature, ValueError):
                continue
        return "invalid"

    return check


def _files_under(folder: str) -> list:
    out = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/"))
    return sorted(out)


def _bundles(root: str) -> list:
    """(prefix, folder) of every bundle: the folders four levels below bundles/."""
    base = os.path.join(root, "bundles")
    out = []
    for dirpath, dirs, _files in os.walk(base):
        rel = os.path.relpath(dirpath, base).replace(os.sep, "/")
        if rel.count("/") == 3:
            out.append((rel + "/", dirpath))
            dirs[:] = []
    return sorted(out)


def bundle_problems(prefix: str, folder: str) -> tuple:
    """(manifest dict or None, raw bytes or None, problems) of one bundle folder."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None, None, [(prefix, "manifest_missing", "no manifest.json")]
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        m = json.loads(raw)
        files = {f["name"]: f for f in m["files"]}
        int(m["sequence"])
    except (ValueError, KeyError, TypeError):
        return None, raw, [(prefix, "manifest_invalid", "manifest.json is not a valid manifest")]
    problems = []
    for name, f in sorted(files.items()):
        p = os.path.join(folder, *name.split("/"))
        if not os.path.isfile(p):
            problems.append((prefix, "file_missing", f"{name} is listed in the manifest but not in the folder"))
            continue
        with open(p, "rb") as fh:
            data = fh.read()
        if sha256_hex(data) != f.get("sha256") or len(data) != f.get("bytes"):
            problems.append((prefix, "file_altered", f"{name}: SHA-256 {sha256_hex(data)[:16]}... ({len(data)} bytes), "
                                                     f"manifest says {str(f.get('sha256'))[:16]}... ({f.get('bytes')} bytes)"))
    for name in _files_under(folder):
        if name != MANIFEST and name not in files:
            problems.append((prefix, "file_extra", f"{name} is in the folder but not in its manifest"))
    return m, raw, problems


def chain_problems(chain: list, context: dict) -> list:
    """chain: [(prefix, manifest, raw)] of one site+duty sorted by sequence; context: the
    predecessor of the first one, {"prefix", "manifest_sha256", "sequence"} or None."""
    problems = []
    prev = context  # what the next manifest must name
    if prev and prev.get("missing") and chain:
        problems.append((prev["prefix"], "bundle_removed", f"named by {chain[0][0]} as its predecessor, "
                                                           f"but its manifest was not in the store at export"))
        # Reported once: the first bundle's own link cannot be checked further.
        prev = {**prev, "manifest_sha256": chain[0][1].get("prev_manifest_sha256")}
    for prefix, m, raw in chain:
        seq = m["sequence"]
        if prev is None:
            if seq != 1:
                problems.append((prefix, "chain_context_missing",
                                 f"sequence {seq}: its predecessor is not in the export, the link is not checked"))
        else:
            if seq != prev["sequence"] + 1:
                first, last = prev["sequence"] + 1, seq - 1
                gap = f"sequence {first}" if first == last else f"sequences {first}..{last}"
                problems.append((prefix, "bundle_removed", f"sequence {seq} follows {prev['sequence']}: {gap} missing"))
            elif m.get("prev_manifest_sha256") != prev["manifest_sha256"]:
                problems.append((prev["prefix"], "manifest_altered",
                                 f"manifest.json has SHA-256 {prev['manifest_sha256'][:16]}..., but {prefix} "
                                 f"recorded {str(m.get('prev_manifest_sha256'))[:16]}..."))
            elif m.get("prev_bundle") != prev["prefix"]:
                problems.append((prefix, "chain_broken", f"prev_bundle is {m.get('prev_bundle')}, expected {prev['prefix']}"))
        prev = {"prefix": prefix, "manifest_sha256": sha256_hex(raw), "sequence": seq}
    return problems


def verify_folder(root: str, out=print) -> int:
    meta_path = os.path.join(root, "export.json")
    if not os.path.isfile(meta_path):
        out(f"error: {meta_path} not found: run this script in the export folder, or give the folder")
        return 2
    with open(meta_path, encoding="utf-8") as fh:
        meta = json.load(fh)
    keys = list(meta.get("public_keys") or [])
    contexts = meta.get("chain_context") or {}
    out(f"export of {meta.get('site')} from {meta.get('from')} to {meta.get('to')} (made {meta.get('exported_at')})")
    problems, chains, count = [], {}, 0
    for prefix, folder in _bundles(root):
        count += 1
        m, raw, found = bundle_problems(prefix, folder)
        problems += found
        if m is not None:
            chains.setdefault("/".join(prefix.split("/")[:2]), []).append((prefix, m, raw))
    for key, chain in sorted(chains.items()):
        chain.sort(key=lambda c: (c[1]["sequence"], c[0]))
        problems += chain_problems(chain, contexts.get(key))
    check = signature_checker()
    if check is None:
        out("signatures NOT checked: the `cryptography` package cannot be imported here "
            "(pip install cryptography, then run again); file hashes and chain links are checked")
    elif not keys:
        out("signatures NOT checked: export.json names no public key")
    else:
        out("signatures checked with " + ", ".join(fingerprint(k) for k in keys)
            + " (compare with the fingerprint in the hospital's reports)")
        for chain in chains.values():
            states = [(prefix, check(m, keys)) for prefix, m, _raw in chain]
            # An unsigned manifest is vouched for by a later signed one through the hash chain.
            last_valid = max((i for i, (_, st) in enumerate(states) if st == "valid"), default=-1)
            for i, (prefix, state) in enumerate(states):
                if state == "invalid" or (state == "unsigned" and i > last_valid):
                    problems.append((prefix, "signature_" + state, f"manifest.json signature is {state}"))
    for prefix, code, detail in problems:
        out(f"PROBLEM {code:22} {prefix}  {detail}")
    errors = [p for p in problems if p[1] != "chain_context_missing"]
    verdict = "FAILED" if errors else "OK"
    out(f"{verdict}: {count} bundles, {len(problems)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(verify_folder(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))))
