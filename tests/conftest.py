"""Shared fixtures: one Prefect test harness and one sandbox hospital per test session.

The sandbox runs in a private directory (not the developer's .sandbox/), and the tests read it
through a copy of config/sites/demo.yaml whose variables file points there, exactly as a site
file points at a real hospital.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Before Prefect is imported anywhere: a private PREFECT_HOME and no analytics.
_PREFECT_HOME = tempfile.mkdtemp(prefix="ebops-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
# Removed when the session's process exits (each session made a new one that stayed in /tmp).
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    api = os.environ.get("EBOPS_TEST_PREFECT_API_URL")
    if api:
        # Developer shortcut: a Prefect server already running (the harness takes minutes to start
        # on a loaded 2-core machine); CI always uses the harness.
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api}):
            yield
        return
    with prefect_test_harness(server_startup_timeout=600):
        yield


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox hospital, started once for the session in a private directory and stopped after.

    Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to mode 0700 at each session.
    (As root the server's files live in a tree of their own under /tmp/ebops-0, see sandbox/postgres.py,
    so this directory's mode no longer matters to it; discard() removes that tree.)
    """
    from sandbox import manager, postgres

    reuse = os.environ.get("EBOPS_TEST_SANDBOX_DIR")
    if reuse:
        # Developer shortcut: reuse a sandbox already running there (started with
        # `EBOPS_SANDBOX_DIR=... ebops sandbox up --days 120 --bills-per-day 40`); it is left running.
        os.environ["EBOPS_SANDBOX_DIR"] = reuse
        if not all(manager.status().values()):
            pytest.fail(f"EBOPS_TEST_SANDBOX_DIR={reuse}: the sandbox there is not fully running ({manager.status()})")
        manager.export_credentials()
        yield {"root": Path(reuse), "state": manager.read_state()}
        return
    root = Path(tempfile.mkdtemp(prefix="ebops-sandbox-"))
    root.chmod(0o755)
    old = os.environ.get("EBOPS_SANDBOX_DIR")
    os.environ["EBOPS_SANDBOX_DIR"] = str(root)
    try:
        state = manager.up(days=120, bills_per_day=40)
        manager.export_credentials()
        yield {"root": root, "state": state}
    finally:
        manager.down()
        postgres.discard(root)
        shutil.rmtree(root, ignore_errors=True)
        if old is None:
            os.environ.pop("EBOPS_SANDBOX_DIR", None)
        else:
            os.environ["EBOPS_SANDBOX_DIR"] = old


@pytest.fixture()
def sites_dir(sandbox, tmp_path, monkeypatch):
    """A private sites folder holding the demo site wired to the session's sandbox.

    `make_site(name, **changes)` writes a variant (other thresholds, a broken host) for one test.
    """
    demo = yaml.safe_load((REPO / "config" / "sites" / "demo.yaml").read_text(encoding="utf-8"))
    demo["variables_from"] = str(sandbox["root"] / "site-vars.yaml")
    demo["evidence"]["outbox"] = str(tmp_path / "outbox")
    monkeypatch.setenv("EBOPS_SITES_DIR", str(tmp_path))

    def make_site(name: str = "demo", edit=None) -> str:
        data = yaml.safe_load(yaml.safe_dump(demo, allow_unicode=True))
        data["site"] = name
        if edit:
            edit(data)
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return name

    make_site("demo")
    return make_site


@pytest.fixture()
def approve_standing(sites_dir):
    """`approve_standing(name)`: record the site's standing approvals (fresh backup, backup
    verification) through the one public function, as `ebops sandbox up` does for the demo site:
    approved by the first of the site's approvers, requested by the tests' engineer."""
    from config.settings import load_site
    from tasks.approvals.standing import ensure_standing_approvals

    def approve(name: str = "demo") -> list:
        site = load_site(name)
        return ensure_standing_approvals(site, site.approvers[0].name, requested_by="测试工程师", run_id="test")

    return approve


@pytest.fixture()
def unused_port():
    """A port on 127.0.0.1 where nothing listens: a server that is down."""
    from sandbox.ports import free_port

    return free_port()
