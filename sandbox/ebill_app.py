"""The sandbox's e-bill application as the migration sees it: installed on app1 (and, with
`ebops sandbox up --with-target`, on app2), started and stopped by its own script over SSH, with
its datasource in a config file the cut-over rewrites.

On each app host, under opt/ebill/:
- conf/datasource.properties  host, port, database, user of the e-bill database (the password in
  conf/.dbpass, 0600: the application's own vault, never in the site file);
- conf/server.properties      the health port of this host's instance;
- bin/ebill-app.sh start|stop|status   the vendor's service script (what the site file names);
- run/ebill-app.pid           while it runs.

While it runs, the application issues a bill every `issue_interval_s` seconds into its datasource
(sandbox.traffic's vendor order: stock number, bill, items), so "no new bills arrive" is something
the freeze can observe, and `GET /health/<function>` answers 200 only if its datasource answers,
with the database it is connected to (`datasource`, `system_identifier`) and the newest bill.
`POST /test-bill/issue` and `POST /test-bill/red-flush` ({"bill_code", "bill_no"}) issue and
red-flush a test bill marked 迁移冒烟测试 (sandbox/smoke_bill.py): the migration's smoke test.

Run as `python -m sandbox.ebill_app --home <host dir>` (by the script, in its own session).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("issue", "red_flush", "query", "archive", "delivery", "reports", "admin")
ISSUE_INTERVAL_S = 2.0

SCRIPT = """#!/bin/sh
# The e-bill application's service script (sandbox copy): start | stop | status.
set -u
home=$(cd "$(dirname "$0")/../../.." && pwd)
pidf="$home/opt/ebill/run/ebill-app.pid"
alive() {{ [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }}
case "${{1:-status}}" in
start)
  if alive; then echo "ebill-app already running (pid $(cat "$pidf"))"; exit 0; fi
  rm -f "$pidf"
  mkdir -p "$home/opt/ebill/run" "$home/logs"
  cd {repo} && PYTHONPATH={repo} nohup setsid {python} -m sandbox.ebill_app --home "$home" \\
      >> "$home/logs/ebill-app-service.log" 2>&1 < /dev/null &
  i=0
  while [ ! -f "$pidf" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  if alive; then echo "ebill-app started (pid $(cat "$pidf"))"; exit 0; fi
  echo "ebill-app did not start; see $home/logs/ebill-app-service.log" >&2; exit 1;;
stop)
  if ! alive; then echo "ebill-app not running"; rm -f "$pidf"; exit 0; fi
  pid=$(cat "$pidf"); kill "$pid"
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  rm -f "$pidf"; echo "ebill-app stopped (pid $pid)";;
status)
  if alive; then echo "ebill-app running (pid $(cat "$pidf"))"; else echo "ebill-app stopped"; exit 3; fi;;
*) echo "usage: $0 start|stop|status" >&2; exit 2;;
esac
"""


def app_dir(host_home: Path) -> Path:
    return Path(host_home) / "opt" / "ebill"


def read_properties(path: Path) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def write_datasource(host_home: Path, host: str, port: int, database: str, user: str, password: str) -> Path:
    conf = app_dir(host_home) / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    pw = conf / ".dbpass"
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    path = conf / "datasource.properties"
    path.write_text(f"# the e-bill application's database (the cut-over rewrites host/port)\n"
                    f"ebill.datasource.host={host}\nebill.datasource.port={port}\n"
                    f"ebill.datasource.database={database}\nebill.datasource.user={user}\n"
                    f"ebill.datasource.password-file=conf/.dbpass\n", encoding="utf-8")
    return path


def install(host_home: Path, health_port: int, *, host: str, port: int, database: str, user: str,
            password: str) -> Path:
    """Install the application's script and config on one app host; returns the script."""
    d = app_dir(host_home)
    for sub in ("bin", "conf", "run"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "conf" / "server.properties").write_text(f"server.port={int(health_port)}\n"
                                                  f"ebill.issue-interval-s={ISSUE_INTERVAL_S}\n")
    # (re)written at every start: the database's port changes with each `sandbox up`
    write_datasource(host_home, host, port, database, user, password)
    script = d / "bin" / "ebill-app.sh"
    script.write_text(SCRIPT.format(repo=shlex.quote(str(REPO_ROOT)), python=shlex.quote(sys.executable)))
    script.chmod(0o755)
    return script


def pid_of(host_home: Path) -> int | None:
    try:
        return int((app_dir(host_home) / "run" / "ebill-app.pid").read_text().strip())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- the application process
def _conninfo(home: Path) -> tuple[str, str]:
    from psycopg.conninfo import make_conninfo

    ds = read_properties(app_dir(home) / "conf" / "datasource.properties")
    password = (app_dir(home) / ds["ebill.datasource.password-file"]).read_text().strip()
    label = f"{ds['ebill.datasource.host']}:{ds['ebill.datasource.port']}/{ds['ebill.datasource.database']}"
    return make_conninfo(host=ds["ebill.datasource.host"], port=ds["ebill.datasource.port"],
                         dbname=ds["ebill.datasource.database"], user=ds["ebill.datasource.user"],
                         password=password, connect_timeout=10), label


def _serve(home: Path) -> None:
    import psycopg

    from sandbox.app_services import JsonHandler
    from sandbox.traffic import Traffic

    conninfo, label = _conninfo(home)  # read once at start: a rewritten file takes effect on restart
    server_conf = read_properties(app_dir(home) / "conf" / "server.properties")
    port = int(server_conf["server.port"])
    interval = float(server_conf.get("ebill.issue-interval-s", ISSUE_INTERVAL_S))

    class Health(JsonHandler):
        def do_GET(self) -> None:  # noqa: N802
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "health" or parts[1] not in FUNCTIONS:
                return self._json(404, {"error": "not found"})
            try:
                with psycopg.connect(conninfo) as conn:
                    ident, newest = conn.execute(
                        "SELECT (SELECT system_identifier FROM pg_control_system())::text, "
                        "(SELECT MAX(ivc_datetime) FROM ebill.t_ebill_main)::text").fetchone()
                self._json(200, {"function": parts[1], "status": "UP", "datasource": label,
                                 "system_identifier": ident, "newest_bill": newest})
            except Exception as exc:  # noqa: BLE001 - the datasource is down: the function is DOWN
                self._json(503, {"function": parts[1], "status": "DOWN", "datasource": label, "error": str(exc)[:200]})

        def do_POST(self) -> None:  # noqa: N802
            """The test bill of a migration's smoke test (sandbox/smoke_bill.py): issue, then red-flush."""
            from sandbox import smoke_bill

            path = self.path.split("?", 1)[0].rstrip("/")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if path == "/test-bill/issue":
                    return self._json(200, {"result_code": "S0000", **smoke_bill.issue(conninfo)})
                if path == "/test-bill/red-flush":
                    return self._json(200, {"result_code": "S0000", **smoke_bill.red_flush(
                        conninfo, str(body.get("bill_code", "")), str(body.get("bill_no", "")))})
                return self._json(404, {"error": "not found"})
            except LookupError as exc:
                self._json(409, {"result_code": "E1002", "error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the datasource is down: the call fails
                self._json(503, {"result_code": "E9999", "error": str(exc)[:300]})

    srv = ThreadingHTTPServer(("127.0.0.1", port), Health)
    srv.daemon_threads = True
    traffic = Traffic(conninfo, interval_s=interval, log_calls=True)  # a system at work logs its interface calls
    traffic._thread.start()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    # ready: port bound. Written whole under another name and renamed: the service script waits for
    # the file and reads it at once, and an empty file read between create and write is "did not start"
    pid_tmp = app_dir(home) / "run" / "ebill-app.pid.tmp"
    pid_tmp.write_text(f"{os.getpid()}\n")
    os.replace(pid_tmp, app_dir(home) / "run" / "ebill-app.pid")
    print(f"ebill-app on 127.0.0.1:{port}, datasource {label}", flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    traffic._stop.set()
    traffic._thread.join(timeout=30)
    srv.shutdown()
    print(f"ebill-app stopped after issuing {traffic.issued} bills", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the sandbox e-bill application of one app host")
    ap.add_argument("--home", required=True, type=Path)
    _serve(ap.parse_args().home.resolve())
