"""The site file's `backup_verification:` section (备份恢复验证, QH; MZ 一.7).

Three parties are involved and each is named here, so nothing is guessed: the host that holds the
backups (and the database tools), the production database (read with an account that may read the
vendor's tables, never write them), and the verification server where a scratch copy is restored
and dropped again. Passwords only by reference; the database tools on the host authenticate the
way the hospital's own backup job does (PostgreSQL: the host's ~/.pgpass; Oracle: OS login).
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from config.model import Strict
from config.secrets import SecretRef, refuse_password_in_dsn

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]{0,62}$")



class VerifyDatabase(Strict):
    dsn: str = Field(description="postgresql: libpq conninfo without password; oracle: host:port/service_name")
    user: str
    password: SecretRef
    connect_timeout_s: int = Field(default=30, ge=1, le=600)
    # Generous: one fingerprint statement reads a whole table. A lock another session holds is
    # what must not stall the verification, hence the separate, short lock deadline.
    statement_timeout_s: int = Field(default=3600, ge=1, le=86400, description=(
        "deadline of each query of the verification (PostgreSQL statement_timeout, Oracle call_timeout)"))
    lock_timeout_s: int = Field(default=60, ge=1, le=3600, description=(
        "PostgreSQL: longest wait for a lock held by another session (lock_timeout)"))

    _no_password_in_dsn = field_validator("dsn")(refuse_password_in_dsn)


class ScratchTarget(VerifyDatabase):
    """Where the copy is restored. PostgreSQL: the verification server's maintenance database
    (dbname=postgres); the scratch database is created beside it with `prefix` + the run's time."""
    prefix: str = Field(default="ebops_verify_", description="every scratch database/schema name starts with this")
    oracle_tablespace: str = Field(default="USERS", description="oracle: default tablespace of the scratch schema")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _IDENT.match(v) or len(v) < 4:
            raise ValueError("prefix must be an identifier of at least 4 characters (e.g. ebops_verify_)")
        return v


class BackupVerificationConfig(Strict):
    host: str = Field(description="the host (hosts[].name) that holds the backups; its `backup` section gives "
                                  "directory, pattern and log")
    dialect: Literal["postgresql", "oracle"] = "postgresql"
    source: VerifyDatabase = Field(description="production, read with an account that may read the vendor's tables "
                                               "(PostgreSQL: pg_read_all_data; Oracle: SELECT ANY TABLE + FLASHBACK ANY TABLE)")
    schema_name: str = Field(alias="schema", description="the vendor's schema that is backed up and compared")
    scratch: ScratchTarget
    tools_dir: str = Field(description="on the host: PostgreSQL's bin directory (pg_dump, pg_restore); "
                                       "oracle: ORACLE_HOME")
    oracle_sid: str | None = None
    oracle_directory: str = Field(default="DATA_PUMP_DIR", description="oracle: Data Pump directory object; its "
                                  "path on the host is the host's backup.directory (where the dumps are found)")
    oracle_dump_directory: str | None = Field(
        default=None, description="oracle: the directory object's path on the host, where the Data Pump dumps "
        "to verify are (default: the host's backup.directory)")
    oracle_dump_pattern: str = Field(default="*.dmp", description="oracle: glob of the dump files there")
    oracle_dump_log: str | None = Field(default=None, description="oracle: the export job's START/END log, if any")
    oracle_datapump_login: Literal["sysdba", "external"] = Field(
        default="sysdba", description="oracle: how expdp/impdp log on over SSH (OS authentication, no password)")
    oracle_remap_tablespaces: dict[str, str] = Field(
        default_factory=dict, description="oracle: every production tablespace of the schema -> the scratch "
        "tablespace (an unmapped one fails the import instead of filling a production tablespace)")
    database_name: str = Field(default="ebill", description="postgresql: the production database pg_dump reads")
    cutoff_columns: dict[str, str] = Field(
        default_factory=dict, description="per table, the column (issue time) that decides whether a row existed "
        "before a backup someone else took; only those rows are compared")
    mutable_columns: dict[str, list[str]] = Field(
        default_factory=dict, description="per table, columns the system updates after the row is written "
        "(upload/notice flags): left out of the fingerprint of a backup someone else took")
    sample_bills: int = Field(default=20, ge=0, le=1000, description="bills re-read from both sides, field by field")
    chunk_rows: int = Field(default=10_000, ge=100, le=10_000_000)
    restore_jobs: int = Field(default=2, ge=1, le=16, description="pg_restore --jobs")
    rpo_max_hours: float = Field(default=26, gt=0, le=24 * 366, description="newest bill in the backup at most this much older "
                                                               "than the backup (a nightly job plus slack)")
    rto_max_minutes: float = Field(default=240, gt=0, le=7 * 24 * 60, description="restore must finish within this (the tender's "
                                                                  "recovery time objective)")
    # Creating and dropping scratch databases (and taking a backup for verification) needs a recorded
    # standing approval of the verification's plan (`ebops approve`); without one the flow only plans.
    keep_on_failure: bool = Field(default=False, description="keep the scratch copy for diagnosis when the verdict "
                                                             "is not PASSED")
    command_timeout_s: int = Field(default=7200, ge=60, le=86400)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _names(self) -> "BackupVerificationConfig":
        for where, names in (("cutoff_columns", [*self.cutoff_columns, *self.cutoff_columns.values()]),
                             ("mutable_columns", [*self.mutable_columns, *(c for cs in self.mutable_columns.values()
                                                                           for c in cs)]),
                             ("schema", [self.schema_name])):
            bad = [n for n in names if not _IDENT.match(n)]
            if bad:
                raise ValueError(f"{where}: {', '.join(bad)} is not a plain identifier")
        if self.dialect == "oracle" and not self.oracle_sid:
            raise ValueError("oracle_sid is needed for RMAN and Data Pump on the host")
        return self
