"""The offline verification script of `ebops evidence export` (tasks/evidence/offline_verify.py)
run as an auditor runs it: a plain `python3 -I` outside the project's venv, on export folders
written here with real signed manifests; and the portal page's rendering (no script, every bundle
a section). The export and the portal against the sandbox's S3: tests/integration/test_evidence_portal.py."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tasks.evidence import offline_verify
from tasks.evidence.export import SCRIPT
from tasks.evidence.sign import Signer, public_key_b64
from tasks.evidence.store import manifest_bytes, sha256_hex

STDLIB_ONLY = {"__future__", "base64", "hashlib", "json", "os", "sys"}
# the one optional import, inside signature_checker()
OPTIONAL = {"cryptography.exceptions", "cryptography.hazmat.primitives.asymmetric.ed25519"}


def plain_python() -> str:
    """A python3 that is not this venv's (the auditor has no ebill-ops)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    found = shutil.which("python3", path=path) or "/usr/bin/python3"
    if not Path(found).exists():
        pytest.fail("no python3 outside the venv on PATH: the offline script must be tested with a plain one")
    return found


def run_script(folder: Path, block_crypto: bool = False) -> subprocess.CompletedProcess:
    if block_crypto:   # an auditor's Python without the cryptography package
        code = ("import runpy, sys; sys.modules['cryptography'] = None; sys.argv = ['verify_evidence.py', sys.argv[1]];"
                " runpy.run_path(sys.argv[1] + '/verify_evidence.py', run_name='__main__')")
        argv = [plain_python(), "-I", "-c", code, str(folder)]
    else:
        argv = [plain_python(), "-I", str(folder / SCRIPT)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=folder)


def _write_export(root: Path, key: Ed25519PrivateKey, n: int = 3, site: str = "h1", duty: str = "inspection") -> list[str]:
    signer = Signer(key, public_key_b64(key))
    prefixes, prev = [], None
    for i in range(1, n + 1):
        prefix = f"{site}/{duty}/2026/20260{i}01T020000Z_run{i}/"
        folder = root / "bundles" / prefix
        folder.mkdir(parents=True)
        report = f"<h1>巡检报告 第{i}次</h1>".encode()
        (folder / "report.html").write_bytes(report)
        m = {"site": site, "duty": duty, "sequence": i, "verdict": "OK",
             "files": [{"name": "report.html", "sha256": sha256_hex(report), "bytes": len(report)}],
             "prev_manifest_sha256": prev[1] if prev else None, "prev_bundle": prev[0] if prev else None}
        raw = manifest_bytes(signer.sign(m))
        (folder / "manifest.json").write_bytes(raw)
        prev = (prefix, sha256_hex(raw))
        prefixes.append(prefix)
    (root / "export.json").write_text(json.dumps({"site": site, "from": "2026-01-01", "to": "2026-03-31",
                                                  "public_keys": [public_key_b64(key)], "chain_context": {}}))
    shutil.copyfile(offline_verify.__file__, root / SCRIPT)
    return prefixes


@pytest.fixture()
def export(tmp_path):
    key = Ed25519PrivateKey.generate()
    return tmp_path, key, _write_export(tmp_path, key)


def test_the_script_imports_only_the_standard_library():
    tree = ast.parse(Path(offline_verify.__file__).read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert names - OPTIONAL <= STDLIB_ONLY, names - OPTIONAL - STDLIB_ONLY


def test_the_script_serialises_manifests_as_ebill_ops_does():
    m = {"site": "沙箱", "files": [{"name": "报告.html", "bytes": 3}], "z": None, "a": 1.5}
    assert offline_verify.manifest_bytes(m) == manifest_bytes(m)


def test_an_intact_export_verifies_with_plain_python_and_its_signatures(export):
    root, _key, _ = export
    done = run_script(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: 3 bundles, 0 problem(s)" in done.stdout
    assert "signatures checked with SHA256:" in done.stdout


def test_without_cryptography_it_says_signatures_are_not_checked(export):
    root, _key, _ = export
    done = run_script(root, block_crypto=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signatures NOT checked: the `cryptography` package cannot be imported" in done.stdout
    (root / "bundles" / export[2][1] / "report.html").write_bytes("<h1>巡检报告（改）</h1>".encode())
    done = run_script(root, block_crypto=True)   # hashes are still checked
    assert done.returncode == 1 and "file_altered" in done.stdout


def test_an_altered_file_is_named(export):
    root, _key, prefixes = export
    (root / "bundles" / prefixes[1] / "report.html").write_bytes("<h1>巡检报告 第2次（已复核）</h1>".encode())
    done = run_script(root)
    assert done.returncode == 1
    assert "file_altered" in done.stdout and f"{prefixes[1]}  report.html" in done.stdout
    assert "FAILED" in done.stdout


def test_a_removed_bundle_and_an_extra_file_are_found(export):
    root, _key, prefixes = export
    shutil.rmtree(root / "bundles" / prefixes[1])
    (root / "bundles" / prefixes[0] / "notes.txt").write_text("added later")
    done = run_script(root)
    assert done.returncode == 1
    assert "bundle_removed" in done.stdout and "sequence 2 missing" in done.stdout
    assert "file_extra" in done.stdout and "notes.txt" in done.stdout


def test_a_rewritten_manifest_breaks_the_chain_and_its_signature(export):
    """A forger fixes report.html's hash in its manifest: the next manifest's link and the
    signature (made without the worker's key) both catch it."""
    root, _key, prefixes = export
    folder = root / "bundles" / prefixes[0]
    forged = "<h1>巡检报告（伪造）</h1>".encode()
    (folder / "report.html").write_bytes(forged)
    m = json.loads((folder / "manifest.json").read_bytes())
    m["files"][0].update(sha256=sha256_hex(forged), bytes=len(forged))
    (folder / "manifest.json").write_bytes(manifest_bytes(m))
    done = run_script(root)
    assert done.returncode == 1
    assert "manifest_altered" in done.stdout and "signature_invalid" in done.stdout
    assert "file_altered" not in done.stdout


def test_the_first_bundle_is_checked_against_its_predecessor_from_export_json(export):
    root, key, prefixes = export
    meta = json.loads((root / "export.json").read_text())
    shutil.rmtree(root / "bundles" / prefixes[0])   # the period starts at sequence 2
    raw_first_sha = json.loads((root / "bundles" / prefixes[1] / "manifest.json").read_bytes())["prev_manifest_sha256"]
    meta["chain_context"] = {"h1/inspection": {"prefix": prefixes[0], "sequence": 1, "manifest_sha256": raw_first_sha}}
    (root / "export.json").write_text(json.dumps(meta))
    assert run_script(root).returncode == 0
    meta["chain_context"]["h1/inspection"]["manifest_sha256"] = "0" * 64   # the store's predecessor changed since
    (root / "export.json").write_text(json.dumps(meta))
    done = run_script(root)
    assert done.returncode == 1 and "manifest_altered" in done.stdout and prefixes[0] in done.stdout
    meta["chain_context"]["h1/inspection"] = {"prefix": prefixes[0], "sequence": 1, "manifest_sha256": None, "missing": True}
    (root / "export.json").write_text(json.dumps(meta))
    done = run_script(root)
    assert done.returncode == 1 and "bundle_removed" in done.stdout


def test_a_folder_that_is_not_an_export_is_exit_2(tmp_path):
    shutil.copyfile(offline_verify.__file__, tmp_path / SCRIPT)
    done = run_script(tmp_path)
    assert done.returncode == 2 and "export.json" in done.stdout


def test_the_portal_page_has_no_script_and_a_section_per_bundle():
    from tasks.evidence.portal import BundlePage, PortalData, anchor, render_portal
    from tasks.evidence.judge import Problem

    def page(prefix, seq, problems=()):
        return BundlePage(prefix=prefix, anchor=anchor(prefix), duty="inspection", year=prefix.split("/")[2],
                          sequence=seq, period="2026-11", started_local="2026-11-01 10:00:00", verdict="OK",
                          verdict_zh="正常", check="failed" if problems else "ok", problems=list(problems),
                          files=[{"name": "report.html", "bytes": 10, "sha256": "ab" * 32, "url": "https://s3/x?sig=1&b=2"}],
                          report_url="https://s3/x?sig=1&b=2", manifest_sha256="cd" * 32,
                          manifest_text='{"site": "<h1>"}', signature="未签名")
    bad = page("h1/inspection/2026/b/", 2, [Problem("h1/inspection/2026/b/", "file_altered", "report.html: 改")])
    d = PortalData("h1", "沙箱医院", "2026-12-01 06:30:00", "2026-12-08 06:30:00",
                   duties={"inspection": {"2026": [bad], "2025": [page("h1/inspection/2025/a/", 1)]}})
    html = render_portal(d)
    assert "<script" not in html.lower()
    assert html.count('class="page bundle-page"') == 2 and f'id="{bad.anchor}"' in html
    assert 'id="d-inspection"' in html and "2025 年" in html and "2026 年" in html
    assert "校验未通过" in html and "file_altered" in html
    assert "&lt;h1&gt;" in html            # manifest text is escaped
    assert "sig=1&amp;b=2" in html          # URLs are attribute-escaped, still valid links
    assert "有效期至 2026-12-08 06:30:00" in html
