"""The fleet inspection under the Prefect test harness, against the sandbox hospital:
good sites are inspected concurrently and keep their evidence, a broken one is an ERROR line,
and the fleet run ends Failed only after everything is stored."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from config.settings import load_site
from flows.fleet import FleetFailed, fleet_inspection, fleet_site_names, summary_markdown
from tasks.evidence.store import open_store
from tasks.evidence.verify import list_bundles


def test_all_sites_means_every_file_but_templates_broken_ones_included(tmp_path, monkeypatch):
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))
    for name in ("b-hosp", "a-hosp", "example-oracle", "broken"):
        (tmp_path / f"{name}.yaml").write_text("site: x\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    assert fleet_site_names() == ["a-hosp", "b-hosp", "broken"]


def test_summary_table_links_reports_and_escapes_reasons():
    table = [
        {"site": "h1", "name": "一院", "verdict": "OK", "verdict_zh": "正常", "findings": 0, "evidence_prefix": "h1/inspection/x/",
         "location": "store", "report_url": "http://s3/h1/report.html", "reason": ""},
        {"site": "h2", "name": "", "verdict": "ERROR", "verdict_zh": "无法检查", "findings": 0, "evidence_prefix": None,
         "location": None, "report_url": None, "reason": "站点文件无效：a | b\nc"},
    ]
    md = summary_markdown(table, "monthly")
    assert "[h1/inspection/x/](http://s3/h1/report.html)" in md
    assert "正常 1 家，无法检查 1 家" in md
    assert "站点文件无效：a / b c" in md  # a pipe or newline would break the table


@pytest.mark.sandbox
def test_fleet_runs_sites_concurrently_reports_errors_and_fails_after_evidence(prefect_harness, sites_dir, unused_port):
    good = [sites_dir("good1"), sites_dir("good2")]

    def dead_database(data):
        data["database"]["dsn"] = f"host=127.0.0.1 port={unused_port} dbname=ebill"

    dead = sites_dir("deaddb", dead_database)
    broken = Path(os.environ["EBOPS_SITES_DIR"]) / "broken.yaml"
    broken.write_text("site: broken\nname: 坏文件医院\ndatabase: [unclosed\n", encoding="utf-8")

    state = fleet_inspection(sites=[*good, dead, "broken"], kind="adhoc", max_sites=4, return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, FleetFailed)
    by_site = {e["site"]: e for e in exc.summary}
    assert list(by_site) == ["good1", "good2", "deaddb", "broken"]  # the order given

    # The broken file: an ERROR line naming the problem, nothing inspected.
    assert by_site["broken"]["verdict"] == "ERROR" and by_site["broken"]["evidence_prefix"] is None
    assert "站点文件无效" in by_site["broken"]["reason"]

    # The dead database: inspected, verdict ERROR, and its evidence is stored all the same.
    assert by_site["deaddb"]["verdict"] == "ERROR" and by_site["deaddb"]["evidence_prefix"]

    for name in [*good, dead]:
        entry = by_site[name]
        cfg = load_site(name)
        assert entry["location"] == "store", entry
        stored = [b.prefix for b in list_bundles(cfg.evidence, site=name, duty="inspection")]
        assert entry["evidence_prefix"] in stored
        result = json.loads(open_store(cfg.evidence).get(entry["evidence_prefix"] + "result.json"))
        assert result["verdict"] == entry["verdict"]  # the summary says what the evidence says

    # The two good sites were in flight at the same time (their intervals overlap).
    a, b = (by_site[n] for n in good)
    start_a, end_a, start_b, end_b = (datetime.fromisoformat(x) for x in
                                      (a["started_at"], a["finished_at"], b["started_at"], b["finished_at"]))
    assert start_a < end_b and start_b < end_a
