"""The report link a run hands out (console, Prefect artifact, group robots) is a presigned S3 URL:
it names the access key id and works for whoever holds it until it expires, so it lives hours
(evidence.link_hours, default 12), not the week it used to. Against the sandbox's real S3."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import ValidationError

from config.evidence import EvidenceStoreConfig
from config.settings import load_site
from tasks.evidence.bundle import BundleWriter

pytestmark = pytest.mark.sandbox


def _expires(url: str) -> int:
    return int(parse_qs(urlparse(url).query)["X-Amz-Expires"][0])


@pytest.mark.parametrize("hours, seconds", [(None, 12 * 3600), (2, 2 * 3600)])
def test_a_runs_report_link_expires_after_the_configured_hours(sites_dir, tmp_path, hours, seconds):
    cfg = load_site("demo").evidence
    if hours is not None:
        cfg = cfg.model_copy(update={"link_hours": hours})
    site = f"links{secrets.token_hex(4)}"  # a chain of its own in the shared bucket
    w = BundleWriter(site, "inspection", "2026-12", "run-links", datetime.now(timezone.utc), cfg, tmp_path / "outbox")
    w.add_file("report.html", "<html><body>巡检报告</body></html>")
    bundle = w.finish("OK", datetime.now(timezone.utc), approvals=[])
    assert bundle.location == "store" and bundle.report_url, bundle
    assert _expires(bundle.report_url) == seconds


def _store(**extra) -> EvidenceStoreConfig:
    return EvidenceStoreConfig.model_validate({"endpoint": "127.0.0.1:9000", "bucket": "ebill-evidence",
                                               "access_key": {"env": "A"}, "secret_key": {"env": "B"}, **extra})


@pytest.mark.parametrize("hours, bound", [(0, "greater_than_equal"), (-1, "greater_than_equal"), (169, "less_than_equal")])
def test_a_link_lifetime_out_of_bounds_is_refused(hours, bound):
    assert _store().link_hours == 12 and _store(link_hours=168).link_hours == 168
    with pytest.raises(ValidationError) as err:
        _store(link_hours=hours)
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [(("link_hours",), bound)]
