"""Put the sandbox's servers and application services into a known state, for tests and demos:
new lines in a log, a rotated or truncated log, a failing e-bill function, a signing server whose
certificate is about to expire, certificate files on a host.

Each change is made the way it happens at a hospital (an appended line, logrotate's rename, a
copytruncate, a service answering 503), so the checks meet it through SSH, HTTP and TLS exactly as
they would there. Whoever makes a change undoes it: the fault setters take None to clear, and the
context managers clear on exit.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from sandbox import app_services


def host_path(root: Path, host: str, path_rel: str | Path) -> Path:
    """A path inside a host's tree (<root>/hosts/<host>/<path_rel>); refuses to leave the tree."""
    base = (Path(root) / "hosts" / host).resolve()
    p = (base / path_rel).resolve()
    if base not in p.parents:
        raise ValueError(f"{path_rel!r} is outside host {host}'s tree")
    return p


# ---------------------------------------------------------------- logs
def append_log_errors(root: Path, host: str, path_rel: str | Path, lines: Iterable[str]) -> Path:
    """Append lines as given (one per item, newline added when missing), as a running program does."""
    p = host_path(root, host, path_rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(line if line.endswith("\n") else line + "\n")
    return p


def rotate_log(root: Path, host: str, path_rel: str | Path, lines: Iterable[str] = ()) -> Path:
    """logrotate's default: rename the log to <log>.1 (replacing an older .1) and start a new file
    (a new inode) holding `lines`. Returns the rotated file's path."""
    p = host_path(root, host, path_rel)
    rotated = p.with_name(p.name + ".1")
    os.replace(p, rotated)
    p.touch()
    append_log_errors(root, host, path_rel, lines)
    return rotated


def truncate_log(root: Path, host: str, path_rel: str | Path, lines: Iterable[str] = ()) -> None:
    """logrotate's copytruncate: the same file (same inode) emptied in place, then `lines` written."""
    p = host_path(root, host, path_rel)
    with p.open("r+b") as f:
        f.truncate(0)
    append_log_errors(root, host, path_rel, lines)


# ---------------------------------------------------------------- application services
def _update_faults(root: Path, section: str | None, key: str, value) -> dict:
    faults = app_services.read_faults(root)
    target = faults.setdefault(section, {}) if section else faults
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
    if section and not target:
        faults.pop(section)
    app_services.write_faults(root, faults)
    return faults


def set_health_fault(root: Path, function: str, status_code: int | None) -> dict:
    """Make /health/<function> answer `status_code` (None: answer 200 again)."""
    if function not in app_services.FUNCTIONS:
        raise ValueError(f"unknown e-bill function {function!r}; one of {', '.join(app_services.FUNCTIONS)}")
    return _update_faults(root, "health", function, status_code)


def set_health_delay(root: Path, function: str, delay_ms: int | None) -> dict:
    """Make /health/<function> answer after `delay_ms` (None: at once)."""
    if function not in app_services.FUNCTIONS:
        raise ValueError(f"unknown e-bill function {function!r}")
    return _update_faults(root, "delay_ms", function, delay_ms)


def set_tls_cert_days(root: Path, days: float | None) -> dict:
    """Make the signing server present a certificate expiring in `days` (negative: expired;
    None: the default DEFAULT_TLS_DAYS-day certificate)."""
    return _update_faults(root, None, "tls_cert_days", days)


@contextmanager
def health_fault(root: Path, function: str, status_code: int) -> Iterator[None]:
    set_health_fault(root, function, status_code)
    try:
        yield
    finally:
        set_health_fault(root, function, None)


@contextmanager
def tls_cert_days(root: Path, days: float) -> Iterator[None]:
    set_tls_cert_days(root, days)
    try:
        yield
    finally:
        set_tls_cert_days(root, None)


# ---------------------------------------------------------------- certificate files
def write_certificate_file(root: Path, host: str, path_rel: str | Path, days: float, *,
                           der: bool = False, cn: str = "电子票据签名证书 sandbox") -> Path:
    """A certificate file on a host expiring in `days`, issued by a throwaway CA: PEM with the CA
    after the leaf (a chain file), or the leaf alone as DER. Tests use their own file names and
    remove them afterwards (remove_file)."""
    from cryptography.hazmat.primitives import serialization

    ca = app_services.make_certificate("沙箱演示医院 CA", 3650, ca=True)
    leaf, _ = app_services.make_certificate(cn, days, issuer=ca)
    p = host_path(root, host, path_rel)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(leaf.public_bytes(serialization.Encoding.DER) if der else app_services.pem(leaf, ca[0]))
    return p


def remove_file(root: Path, host: str, path_rel: str | Path) -> None:
    host_path(root, host, path_rel).unlink(missing_ok=True)
