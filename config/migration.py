"""The site file's `migration:` section (服务器迁移; QH row 13 系统迁移方案评审, QH 额外服务标准 1).

It names both sides so nothing is guessed: the source (the running database and application
servers) and the target (the new ones), the application's own stop/start commands, the cut-over
steps (e.g. rewrite the application's datasource, start it against the target) and the rollback
steps (point it back at the untouched source). The new servers are declared here, not under the
site's `hosts:`, so the routine inspection does not look at servers that are not in service yet.
Passwords only by reference; the database tools on the hosts log in through the host's ~/.pgpass
(PostgreSQL family) or OS authentication (Oracle), as the hospital's backup job does.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from config.model import Strict
from config.backup_verification import VerifyDatabase

EZCONNECT = re.compile(r"^[A-Za-z0-9_.-]+(:\d+)?/[A-Za-z0-9_.$#-]+$")   # host:port/service (RMAN's connect)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]{0,62}$")
PHASES = ("preflight", "plan", "freeze", "backup", "transfer", "verify", "cutover", "smoke")
APPROVAL_POINTS = ("plan_review", "downtime", "cutover", "rollback")



class RunbookCommand(Strict):
    """One command of a cut-over or rollback: where it runs and what it should change (Chinese)."""
    host: str = Field(description="hosts[].name or migration.hosts[].name")
    argv: list[str] = Field(min_length=1, description="the command, one argument per item (quoted per argument)")
    expect: str = Field(default="", description="what it changes, for the plan's reviewer")
    timeout_s: int = Field(default=600, ge=1, le=86400)


class Person(Strict):
    name: str
    role: str = Field(description="e.g. 维护工程师, 信息科负责人, 厂商 DBA")
    phone: str = ""


class SmokeTestBill(Strict):
    """The target application's calls that issue a test bill and red-flush it (冲红), for the smoke
    test after the cut-over. Each is a POST of JSON: issue gets {"purpose", "run_id"} and answers
    the bill's {"bill_code", "bill_no"}; red-flush gets those two and answers the red bill's. A
    vendor whose API differs is reached through a small adapter at these URLs."""
    issue_url: str = Field(description="POST: issue one test bill (marked 迁移冒烟测试)")
    red_flush_url: str = Field(description="POST {bill_code, bill_no}: red-flush that test bill")
    timeout_s: float = Field(default=30, gt=0, le=600)


class MigrationSide(Strict):
    db_host: str = Field(description="the database server (a host name): the database tools run there")
    app_host: str = Field(description="the application server (a host name)")
    database: VerifyDatabase = Field(description="measured with the verification account (inventory, counts, "
                                                 "fingerprints, bills)")
    database_name: str = Field(default="ebill", description="postgresql: the e-bill database")
    admin_user: str = Field(default="postgres", description="postgresql: the account pg_dump/pg_restore log in as "
                                                            "(through the host's ~/.pgpass)")
    tools_dir: str = Field(description="on db_host: PostgreSQL's bin directory; oracle: ORACLE_HOME")
    work_dir: str = Field(description="on db_host: where the migration's dump is written (source) or received (target)")
    data_dir: str = Field(description="on db_host: the file system the database's data lives on (free space)")
    app_stop: list[str] = Field(min_length=1, description="argv on app_host that stops the application")
    app_start: list[str] = Field(min_length=1, description="argv on app_host that starts the application")
    app_status: list[str] | None = Field(default=None, description="argv on app_host: exit 0 while it runs")
    health_urls: dict[str, str] = Field(default_factory=dict, description="the application's health URLs on this "
                                        "side (function -> URL); GET answers 2xx while it is up")
    inspection_dsn: str | None = Field(default=None, description="target: the inspection's DSN for the site's "
                                       "read-only account on the new database (the smoke test's catalogue)")
    oracle_sid: str | None = None
    smoke_test_bill: SmokeTestBill | None = Field(default=None, description="target only: the smoke test issues a "
                                                  "test bill and red-flushes it (writes to the new database; behind "
                                                  "the cut-over approval); none: the smoke test only reads")


class MigrationConfig(Strict):
    dialect: Literal["postgresql", "oracle"] = "postgresql"
    schema_name: str = Field(alias="schema", description="the vendor's schema, compared table by table")
    source: MigrationSide
    target: MigrationSide
    hosts: list[Any] = Field(default_factory=list, description="the new servers (same fields as the site's hosts:; "
                             "validated as such by config/settings.py)")
    after_hosts: list[str] = Field(default_factory=list, description="the site's hosts after the migration (the "
                                   "smoke test inspects these); default: source hosts replaced by the target's")
    cutover_steps: list[RunbookCommand] = Field(min_length=1)
    rollback_steps: list[RunbookCommand] = Field(min_length=1)
    people: list[Person] = Field(default_factory=list, description="who does what during the window (the plan lists them)")
    free_space_ratio: float = Field(default=1.5, ge=1.0, le=10, description="target free space >= this x the data size")
    free_space_reserve_gib: float = Field(default=0, ge=0, le=1_000_000, description="and this much more left free on "
                                          "the target's data file system after the restore (the hospital's headroom "
                                          "for logs, archives and growth)")
    max_clock_skew_s: float = Field(default=5, gt=0, le=3600)
    backup_verification_max_age_days: float = Field(default=100, gt=0, le=400, description="a PASSED 备份恢复验证 "
                                                    "of the source within this many days (from the evidence store)")
    freeze_window_s: float = Field(default=6, ge=1, le=600, description="the newest bill must stand still this long")
    sample_transfer_mib: int = Field(default=8, ge=1, le=4096, description="size of the measured sample copy")
    restore_jobs: int = Field(default=2, ge=1, le=16)
    transfer_max_mib_s: float | None = Field(default=None, gt=0, le=100_000, description="cap of the copy's rate "
                                             "(spares the hospital's network); none: as fast as it goes")
    sample_bills: int = Field(default=20, ge=0, le=1000)
    chunk_rows: int = Field(default=10_000, ge=100, le=10_000_000)
    quality_suites: bool = Field(default=True, description="run the data-quality suites on the target at verify")
    verify_rows: bool = Field(default=True, description="verify: compare every row of every table by primary key "
                              "(逐行比对, canonical text SHA-256); false for a site whose tables are too big for the window")
    verify_rows_max_table_rows: int | None = Field(default=None, ge=1, description="verify: tables with more source "
                                                   "rows than this are left out of the row check (the fingerprints "
                                                   "still cover them); none: every table")
    verify_rows_batch: int = Field(default=5000, ge=100, le=100_000, description="rows per round trip of the row check")
    verify_rows_keep_keys: int = Field(default=100, ge=1, le=10_000, description="keys kept per kind (missing, extra, "
                                       "differing) and table")
    approval_valid_hours: float = Field(default=72, gt=0, le=24 * 30, description="an approval expires after this")
    command_timeout_s: int = Field(default=7200, ge=60, le=86400)
    health_timeout_s: float = Field(default=60, gt=0, le=3600, description="how long the application may take to answer")
    oracle_method: Literal["datapump", "rman_duplicate"] = Field(default="datapump", description="oracle: Data Pump "
                                                                 "(expdp, copy, impdp of the schema) or RMAN DUPLICATE "
                                                                 "FROM ACTIVE DATABASE (the whole database into an "
                                                                 "instance the DBA started NOMOUNT)")
    oracle_directory: str = "DATA_PUMP_DIR"
    dump_command: list[str] | None = Field(default=None, description="override of the source dump argv ({dump} is the file)")
    restore_command: list[str] | None = Field(default=None, description="override of the target restore argv")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _check(self) -> "MigrationConfig":
        if not _IDENT.match(self.schema_name):
            raise ValueError(f"schema: {self.schema_name} is not a plain identifier")
        if self.dialect == "oracle" and not (self.source.oracle_sid and self.target.oracle_sid):
            raise ValueError("oracle: source.oracle_sid and target.oracle_sid are needed for RMAN and Data Pump")
        if self.oracle_method == "rman_duplicate":
            if self.dialect != "oracle":
                raise ValueError("oracle_method: rman_duplicate is for dialect oracle (hint: leave it out for "
                                 f"{self.dialect}, or set dialect: oracle)")
            for side in ("source", "target"):
                dsn = getattr(self, side).database.dsn
                if not EZCONNECT.match(dsn):
                    raise ValueError(f"{side}.database.dsn {dsn!r}: oracle_method rman_duplicate connects RMAN to it "
                                     "through the wallet and needs host:port/service (hint: db1.hospital:1521/ebill)")
        if self.source.smoke_test_bill is not None:
            raise ValueError("source.smoke_test_bill: the test bill is issued on the target after the cut-over "
                             "(hint: move it under migration.target)")
        if self.source.db_host == self.target.db_host and self.source.database.dsn == self.target.database.dsn:
            raise ValueError("source and target name the same database: a migration needs two")
        return self
