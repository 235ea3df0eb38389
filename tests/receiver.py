"""A webhook receiver on 127.0.0.1 standing in for the WeCom/DingTalk group robot (apprise json://):
it collects the JSON bodies posted to it. Shared by the watch's unit and integration tests."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread


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
