"""`database:` and `hosts:` of a site file: how ebops reaches the e-bill database (read-only
account, deadlines) and the hospital's servers (SSH, their logs, backups and certificates)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from config.model import Strict
from config.secrets import SecretRef, refuse_password_in_dsn


# ---------------------------------------------------------------- database
class DatabaseConfig(Strict):
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


class LogFile(Strict):
    path: str
    kind: Literal["oracle_alert", "postgresql", "application", "system"] = "application"
    error_patterns: list[str] = Field(default_factory=lambda: ["ERROR", "Exception", "ORA-"])
    critical_patterns: list[str] = Field(default_factory=list)


class BackupConfig(Strict):
    directory: str = Field(description="where backup files are written")
    log: str | None = Field(default=None, description="the backup job's log: one line per run")
    pattern: str = Field(default="*", description="glob of backup files in `directory`")
    command: list[str] | None = Field(default=None, description="argv that takes a backup now (quoted per argument)")
    # Running `command` needs a recorded standing approval of its plan (`ebops approve`,
    # tasks/approvals/standing.py); without one the pre-holiday check only plans the backup.
    command_timeout_s: int = Field(default=3600, ge=10, le=86400)


class CertificateFile(Strict):
    name: str = Field(description="what the certificate is for, as the report shows it (e.g. 签名证书)")
    path: str = Field(description="path of the PEM or DER file on the host")


class HostConfig(Strict):
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
