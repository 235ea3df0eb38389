"""A real browser for the tests: headless Chromium driven over the Chrome DevTools Protocol.

No new dependency: the `websockets` package Prefect already needs speaks to Chromium's
`--remote-debugging-port`. Clicks are real mouse events at the element's centre
(Input.dispatchMouseEvent), so a hidden or covered link cannot be "clicked" by the test.
Every wait is for a protocol event or message, with a deadline, never a sleep.

find_chromium() finds Debian's `chromium` (or another Chrome), and a CJK font; when either is
missing and the tests run as root with apt-get, it installs `chromium fonts-noto-cjk` once; else it
returns the reason, for pytest.skip.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PACKAGES = ("chromium", "fonts-noto-cjk")
START_DEADLINE_S = 120   # a cold Chromium on a loaded 2-core machine
STEP_DEADLINE_S = 60
_install_tried: dict[str, str] = {}


def cjk_fonts() -> list[str]:
    if not shutil.which("fc-list"):
        return []
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=60).stdout
    return sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()})


def _browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _install() -> str:
    """apt-get install the browser and font once per session; '' or why it failed."""
    if "result" in _install_tried:
        return _install_tried["result"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if done.returncode != 0:   # stale package lists: update once, then try again
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=900, env=env)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    _install_tried["result"] = "" if done.returncode == 0 else f"apt-get install {' '.join(PACKAGES)} failed: {done.stderr[-300:]}"
    return _install_tried["result"]


def find_chromium() -> tuple[str | None, str]:
    """(path of the browser, '') or (None, why the browser tests cannot run here)."""
    if _browser() and cjk_fonts():
        return _browser(), ""
    missing = ", ".join(x for x, ok in (("chromium", _browser()), ("a CJK font (fc-list :lang=zh)", cjk_fonts())) if not ok)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, f"{missing} not installed, and not root with apt-get to install {' '.join(PACKAGES)}"
    why = _install()
    if why:
        return None, why
    if not (_browser() and cjk_fonts()):
        return None, f"{missing} still missing after apt-get install {' '.join(PACKAGES)}"
    return _browser(), ""


class Browser:
    """One headless Chromium with one page, as a context manager."""

    def __init__(self, exe: str, profile: Path, width: int = 1280, height: int = 900):
        args = [exe, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", "--lang=zh-CN", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")   # Chromium refuses to run its sandbox as root
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._ready = threading.Event()
        self._endpoint = ""
        self._log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(START_DEADLINE_S) or not self._endpoint:
            self.close()
            raise RuntimeError("Chromium did not open its DevTools port: " + "".join(self._log[-20:]))
        port = self._endpoint.split(":")[2].split("/")[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=STEP_DEADLINE_S) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=STEP_DEADLINE_S)
        self._id = 0
        self.events: list[dict] = []
        for domain in ("Page", "DOM", "CSS", "Runtime"):
            self.send(f"{domain}.enable")

    def _drain(self) -> None:
        """Read Chromium's stderr to its end (a full pipe would stall it), noting the DevTools URL."""
        for line in self.proc.stderr:
            self._log.append(line)
            if "DevTools listening on " in line:
                self._endpoint = line.split("DevTools listening on ", 1)[1].strip()
                self._ready.set()
        self._ready.set()   # ended without it

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    # ---------------------------------------------------------------- protocol
    def send(self, method: str, **params) -> dict:
        self._id += 1
        mine = self._id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=STEP_DEADLINE_S))
            if msg.get("id") == mine:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str) -> dict:
        """The first `method` event since the last expect(), waiting for it if need be."""
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method:
                    return self.events.pop(i)
            msg = json.loads(self.ws.recv(timeout=STEP_DEADLINE_S))
            if "method" in msg:
                self.events.append(msg)

    def expect(self) -> None:
        """Forget earlier events: the next wait_event() is for what the next action causes."""
        self.events.clear()

    def js(self, expression: str):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:80]}: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    # ---------------------------------------------------------------- what a user does
    def open(self, url: str) -> None:
        self.expect()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def visible(self, selector: str) -> bool:
        return bool(self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false;"
                            f" const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0"
                            f" && getComputedStyle(e).visibility !== 'hidden'; }})()"))

    def click(self, selector: str, loads: bool = False) -> None:
        """A left click at the centre of the element's first line box (a link wrapped over two lines
        has a bounding box whose centre may be on neither); waits for the in-page navigation or,
        with `loads`, for the new document's load event."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
                      f" e.scrollIntoView({{block: 'center'}}); const r = e.getClientRects()[0];"
                      f" if (!r) return null;"
                      f" return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; }})()")
        if not box or box[2] <= 0 or box[3] <= 0:
            raise AssertionError(f"{selector}: not on the page or not visible, cannot be clicked")
        x, y = box[0], box[1]
        hit = self.js(f"(() => {{ const h = document.elementFromPoint({x}, {y}); const e = document.querySelector("
                      f"{json.dumps(selector)}); return !!h && (h === e || e.contains(h)); }})()")
        if not hit:
            raise AssertionError(f"{selector}: covered by another element at its centre")
        self.expect()
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)
        self.wait_event("Page.loadEventFired" if loads else "Page.navigatedWithinDocument")

    def text(self, selector: str = "body") -> str:
        return self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def fonts_for(self, selector: str) -> list[dict]:
        """The platform fonts Chromium rendered the element's text with (family, glyph count)."""
        root = self.send("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise AssertionError(f"{selector}: not on the page")
        return self.send("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        Path(path).write_bytes(data)
        return data
