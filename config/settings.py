"""Site files (config/sites/*.yaml) and the models that validate them.

A site file describes one hospital: its e-bill database, its servers, where evidence goes, the
thresholds of the inspection catalogue and who is alerted. Secrets appear only by reference
(`{env: NAME}` or `{prefect_secret: NAME}`): QH 9.1.1 forbids passwords in files, so a literal
password is refused, not just discouraged.

`${name}` placeholders are filled from the YAML file named by `variables_from` (relative to the
site file). The sandbox writes such a file with its free ports and paths; a real site can use one
for values that differ between its environments. `variables_from` itself may name environment
variables, `${env:NAME}` or `${env:NAME:-default}` (the demo site follows EBOPS_SANDBOX_DIR so).
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from config.approvals import ApprovalSettings, Approver, check_approvers
from config.backup_verification import BackupVerificationConfig
from config.year_end import YearEndDatabase
from config.migration import MigrationConfig
# re-exported: callers import secrets from the site-file module
from config.secrets import EnvSecret, PrefectSecret, SecretMissing, SecretRef, refuse_password_in_dsn, resolve_secret  # noqa: F401

CONFIG_DIR = Path(__file__).resolve().parent
SITES_DIR = CONFIG_DIR / "sites"
SQL_DIR = CONFIG_DIR / "sql"


def sites_dir() -> Path:
    return Path(os.environ.get("EBOPS_SITES_DIR", SITES_DIR))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- database
class DatabaseConfig(_Strict):
    dialect: Literal["oracle", "postgresql"]
    dsn: str = Field(description="oracle: host:port/service_name; postgresql: a libpq conninfo without password")
    user: str
    password: SecretRef
    schema_name: str | None = Field(default=None, alias="schema", description="where the canonical views live")
    connect_timeout_s: int = Field(default=10, ge=1, le=300)
    statement_timeout_s: int = Field(default=60, ge=1, le=3600, description=(
        "deadline of each query of the checks, and of any wait for a lock in every session "
        "(PostgreSQL statement_timeout and lock_timeout, Oracle call_timeout): a query blocked by "
        "another session's lock gives ERROR instead of stalling the run"))
    quality_statement_timeout_s: int = Field(default=900, ge=1, le=86400, description=(
        "deadline of each data-quality query (they scan a whole period); lock waits are still cut "
        "at statement_timeout_s"))

    _no_password_in_dsn = field_validator("dsn")(refuse_password_in_dsn)


# ---------------------------------------------------------------- hosts
HostRole = Literal["database", "application", "file", "backup", "signing", "frontend"]


class LogFile(_Strict):
    path: str
    kind: Literal["oracle_alert", "postgresql", "application", "system"] = "application"
    error_patterns: list[str] = Field(default_factory=lambda: ["ERROR", "Exception", "ORA-"])
    critical_patterns: list[str] = Field(default_factory=list)


class BackupConfig(_Strict):
    directory: str = Field(description="where backup files are written")
    log: str | None = Field(default=None, description="the backup job's log: one line per run")
    pattern: str = Field(default="*", description="glob of backup files in `directory`")
    command: list[str] | None = Field(default=None, description="argv that takes a backup now (quoted per argument)")
    # Running `command` needs a recorded standing approval of its plan (`ebops approve`,
    # tasks/approvals/standing.py); without one the pre-holiday check only plans the backup.
    command_timeout_s: int = Field(default=3600, ge=10, le=86400)


class CertificateFile(_Strict):
    name: str = Field(description="what the certificate is for, as the report shows it (e.g. 签名证书)")
    path: str = Field(description="path of the PEM or DER file on the host")


class HostConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    role: HostRole
    address: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    key_file: str | None = Field(default=None, description="path of the private key (the key stays on the worker)")
    key: SecretRef | None = Field(default=None, description="the private key itself, by reference")
    key_passphrase: SecretRef | None = None
    known_hosts: str = Field(description="known_hosts file the host key is checked against")
    connect_timeout_s: int = Field(default=30, ge=1, le=600, description=(
        "seconds allowed for each step of reaching the host: TCP connect, banner, login, opening a "
        "command channel (a busy server answers slowly; this is not the command's own time)"))
    command_timeout_s: int = Field(default=60, ge=1, le=86400)
    mounts: list[str] = Field(default_factory=list)
    logs: list[LogFile] = Field(default_factory=list)
    backup: BackupConfig | None = None
    layout_files: str | None = Field(default=None, description="directory of e-bill layout (版式) files")
    certificates: list["CertificateFile"] = Field(default_factory=list, description="certificate files on this host (PEM or DER)")


    @model_validator(mode="after")
    def _one_key(self) -> "HostConfig":
        if not self.key_file and not self.key:
            raise ValueError("give the SSH private key as `key_file` (a path) or `key` (by reference)")
        return self


# ---------------------------------------------------------------- evidence store
class Retention(_Strict):
    mode: Literal["COMPLIANCE", "GOVERNANCE", "none"] = "COMPLIANCE"
    days: int = Field(default=3650, ge=1, le=36500)


class ManifestSigning(_Strict):
    """The worker's Ed25519 key that signs every manifest (tasks/evidence/sign.py). The private key
    only by reference; an auditor's copy of the site file may leave it out and still verify."""

    private_key: SecretRef | None = Field(default=None, description="PEM, or base64 of the 32-byte seed")
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    previous_public_keys: list[str] = Field(default_factory=list, description="retired keys that signed older bundles")

    @field_validator("public_key", "previous_public_keys")
    @classmethod
    def _raw_ed25519(cls, v):
        import base64
        import binascii

        for key in [v] if isinstance(v, str) else v:
            try:
                ok = len(base64.b64decode(key, validate=True)) == 32
            except (binascii.Error, ValueError):
                ok = False
            if not ok:
                raise ValueError("must be base64 of a raw 32-byte Ed25519 public key "
                                 "(`ebops evidence public-key --env NAME` prints it for the worker's key)")
        return v


class EvidenceStoreConfig(_Strict):
    endpoint: str = Field(description="host:port of the S3 API (MinIO)")
    secure: bool = True
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str | None = None
    access_key: SecretRef
    secret_key: SecretRef
    retention: Retention = Field(default_factory=Retention)
    outbox: str = Field(default=".ebops/outbox", description="local folder where bundles wait while the store is down")
    # A presigned link carries the access key id and works for anyone who has it until it expires:
    # the links a run prints, puts into its Prefect artifact and sends to the group robots live hours.
    link_hours: int = Field(default=12, ge=1, le=168, description="lifetime of the report links a run hands out, hours")
    signing: ManifestSigning | None = None
    allow_unsigned: bool = Field(default=False, description="store unsigned manifests without a FAIL finding "
                                 "(verify still reports them as unsigned)")



# ---------------------------------------------------------------- thresholds (docs/duties.md defaults)
class Thresholds(_Strict):
    # Bounds on every number: a percentage outside 0-100 or a negative age is a typo, never a wish,
    # and silently accepted it turns a check into one that can never (or always) fire.
    disk_warn_pct: float = Field(default=80, ge=0, le=100)
    disk_fail_pct: float = Field(default=90, ge=0, le=100)
    tablespace_warn_pct: float = Field(default=80, ge=0, le=100)
    tablespace_fail_pct: float = Field(default=90, ge=0, le=100)
    backup_max_age_hours: float = Field(default=26, gt=0, le=24 * 366)
    interface_success_warn_pct: float = Field(default=99.5, ge=0, le=100)
    interface_success_fail_pct: float = Field(default=98, ge=0, le=100)
    interface_latency_warn_ms: float = Field(default=500, gt=0, le=600_000)
    interface_window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    backlog_hours: float = Field(default=24, gt=0, le=24 * 366)
    delivery_success_warn_pct: float = Field(default=99, ge=0, le=100)
    stock_min_days: float = Field(default=7, ge=0, le=366)
    cert_warn_days: int = Field(default=60, ge=0, le=3660)
    cert_fail_days: int = Field(default=15, ge=0, le=3660)
    calendar_months_ahead: int = Field(default=12, ge=1, le=36)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> "Thresholds":
        # warn strictly before fail: with equal values the WARN stage could never be seen
        for name in ("disk", "tablespace"):
            if getattr(self, f"{name}_warn_pct") >= getattr(self, f"{name}_fail_pct"):
                raise ValueError(f"{name}_warn_pct must be below {name}_fail_pct")
        if self.interface_success_warn_pct <= self.interface_success_fail_pct:
            raise ValueError("interface_success_warn_pct must be above interface_success_fail_pct "
                             "(a success rate warns before it fails)")
        if self.cert_warn_days <= self.cert_fail_days:
            raise ValueError("cert_warn_days must be more than cert_fail_days")
        return self


# The e-bill functions MZ 一.11-16 asks to be checked, in the report's order.
EbillFunction = Literal["issue", "red_flush", "query", "archive", "delivery", "reports", "admin"]
EBILL_FUNCTIONS_ZH: dict[str, str] = {
    "issue": "开票", "red_flush": "冲红", "query": "查询", "archive": "归档", "delivery": "交付",
    "reports": "报表", "admin": "系统管理",
}


class HealthConfig(_Strict):
    urls: dict[EbillFunction, str] = Field(description="one health URL per e-bill function; GET must answer 2xx")
    timeout_s: float = Field(default=10, gt=0, le=300)
    ca_file: str | None = Field(default=None, description="CA bundle for https URLs (the hospital's own CA)")


class TlsEndpoint(_Strict):
    name: str = Field(description="what the endpoint is (e.g. 签名服务器, 电子票据门户)")
    address: str
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(default=None, description="SNI name when it differs from address")


class DutyEntry(_Strict):
    """One line of the holiday duty roster (节假日值班表) the pre-holiday report lists."""
    date_from: date
    date_to: date
    engineer: str
    role: str = "驻场工程师"
    phone: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> "DutyEntry":
        if self.date_to < self.date_from:
            raise ValueError("date_to is before date_from")
        return self


class NotifyTarget(_Strict):
    name: str
    url: SecretRef = Field(description="apprise URL (wecombot://, dingtalk://): it carries the robot key")
    min_status: Literal["WARN", "FAIL", "ERROR"] = "WARN"



class WatchConfig(_Strict):
    """The interface watch (接口运维, flows/watch.py): how often it probes and how a day is judged."""
    interval_minutes: int = Field(default=5, ge=1, le=60, description="one probe cycle every N minutes")
    availability_min_pct: float = Field(default=99, ge=0, le=100, description="a function's day below it is a FAIL (MZ 一.18)")
    coverage_warn_pct: float = Field(default=90, ge=0, le=100, description="a day probed less than this share of the plan is a WARN")


# ---------------------------------------------------------------- year-end (技术年结)
class YearEndFiles(_Strict):
    """The file server's part of the year-end duty: layout (版式) files older than two full years
    packed per month into archives, verified member by member before any original is removed."""

    host: str = Field(description="name of the file host in `hosts:` (reached over SSH)")
    layout_root: str = Field(description="absolute path of the layout files on that host, laid out <yyyy>/<mm>/")
    archive_dir: str = Field(description="absolute path on that host where the month archives and their "
                             "SHA-256 member lists are written")
    archive_format: Literal["tar.gz", "zip"] = "tar.gz"
    remove_originals: bool = Field(default=False, description=(
        "remove a month's originals after its archive was re-read and every member verified; "
        "only where the hospital's records policy allows it (default: keep them)"))
    keep_full_years: int = Field(default=2, ge=1, le=30, description=(
        "months of this many full years before the year's end stay unpacked (QH row 14: older than 2 years)"))
    command_timeout_s: int = Field(default=3600, ge=10, le=86400, description="deadline of one month's packing or removal")
    tool_dirs: list[str] = Field(default_factory=lambda: ["/usr/sbin", "/sbin", "/usr/bin", "/bin"], description=(
        "where the fragmentation tools (e4defrag, xfs_db, filefrag) are looked for on the host: they live in "
        "sbin, which a maintenance account's PATH often lacks"))

    @field_validator("layout_root", "archive_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or "\n" in v:
            raise ValueError("must be an absolute path on the file host (starting with /)")
        return v.rstrip("/") or "/"


class YearEndConfig(_Strict):
    """`year_end:` of a site file: the database part, the file server's part, and the gate both share."""

    database: YearEndDatabase | None = None
    files: YearEndFiles | None = None
    max_backup_verification_age_days: int = Field(default=100, ge=1, le=400, description=(
        "execution needs a PASSED backup verification of the site at most this old"))
    backup_host: str | None = Field(default=None, description="host (hosts[].name) whose backup.command takes the "
                                                              "fresh backup before execution; default: the database host")


class Site(_Strict):
    site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="short id used in evidence paths")
    name: str = Field(description="the hospital's name as reports show it")
    timezone: str = "Asia/Shanghai"
    variables_from: str | None = None
    database: DatabaseConfig
    hosts: list[HostConfig] = Field(default_factory=list)
    evidence: EvidenceStoreConfig
    thresholds: Thresholds = Field(default_factory=Thresholds)
    notify: list[NotifyTarget] = Field(default_factory=list)
    health: HealthConfig | None = None
    tls_endpoints: list[TlsEndpoint] = Field(default_factory=list)
    interface_targets: list[str] = Field(default_factory=lambda: ["his_api", "sign_server", "finance", "delivery"])
    duty_roster: list[DutyEntry] = Field(default_factory=list)
    precheck_workdays_before: int = Field(default=2, ge=0, le=10,
                                          description="the pre-holiday check runs this many workdays before a ≥3-day holiday")
    state_dir: str | None = Field(default=None, description="where per-run state (log positions) is kept; "
                                  "default: beside the outbox, <outbox>/../../state/<site>")
    backup_verification: BackupVerificationConfig | None = None
    migration: MigrationConfig | None = None
    watch: WatchConfig = Field(default_factory=WatchConfig)
    approvers: list[Approver] = Field(default_factory=list, description="who may approve a risky duty's plan (QH 9.1.2)")
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    year_end: YearEndConfig | None = None

    # Where the file was read from (not part of the YAML).
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"unknown timezone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _unique_hosts(self) -> "Site":
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        check_approvers(self.approvers, self.approval, len(self.notify))
        files = self.year_end.files if self.year_end else None
        if files is not None and files.host not in names:
            raise ValueError(f"year_end.files.host {files.host!r} is not one of the hosts ({', '.join(names) or 'none'})")
        if self.migration is not None:
            # the new servers are hosts like the others (same model), named in migration.hosts
            self.migration.hosts = [h if isinstance(h, HostConfig) else HostConfig.model_validate(h)
                                    for h in self.migration.hosts]
            known = set(names) | {h.name for h in self.migration.hosts}
            m = self.migration
            named = [("migration.source.db_host", m.source.db_host), ("migration.source.app_host", m.source.app_host),
                     ("migration.target.db_host", m.target.db_host), ("migration.target.app_host", m.target.app_host)]
            named += [(f"migration.cutover_steps[{i}].host", c.host) for i, c in enumerate(m.cutover_steps)]
            named += [(f"migration.rollback_steps[{i}].host", c.host) for i, c in enumerate(m.rollback_steps)]
            named += [(f"migration.after_hosts[{i}]", h) for i, h in enumerate(m.after_hosts)]
            bad = [f"{where}: {name}" for where, name in named if name not in known]
            if bad:
                raise ValueError("unknown host (not in hosts: nor migration.hosts:): " + "; ".join(bad))
        return self

    def host(self, name: str) -> HostConfig:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"site {self.site} has no host {name!r}")

    def any_host(self, name: str) -> HostConfig:
        """A host of the site or one of the migration's new servers."""
        for h in self.hosts + (self.migration.hosts if self.migration else []):
            if h.name == name:
                return h
        raise KeyError(f"site {self.site} has no host {name!r} (hosts: or migration.hosts:)")

    def hosts_with_role(self, role: str) -> list[HostConfig]:
        return [h for h in self.hosts if h.role == role]


from config.problems import ConfigProblem, SiteConfigError, problems_from_validation, read_yaml, substitute  # noqa: E402


def load_site(name_or_path: str | Path) -> Site:
    """Read and validate one site file; raise SiteConfigError listing every problem."""
    path = Path(name_or_path)
    if not path.suffix:
        path = sites_dir() / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in sites_dir().glob("*.yaml"))) or "none"
        raise SiteConfigError([ConfigProblem(str(path), "", "site file not found", f"known sites: {known}")])
    data, unreadable = read_yaml(path)
    if unreadable:
        raise SiteConfigError(unreadable)
    if not isinstance(data, dict):
        raise SiteConfigError([ConfigProblem(str(path), "", "the file must be a mapping of settings", "see config/sites/example-oracle.yaml")])
    data, problems = substitute(data, path)
    if problems:
        raise SiteConfigError(problems)
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        raise SiteConfigError(problems_from_validation(exc, path, data)) from None
    site.source = path
    return site


SiteCheck = Callable[["Site", str], list[ConfigProblem]]


def check_sites(names: list[str] | None = None, checks: Sequence[SiteCheck] = ()) -> dict[str, list[ConfigProblem]]:
    """Every problem of every named site (all sites when none is named), for `ebops config check`.

    `checks` judge a site that loads, given the site and its file: the caller passes the checks
    that need the tasks' libraries (e.g. apprise for notify URLs), so config/ imports nothing of tasks/.
    """
    paths = [Path(n) if Path(n).suffix else sites_dir() / f"{n}.yaml" for n in names] if names else sorted(sites_dir().glob("*.yaml"))
    out: dict[str, list[ConfigProblem]] = {}
    for p in paths:
        try:
            site = load_site(p)
            out[str(p)] = [problem for check in checks for problem in check(site, str(p))]
        except SiteConfigError as exc:
            out[str(p)] = exc.problems
        except Exception as exc:  # noqa: BLE001 - one file that breaks the checker must not hide the others
            out[str(p)] = [ConfigProblem(str(p), "", f"could not be checked: {type(exc).__name__}: {exc}",
                                         "fix what the message names; if unclear, report it with the file")]
    return out
