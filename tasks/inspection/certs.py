"""CA / signing certificates: days to expiry (MZ 二.2), from files on the servers and from TLS endpoints.

An expired signing certificate stops every e-bill from being signed, so the check must read the
expiry of exactly the certificates that are already broken: TLS endpoints are contacted without
verifying their certificate (it may be expired, self-signed or issued by the hospital's own CA).
"""
from __future__ import annotations

import base64
import hashlib
import math
import socket
import ssl
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from config.hosts import HostConfig
from config.settings import Site, Thresholds, TlsEndpoint
from tasks.connect.ssh import HostPool
from tasks.core.check_task import check_task, retry_pending
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, error_result, utcnow

CHECK, TITLE = "certificate_expiry", "证书有效期"
TLS_TIMEOUT_S = 10
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class CertInfo:
    subject: str
    subject_cn: str
    issuer: str
    issuer_cn: str
    serial: str
    not_before: datetime
    not_after: datetime
    sha256: str

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def load_certificate(data: bytes) -> x509.Certificate:
    """The first certificate of a PEM file (a chain lists the leaf first) or a DER file."""
    if _PEM_BEGIN in data:
        # Only the first block: a chain file's CA certificates usually outlive the leaf.
        start = data.index(_PEM_BEGIN)
        end = data.find(b"-----END CERTIFICATE-----", start)
        if end < 0:
            raise ValueError("PEM certificate block has no END line")
        return x509.load_pem_x509_certificate(data[start:end + len(b"-----END CERTIFICATE-----")] + b"\n")
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM or DER X.509 certificate ({exc})") from None


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else name.rfc4514_string() or "（空）"


def cert_info(cert: x509.Certificate) -> CertInfo:
    return CertInfo(
        subject=cert.subject.rfc4514_string(), subject_cn=_cn(cert.subject),
        issuer=cert.issuer.rfc4514_string(), issuer_cn=_cn(cert.issuer),
        serial=f"{cert.serial_number:x}", not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest())


def days_to_expiry(not_after: datetime, now: datetime) -> int:
    """Whole days left (floor: 14.9 days left is 14, under a 15-day limit); negative once expired."""
    return math.floor((not_after - now).total_seconds() / 86400)


def grade_days(info: CertInfo, now: datetime, th: Thresholds) -> tuple[int, Status, str]:
    """(days left, status, what is wrong in Chinese or "")."""
    days = days_to_expiry(info.not_after, now)
    if info.not_after <= now:
        return days, Status.FAIL, f"证书已过期 {-days} 天"
    if info.not_before > now:
        # Clients refuse a certificate that is not valid yet just as they refuse an expired one.
        return days, Status.FAIL, f"证书尚未生效（生效时间 {_local(info.not_before)}）"
    if days < th.cert_fail_days:
        return days, Status.FAIL, f"剩余 {days} 天，少于 {th.cert_fail_days} 天"
    if days < th.cert_warn_days:
        return days, Status.WARN, f"剩余 {days} 天，少于 {th.cert_warn_days} 天，请安排更换"
    return days, Status.OK, f"剩余 {days} 天"


def _local(t: datetime) -> str:
    return t.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _threshold(th: Thresholds) -> str:
    return f"警告 < {th.cert_warn_days} 天，异常 < {th.cert_fail_days} 天或已过期"


def expiry_result(info: CertInfo, now: datetime, th: Thresholds, *, site: str, target: str,
                  host: str | None, started_at: datetime, source: str) -> CheckResult:
    days, status, verdict = grade_days(info, now, th)
    reason = (f"{verdict}；主体 CN={info.subject_cn}，颁发者 CN={info.issuer_cn}"
              f"{'（自签名）' if info.self_signed else ''}，到期时间 {_local(info.not_after)}（北京时间）")
    raw = (f"source: {source}\nsubject: {info.subject}\nissuer: {info.issuer}\nserial: {info.serial}\n"
           f"not_before: {info.not_before.isoformat()}\nnot_after: {info.not_after.isoformat()}\n"
           f"sha256: {info.sha256}")
    return CheckResult(check=CHECK, title=TITLE, site=site, host=host, target=target, value=days, unit="天",
                       threshold=_threshold(th), status=status, reason=reason, raw=raw,
                       code=Code.OK if status is Status.OK else Code.CERT_EXPIRED if info.not_after <= now
                       else Code.CERT_NOT_YET_VALID if info.not_before > now else Code.CERT_EXPIRING,
                       started_at=started_at, finished_at=utcnow())


# ---------------------------------------------------------------- files on the servers
@check_task("certificate_files", error_fields=None)  # per-certificate ERROR records; a dropped connection is retried
def certificate_files(site_id: str, host: HostConfig, pool: HostPool, th: Thresholds,
                      now: datetime | None = None) -> list[CheckResult]:
    """Expiry of each certificate file listed for `host`, read over SSH."""
    started = utcnow()
    now = now or datetime.now(timezone.utc)
    base = dict(check=CHECK, title=TITLE, site=site_id, host=host.name)
    if not host.certificates:
        return []
    try:
        session = pool.get(host)
        session.connect()
    except Exception as exc:  # noqa: BLE001 - unreachable host: each certificate is ERROR, run goes on
        if retry_pending(exc):
            raise
        return [error_result(exc, started_at=started, target=f"{c.name} {c.path}", **base) for c in host.certificates]
    out = []
    for c in host.certificates:
        target = f"{c.name} {c.path}"
        try:
            # base64 so that a DER file's bytes arrive intact through the text channel.
            res = session.run(["base64", "-w0", c.path])
            if not res.ok:
                raise FileNotFoundError(f"cannot read {c.path} on {host.name}: "
                                        f"{(res.stderr or res.stdout).strip()[:300] or res.exit_code}")
            info = cert_info(load_certificate(base64.b64decode(res.stdout.strip())))
        except Exception as exc:  # noqa: BLE001 - missing or unparsable file: this one is ERROR
            if retry_pending(exc):
                raise
            out.append(error_result(exc, started_at=started, target=target, **base))
            continue
        out.append(expiry_result(info, now, th, site=site_id, target=target, host=host.name,
                                 started_at=started, source=f"{host.name}:{c.path}"))
    return out


# ---------------------------------------------------------------- TLS endpoints
def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Only the certificate is read, nothing is sent: also accept the old protocol versions and
    # ciphers hospital signing servers still run, or their expiry could not be read at all.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated for use, fine for reading
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pass
    return ctx


def peer_certificate(address: str, port: int, server_name: str | None = None,
                     timeout: float = TLS_TIMEOUT_S) -> bytes:
    """The DER certificate the endpoint presents, unverified."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        with _unverified_context().wrap_socket(sock, server_hostname=server_name or address) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{address}:{port} presented no certificate")
    return der


def _endpoint(site: Site, ep: TlsEndpoint, th: Thresholds, now: datetime) -> CheckResult:
    started = utcnow()
    target = f"{ep.name} {ep.address}:{ep.port}"
    try:
        info = cert_info(load_certificate(peer_certificate(ep.address, ep.port, ep.server_name)))
    except Exception as exc:  # noqa: BLE001 - refused, timeout, not TLS: ERROR for this endpoint
        return error_result(exc, started_at=started, target=target, check=CHECK, title=TITLE, site=site.site)
    return expiry_result(info, now, th, site=site.site, target=target, host=None, started_at=started,
                         source=f"tls://{ep.address}:{ep.port}" + (f" (SNI {ep.server_name})" if ep.server_name else ""))


# No retry: an endpoint that does not answer now is the finding (per endpoint, below).
@check_task("tls_endpoints", error_fields=None, retries=0)
def tls_endpoints(site: Site, th: Thresholds, now: datetime | None = None) -> list[CheckResult]:
    """Expiry of the certificate each TLS endpoint of the site presents (in the site file's order)."""
    now = now or datetime.now(timezone.utc)
    if not site.tls_endpoints:
        return []
    # Concurrent: a firewalled endpoint costs its full timeout, the others need not wait for it.
    with ThreadPoolExecutor(max_workers=min(4, len(site.tls_endpoints))) as ex:
        return list(ex.map(lambda ep: _endpoint(site, ep, th, now), site.tls_endpoints))
