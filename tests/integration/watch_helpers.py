"""What the watch's integration tests share: an alert receiver (apprise json://) on 127.0.0.1, and
stopping one e-bill function of an app-services process of the test's own (sandbox.app_services:
its health URL answers 503 until restarted), never the shared sandbox's."""
from __future__ import annotations

from pathlib import Path

from sandbox import app_services
from tests.receiver import Receiver  # noqa: F401 - the watch tests' alert receiver


def stop_function(app_root: Path, fn: str | None) -> None:
    """Stop function `fn` of the test's own app services (None: every function answers again)."""
    app_services.write_faults(app_root, {"health": {fn: 503}} if fn else {})
