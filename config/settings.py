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

from pydantic import Field, ValidationError, field_validator, model_validator

from config.model import Strict
from config.approvals import ApprovalSettings, Approver, check_approvers
from config.backup_verification import BackupVerificationConfig
from config.evidence import EvidenceStoreConfig
from config.hosts import DatabaseConfig, HostConfig
from config.year_end import YearEndConfig
from config.migration import MigrationConfig
# re-exported: callers import secrets from the site-file module
from config.secrets import EnvSecret, PrefectSecret, SecretMissing, SecretRef, refuse_password_in_dsn, resolve_secret  # noqa: F401

CONFIG_DIR = Path(__file__).resolve().parent
SITES_DIR = CONFIG_DIR / "sites"
SQL_DIR = CONFIG_DIR / "sql"


def sites_dir() -> Path:
    return Path(os.environ.get("EBOPS_SITES_DIR", SITES_DIR))



# ---------------------------------------------------------------- thresholds (docs/duties.md defaults)
class Thresholds(Strict):
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


class HealthConfig(Strict):
    urls: dict[EbillFunction, str] = Field(description="one health URL per e-bill function; GET must answer 2xx")
    timeout_s: float = Field(default=10, gt=0, le=300)
    ca_file: str | None = Field(default=None, description="CA bundle for https URLs (the hospital's own CA)")


class TlsEndpoint(Strict):
    name: str = Field(description="what the endpoint is (e.g. 签名服务器, 电子票据门户)")
    address: str
    port: int = Field(default=443, ge=1, le=65535)
    server_name: str | None = Field(default=None, description="SNI name when it differs from address")


class DutyEntry(Strict):
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


class NotifyTarget(Strict):
    name: str
    url: SecretRef = Field(description="apprise URL (wecombot://, dingtalk://): it carries the robot key")
    min_status: Literal["WARN", "FAIL", "ERROR"] = "WARN"



class WatchConfig(Strict):
    """The interface watch (接口运维, flows/watch.py): how often it probes and how a day is judged."""
    interval_minutes: int = Field(default=5, ge=1, le=60, description="one probe cycle every N minutes")
    availability_min_pct: float = Field(default=99, ge=0, le=100, description="a function's day below it is a FAIL (MZ 一.18)")
    coverage_warn_pct: float = Field(default=90, ge=0, le=100, description="a day probed less than this share of the plan is a WARN")


class Site(Strict):
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
            if m.cross_engine is not None:
                named += [(f"migration.cross_engine.{k}.host", getattr(m.cross_engine, k).host) for k in ("export", "load")]
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
