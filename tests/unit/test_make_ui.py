"""`make ui`: the flow runs the served deployments start read the sandbox's secrets from the
environment `ebops ui` was started with (the demo site file refers to them by environment variable).
Found on 2026-12-02: every scheduled watch run under `make ui` failed with SecretMissing
(EBOPS_DEMO_S3_ACCESS_KEY) because the recipe started `ebops ui` without them."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_ui_starts_ebops_ui_in_the_shell_that_exported_the_sandbox_secrets():
    out = subprocess.run(["make", "-n", "ui"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    [line] = [ln for ln in out.splitlines() if "ebops ui demo" in ln]
    assert "ebops sandbox env" in line and line.index("ebops sandbox env") < line.index("ebops ui demo"), line
    assert line.lstrip().startswith("eval ")
