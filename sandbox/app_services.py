"""The sandbox's e-bill application services on 127.0.0.1: the seven functions' health URLs and the
signing server's (签名服务器) TLS listener, in one small process.

- `GET /health/<function>` (issue, red_flush, query, archive, delivery, reports, admin) answers 200
  JSON, as a vendor's actuator-style health URL does.
- The TLS listener presents a self-signed certificate generated with `cryptography`, valid
  DEFAULT_TLS_DAYS days.
- Faults come from <root>/app_services/faults.json, read on every request or connection, so a test
  changes the service's behaviour without restarting it:
  {"health": {"archive": 503}, "delay_ms": {"query": 800}, "tls_cert_days": 10}
  `tls_cert_days` makes the listener present a certificate expiring that many days from now
  (negative: already expired); certificates are generated once per value and kept for the process.
- start() also writes the signing certificate file of host app1 (opt/ebill/cert/sign.pem: leaf,
  valid SIGN_FILE_DAYS days, followed by the sandbox CA that issued it).

Run as a separate process (`python -m sandbox.app_services --root R --health-port P --tls-port Q`),
started in its own session and stopped by PID, like sandbox.sshd.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sandbox.ports import free_port, pid_alive, port_open, start_server, stop_pid

FUNCTIONS = ("issue", "red_flush", "query", "archive", "delivery", "reports", "admin")
DEFAULT_TLS_DAYS = 400
SIGN_FILE_DAYS = 300
SIGN_FILE = Path("opt/ebill/cert/sign.pem")  # inside host app1's tree
SIGN_SERVER_CN = "sign.ebill.sandbox"
REPO_ROOT = Path(__file__).resolve().parents[1]


def service_dir(root: Path) -> Path:
    return Path(root) / "app_services"


def faults_file(root: Path) -> Path:
    return service_dir(root) / "faults.json"


def read_faults(root: Path) -> dict:
    try:
        data = json.loads(faults_file(root).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_faults(root: Path, faults: dict) -> None:
    """Atomic: the server reads the file while tests change it."""
    f = faults_file(root)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f".{f.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(faults, indent=1, sort_keys=True))
    os.replace(tmp, f)


# ---------------------------------------------------------------- certificates
def make_certificate(cn: str, days: float, *, issuer=None, now: datetime | None = None, ca: bool = False,
                     dns_name: str | None = None):
    """(certificate, private key): signed by `issuer` = (cert, key), or self-signed. Valid from a
    day before `now` (an expired one: for a year before its end) until `now` + days + 12 h, so a
    check made within 12 hours reads exactly `days` whole days left."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = now or datetime.now(timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())  # fast to generate, unlike RSA
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "沙箱演示医院"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    not_after = now + timedelta(days=days, hours=12)
    not_before = (now if not_after > now else not_after - timedelta(days=365)) - timedelta(days=1)
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(issuer_cert.subject if issuer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns_name:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(dns_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def pem(*certs) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_sign_file(root: Path, days: float = SIGN_FILE_DAYS) -> Path:
    """app1's signing certificate file: the leaf first, then the CA that issued it."""
    ca = make_certificate("沙箱演示医院 CA", 3650, ca=True)
    leaf, _ = make_certificate("电子票据签名证书 sandbox", days, issuer=ca)
    path = Path(root) / "hosts" / "app1" / SIGN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem(leaf, ca[0]))
    return path


# ---------------------------------------------------------------- the component contract
def _state_file(root: Path) -> Path:
    return service_dir(root) / "state.json"


def is_running(state: dict) -> bool:
    return bool(state) and pid_alive(state.get("pid")) and port_open(state.get("health_port", 0)) \
        and port_open(state.get("tls_port", 0))


def start(root: Path, creds: dict[str, str] | None = None) -> dict:
    """Start the services (or return the state of those already running)."""
    root = Path(root).resolve()
    sf = _state_file(root)
    if sf.exists():
        state = json.loads(sf.read_text())
        if is_running(state):
            return state
    service_dir(root).mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    if not faults_file(root).exists():
        write_faults(root, {})
    write_sign_file(root)
    health_port = free_port()
    tls_port = free_port()
    while tls_port == health_port:
        tls_port = free_port()
    log_path = root / "logs" / "app_services.log"
    cmd = [sys.executable, "-m", "sandbox.app_services", "--root", str(root),
           "--health-port", str(health_port), "--tls-port", str(tls_port)]
    pid = start_server(cmd, REPO_ROOT, log_path, [health_port, tls_port], 60, "sandbox app services")
    state = {"pid": pid, "health_port": health_port, "tls_port": tls_port,
             "faults": str(faults_file(root)), "log": str(log_path)}
    sf.write_text(json.dumps(state, indent=2))
    return state


def stop(state: dict) -> None:
    if state and state.get("pid"):
        stop_pid(state["pid"])


# ---------------------------------------------------------------- the server process
class JsonHandler(BaseHTTPRequestHandler):
    """A sandbox HTTP service's handler: JSON answers, requests logged to the service's log."""
    server_version = "ebill-sandbox/1.0"

    def _json(self, code: int, body: dict) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {fmt % args}\n")


class _Handler(JsonHandler):
    root: Path


class _HealthHandler(_Handler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] != "health" or parts[1] not in FUNCTIONS:
            self._json(404, {"error": "not found", "functions": list(FUNCTIONS)})
            return
        fn = parts[1]
        faults = read_faults(self.root)
        delay = (faults.get("delay_ms") or {}).get(fn)
        if delay:
            time.sleep(float(delay) / 1000)  # the simulated slowness of this function
        code = int((faults.get("health") or {}).get(fn) or 200)
        self._json(code, {"function": fn, "status": "UP" if code < 400 else "DOWN",
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds")})


class _SignHandler(_Handler):
    def do_GET(self) -> None:  # noqa: N802
        self._json(200, {"service": "sign-server", "status": "UP"})


class _TlsServer(ThreadingHTTPServer):
    """Wraps each accepted connection with the context for the certificate faults.json asks for,
    so the presented certificate changes without a restart. The handshake happens in the handler
    thread (finish_request), not in the accept loop, where a silent client would block everyone."""

    def __init__(self, addr, handler, root: Path):
        super().__init__(addr, handler)
        self.root = root
        self._contexts: dict[float, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    def context(self) -> ssl.SSLContext:
        wanted = read_faults(self.root).get("tls_cert_days")
        days = float(DEFAULT_TLS_DAYS if wanted is None else wanted)
        with self._lock:
            if days not in self._contexts:
                from cryptography.hazmat.primitives import serialization

                cert, key = make_certificate(SIGN_SERVER_CN, days, dns_name=SIGN_SERVER_CN)
                tls_dir = service_dir(self.root) / "tls"
                tls_dir.mkdir(parents=True, exist_ok=True)
                cert_path, key_path = tls_dir / f"sign-server-{days:g}d.pem", tls_dir / f"sign-server-{days:g}d.key"
                cert_path.write_bytes(pem(cert))
                _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(cert_path, key_path)
                self._contexts[days] = ctx
            return self._contexts[days]

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address) -> None:
        request.settimeout(10)
        request.do_handshake()
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        # A client that reads the certificate and hangs up is what the inspection does: not an error.
        sys.stderr.write(f"tls connection from {client_address[0]} ended: {sys.exc_info()[1]!r}\n")


def _serve(root: Path, health_port: int, tls_port: int) -> None:
    handler_root = {"root": root}
    health = ThreadingHTTPServer(("127.0.0.1", health_port), type("H", (_HealthHandler,), handler_root))
    tls = _TlsServer(("127.0.0.1", tls_port), type("S", (_SignHandler,), handler_root), root)
    tls.context()  # the default certificate exists before the port opens
    for srv in (health, tls):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"sandbox app services: health on 127.0.0.1:{health_port}, sign server (TLS) on 127.0.0.1:{tls_port}",
          flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    for srv in (health, tls):
        srv.shutdown()
        srv.server_close()
    print("sandbox app services: stopped", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="sandbox e-bill health URLs and signing-server TLS listener")
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--health-port", required=True, type=int)
    ap.add_argument("--tls-port", required=True, type=int)
    a = ap.parse_args()
    _serve(a.root.resolve(), a.health_port, a.tls_port)
