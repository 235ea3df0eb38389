"""The evidence portal in a real browser, and the offline export (issue 17.4).

Real bundles in the sandbox's S3 under a site id of this test's own (the test bucket): two real
inspection runs against the sandbox hospital, and two bundles of a small flow through
flows/common.store_evidence dated in 2025 and 2026 (a second duty and two years). One inspection
bundle's report is then rewritten in the store. `ebops portal` builds the page; headless Chromium
opens its presigned link and the test clicks site -> duty -> bundle -> report with real mouse
events (tests/integration/browser.py), checks the Chinese text is drawn with a CJK font, and that
the rewritten bundle is shown failing verification. `ebops evidence export` writes periods that
a plain `python3 -I` verifies offline.

SKIPPED with the reason when Chromium or a CJK font is missing and cannot be installed (not root
or no apt-get). EBOPS_PORTAL_SCREENSHOTS=DIR also writes the screenshots there (docs/img/).
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prefect import flow

from config.settings import load_site
from flows.common import finish, store_evidence
from sandbox import manager
from tasks.core.results import CheckResult, Status
from tasks.evidence.portal import anchor, portal_key
from tasks.evidence.store import open_store
from tests.integration.browser import Browser, cjk_fonts, find_chromium
from tests.unit.test_portal_export import run_script

REPO = Path(__file__).resolve().parents[2]


@flow(name="portal-probe")
def probe(site_name: str, started: datetime):
    site = load_site(site_name)
    results = [CheckResult(check="calendar", title="节假日值班表", site=site.site, target="元旦", value="张工",
                           status=Status.OK)]
    bundle = store_evidence(site, "holiday_precheck", started.strftime("%Y-%m-%d"), "inspection", "节前巡检报告",
                            "节前巡检", results, started)
    return finish(site, "holiday_precheck", results, bundle, raise_on_failure=False)


def _ebops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env=dict(os.environ))


@pytest.fixture(scope="module")
def chromium():
    exe, why = find_chromium()
    if exe is None:
        pytest.skip(f"no browser test: {why}")
    return exe


@pytest.fixture()
def site(sites_dir, sandbox, prefect_harness):
    """A site of this test's own in the sandbox's test bucket, with four real bundles, one tampered."""
    from flows.inspection import inspection

    public_key = manager.evidence_public_key(manager.credentials())

    def edit(d):
        d["evidence"]["bucket"] = "ebops-test-chains"
        d["evidence"]["signing"]["public_key"] = public_key
        d["name"] = "沙箱演示医院"

    name = sites_dir("p" + secrets.token_hex(4), edit)
    cfg = load_site(name).evidence
    store = open_store(cfg)
    if not store.client.bucket_exists(cfg.bucket):
        store.client.make_bucket(cfg.bucket, object_lock=True)
    old = [probe(name, datetime(2025, 12, 31, 1, 0, tzinfo=timezone.utc)).bundle.prefix,
           probe(name, datetime(2026, 1, 2, 1, 0, tzinfo=timezone.utc)).bundle.prefix]
    runs = []
    for _ in range(2):
        state = inspection(site=name, kind="adhoc", return_state=True)
        out = state.result(raise_on_failure=False)
        outcome = getattr(out, "outcome", out)   # a FAIL verdict raises VerdictFailed, evidence stored first
        assert outcome.bundle.location == "store", outcome.bundle
        runs.append(outcome.bundle.prefix)
    # Tamper: the first inspection's report rewritten in the store (a new object version).
    report = store.get(runs[0] + "report.html").decode()
    store.put(runs[0] + "report.html", report.replace("巡检报告", "巡检报告（已复核）").encode())
    return {"name": name, "cfg": cfg, "old": old, "good": runs[1], "tampered": runs[0]}


def _shot(browser: Browser, tmp_path: Path, name: str) -> bytes:
    data = browser.screenshot(tmp_path / name)
    if os.environ.get("EBOPS_PORTAL_SCREENSHOTS"):
        target = Path(os.environ["EBOPS_PORTAL_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, target / name)
    return data


def test_the_portal_opens_by_its_link_and_shows_the_tampered_bundle_failing(site, chromium, tmp_path):
    done = _ebops("portal", site["name"])
    assert done.returncode == 1, done.stdout + done.stderr   # a bundle fails verification
    assert "Traceback" not in done.stderr and "1 bundle(s) fail verification" in done.stderr
    assert site["tampered"] in done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith("http") and "X-Amz-Signature=" in url and "X-Amz-Expires=604800" in url

    with Browser(chromium, tmp_path / "profile") as b:
        b.open(url)
        assert b.visible("#top") and not b.visible("#s")
        assert "沙箱演示医院" in b.text("#top") and site["name"] in b.text("#top")
        _shot(b, tmp_path, "portal-1-sites.png")

        b.click("#go-site")                                       # site -> its duties
        assert b.visible("#s") and not b.visible("#top")
        duties = b.text("#s")
        assert "巡检（inspection）" in duties and "节前巡检（holiday_precheck）" in duties
        assert "2026、2025" in duties                              # the 2025 and 2026 bundles of the pre-holiday duty
        _shot(b, tmp_path, "portal-2-site.png")

        b.click("#go-duty-inspection")                            # duty -> its bundles by year
        assert b.visible("#d-inspection") and not b.visible("#s")
        good_row = f'#d-inspection a.bundle[data-prefix="{site["good"]}"]'
        bad_row = f'#d-inspection a.bundle[data-prefix="{site["tampered"]}"]'
        check = "(s => s.closest('tr').querySelector('[data-check]').dataset.check)"
        assert b.js(f"{check}(document.querySelector('{bad_row}'))") == "failed"
        assert b.js(f"{check}(document.querySelector('{good_row}'))") == "ok"
        assert "校验未通过（file_altered、newer_version）" in b.text("#d-inspection")
        _shot(b, tmp_path, "portal-3-duty.png")

        b.click(good_row)                                          # bundle: manifest, files, chain
        page = f"#{anchor(site['good'])}"
        assert b.visible(page) and not b.visible("#d-inspection")
        text = b.text(page)
        assert "校验通过" in text and "上一个证据包" in text and site["tampered"] in text   # the chain around it
        assert "manifest.json" in text and "result.json" in text
        _shot(b, tmp_path, "portal-4-bundle.png")

        b.click(f"{page} a.report", loads=True)                    # -> the report, by its presigned link
        assert b.js("location.pathname").endswith(site["good"] + "report.html")
        report = b.text()
        assert "沙箱演示医院" in report and "医疗收费电子票据系统巡检报告" in report
        fonts = b.fonts_for("h1")
        cjk = [f for f in fonts if f["familyName"] in cjk_fonts() and f["glyphCount"] > 0]
        assert cjk, f"the report's title was not drawn with a CJK font: {fonts} (installed: {cjk_fonts()})"
        _shot(b, tmp_path, "portal-5-report.png")

        b.open(url)                                                # the tampered one, clicked to as well
        b.click("#go-site")
        b.click("#go-duty-inspection")
        b.click(bad_row)
        page = f"#{anchor(site['tampered'])}"
        assert b.visible(page)
        assert b.js(f"document.querySelector('{page} td.check').dataset.check") == "failed"
        problems = b.text(f"{page} table.problems")
        assert "file_altered" in problems and "report.html" in problems
        assert b.fonts_for(f"{page} td.check")[0]["familyName"] in cjk_fonts()
        _shot(b, tmp_path, "portal-6-tampered.png")


def test_an_exported_period_verifies_offline_and_tampering_is_found(site, tmp_path):
    done = _ebops("evidence", "export", site["name"], "--from", "2025-12-01", "--to", "2026-01-31",
                  "--dest", str(tmp_path), "--zip")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = tmp_path / f"{site['name']}_2025-12-01_2026-01-31"
    assert (tmp_path / f"{folder.name}.zip").stat().st_size > 0
    assert sorted(p.name for p in (folder / "bundles" / site["name"] / "holiday_precheck").rglob("manifest.json")) \
        == ["manifest.json"] * 2 and not (folder / "bundles" / site["name"] / "inspection").exists()
    ok = run_script(folder)                         # plain python3 -I, no venv, no ebill-ops
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: 2 bundles, 0 problem(s)" in ok.stdout and "signatures checked with SHA256:" in ok.stdout
    (folder / "bundles" / site["old"][1] / "report.html").write_text("<h1>节前巡检报告（改）</h1>", encoding="utf-8")
    bad = run_script(folder)
    assert bad.returncode == 1 and "file_altered" in bad.stdout and site["old"][1] in bad.stdout

    # The whole history: the store's tampered report travels into the export and is found there too,
    # and the second inspection's link to the first is checked.
    done = _ebops("evidence", "export", site["name"], "--from", "2025-01-01", "--to", "2099-12-31", "--dest", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    whole = run_script(tmp_path / f"{site['name']}_2025-01-01_2099-12-31")
    assert whole.returncode == 1 and "OK" not in whole.stdout.splitlines()[-1]
    problems = [line for line in whole.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1 and "file_altered" in problems[0] and site["tampered"] in problems[0], whole.stdout

    again = _ebops("evidence", "export", site["name"], "--from", "2025-12-01", "--to", "2026-01-31", "--dest", str(tmp_path))
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    wrong = _ebops("evidence", "export", site["name"], "--from", "2026-13-01", "--to", "2026-01-31", "--dest", str(tmp_path))
    assert wrong.returncode == 2 and "--from 2026-13-01: not a date" in wrong.stderr


def test_the_daily_deployment_rebuilds_the_portal_and_fails_on_a_failing_bundle(site):
    """The flow the deployment `evidence-portal-<site>` runs: the page is written first, then the
    run ends Failed because a bundle fails verification (as a duty stores evidence before failing)."""
    from flows.portal import evidence_portal

    store = open_store(site["cfg"])
    state = evidence_portal(site=site["name"], hours=24, return_state=True)
    assert state.is_failed()
    assert "1 bundle(s) of" in str(state.result(raise_on_failure=False))
    html = store.get(portal_key(site["name"])).decode()
    assert site["tampered"] in html and "校验未通过" in html and html.count('class="page bundle-page"') == 4


def test_without_a_browser_and_without_root_the_reason_is_given(monkeypatch):
    """Where Chromium is missing and cannot be installed, the browser test is SKIPPED with this
    reason (never run half, never counted as passed)."""
    from tests.integration import browser

    monkeypatch.setattr(browser.shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    exe, why = browser.find_chromium()
    assert exe is None
    assert why == ("chromium, a CJK font (fc-list :lang=zh) not installed, and not root with apt-get to install "
                   "chromium fonts-noto-cjk")
