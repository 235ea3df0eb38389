"""A period of one site's evidence as a folder (and optionally a zip) an auditor verifies offline.

`ebops evidence export SITE --from D --to D --dest DIR` writes DIR/<site>_<from>_<to>/ with
  bundles/<site>/<duty>/<year>/<bundle>/   every object of each bundle started in the period
                                           (dates in the site's timezone), byte for byte;
  export.json                              site, period, the site's public keys, and per chain the
                                           predecessor of the period's first bundle (so its link is
                                           checked too), each manifest's SHA-256 as in the store;
  verify_evidence.py                       tasks/evidence/offline_verify.py: stdlib-only Python that
                                           re-checks hashes, chain links and (with `cryptography`)
                                           signatures, without ebill-ops or the store;
  说明.txt                                  how to run it, in Chinese and English.
The export copies what the store holds now; the store's own history (object versions, delete
markers, sequence claims) stays for `ebops evidence verify`, which needs the bucket.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from config.evidence import EvidenceStoreConfig
from tasks.evidence import offline_verify
from tasks.evidence.sign import fingerprint, trusted_keys
from tasks.evidence.store import MANIFEST, open_store, sha256_hex, split_key

SCRIPT = "verify_evidence.py"
README = "说明.txt"
_README_TEXT = """电子票据系统运维证据包导出（{site}，{date_from} 至 {date_to}）

离线校验：在本目录执行
    python3 verify_evidence.py
只需 Python 3.9 及以上，无需安装 ebill-ops，无需联网。脚本逐个核对每个文件的 SHA-256 与清单
（manifest.json）是否一致、同一职责的清单链是否连续未被篡改；若本机可导入 cryptography 包，
还核对每份清单的 Ed25519 签名，否则会提示“signatures NOT checked”。
请将脚本输出的公钥指纹与医院报告中打印的指纹核对。退出码 0 表示全部通过，1 表示发现问题。

Offline verification: run `python3 verify_evidence.py` in this folder (Python 3.9+, standard
library only). It checks every file's SHA-256 against its manifest and the chain of manifests;
Ed25519 signatures only where the `cryptography` package is importable (it says so otherwise).
Compare the key fingerprint it prints ({fingerprints}) with the one in the hospital's reports.
"""


class ExportError(ValueError):
    """The export cannot be made as asked (dates, destination): a one-line message for the user."""


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    zip_path: Path | None
    bundles: list[str]


def _local_day(iso: str, tz: str) -> date | None:
    try:
        ts = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).astimezone(ZoneInfo(tz)).date()


def export_period(cfg: EvidenceStoreConfig, site_id: str, tz: str, date_from: date, date_to: date, dest: Path,
                  make_zip: bool = False) -> ExportResult:
    if date_to < date_from:
        raise ExportError(f"--to {date_to} is before --from {date_from}")
    folder = Path(dest) / f"{site_id}_{date_from}_{date_to}"
    if folder.exists() and any(folder.iterdir()):
        raise ExportError(f"{folder} exists and is not empty: an export is never merged into another")
    store = open_store(cfg)
    objects: dict[str, list[str]] = {}
    for o in store.list(f"{site_id}/"):
        if (pk := split_key(o.object_name)):
            objects.setdefault(pk[0], []).append(pk[1])
    manifests: dict[str, tuple[dict, bytes]] = {}
    for prefix, names in objects.items():
        if MANIFEST in names:
            raw = store.get(prefix + MANIFEST)
            try:
                manifests[prefix] = (json.loads(raw), raw)
            except ValueError:
                continue   # exported as found below if in the period by its folder's stamp
    chosen = sorted(p for p, (m, _) in manifests.items()
                    if (d := _local_day(str(m.get("started_at")), tz)) and date_from <= d <= date_to)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in chosen:
        target = folder / "bundles" / prefix
        for name in objects[prefix]:
            if ".." in Path(name).parts:
                continue
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(manifests[prefix][1] if name == MANIFEST else store.get(prefix + name))
    context = _chain_context(chosen, manifests)
    keys = trusted_keys(cfg)
    meta = {"schema": "ebill-ops/evidence-export/1", "site": site_id, "from": str(date_from), "to": str(date_to),
            "timezone": tz, "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "bucket": cfg.bucket, "public_keys": keys, "public_key_fingerprints": [fingerprint(k) for k in keys],
            "bundles": [{"prefix": p, "sequence": manifests[p][0].get("sequence"),
                         "manifest_sha256": sha256_hex(manifests[p][1])} for p in chosen],
            "chain_context": context}
    (folder / "export.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(offline_verify.__file__, folder / SCRIPT)
    (folder / README).write_text(_README_TEXT.format(site=site_id, date_from=date_from, date_to=date_to,
                                                     fingerprints=", ".join(meta["public_key_fingerprints"]) or "none"),
                                 encoding="utf-8")
    zip_path = None
    if make_zip:
        zip_path = Path(shutil.make_archive(str(folder), "zip", root_dir=folder.parent, base_dir=folder.name))
    return ExportResult(folder, zip_path, chosen)


def _chain_context(chosen: list[str], manifests: dict[str, tuple[dict, bytes]]) -> dict[str, dict]:
    """Per site/duty chain: the bundle the period's first bundle names as its predecessor, with its
    manifest's SHA-256 as the store holds it now, so the offline script checks that link too."""
    out: dict[str, dict] = {}
    firsts: dict[str, tuple[int, str]] = {}
    for p in chosen:
        seq = manifests[p][0].get("sequence")
        key = "/".join(p.split("/")[:2])
        if isinstance(seq, int) and (key not in firsts or seq < firsts[key][0]):
            firsts[key] = (seq, p)
    for key, (seq, p) in firsts.items():
        if seq <= 1:
            continue
        prev = manifests[p][0].get("prev_bundle")
        if prev in manifests:
            out[key] = {"prefix": prev, "sequence": manifests[prev][0].get("sequence"),
                        "manifest_sha256": sha256_hex(manifests[prev][1])}
        else:   # named but not in the store: removed, which the offline check must report
            out[key] = {"prefix": prev, "sequence": seq - 1, "manifest_sha256": None, "missing": True}
    return out
