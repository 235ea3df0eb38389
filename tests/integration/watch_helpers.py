"""What the watch's integration tests share: an alert receiver (apprise json://) on 127.0.0.1, and
stopping one e-bill function of an app-services process of the test's own (sandbox.app_services:
its health URL answers 503 until restarted), never the shared sandbox's."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

from sandbox import app_services


class Receiver:
    """Collects what the watch's alerts post; `about(word)` the messages naming it."""

    def __init__(self):
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, word: str) -> list[str]:
        return [b["message"] for b in self.bodies if word in b["message"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def stop_function(app_root: Path, fn: str | None) -> None:
    """Stop function `fn` of the test's own app services (None: every function answers again)."""
    app_services.write_faults(app_root, {"health": {fn: 503}} if fn else {})
