"""The site file's `migration:` section (服务器迁移; QH row 13 系统迁移方案评审, QH 额外服务标准 1).

It names both sides so nothing is guessed: the source (the running database and application
servers) and the target (the new ones), the application's own stop/start commands, the cut-over
steps (e.g. rewrite the application's datasource, start it against the target) and the rollback
steps (point it back at the untouched source). The new servers are declared here, not under the
site's `hosts:`, so the routine inspection does not look at servers that are not in service yet.
Passwords only by reference; the database tools on the hosts log in through the host's ~/.pgpass
(PostgreSQL family) or OS authentication (Oracle), as the hospital's backup job does.

Each side may name its own dialect and schema (`source.dialect`, `target.schema`; default: the
section's `dialect` and `schema`, so older site files read as before). Across engines only Oracle ->
the PostgreSQL family (信创: openGauss and KingbaseES speak PostgreSQL's protocol and catalog, so
they are `postgresql` here), moved by the external commands of `cross_engine:` (ora2pg).
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


# The documented ora2pg commands (README "Cross-engine (信创) migration"). A site confirms them by
# writing `argv: ora2pg` (never taken silently: they write the target); {name} placeholders are
# replaced per argument by tasks/migration/cross_engine.py. Export: the Oracle schema to SQL files in
# work_dir on a host with the Oracle client, DBD::Oracle and ora2pg (its ora2pg.conf, written by the
# DBA, holds ORACLE_DSN and the login; no password here). Load: the files into the target with psql
# (~/.pgpass), tables and data each in one transaction, stopping at the first error.
ORA2PG_EXPORT = ["sh", "-c", 'set -e; cd "$1"; ora2pg -c "$2" -n "$3" -N "$4" -t TABLE -o tables.sql -b "$1"; '
                 'ora2pg -c "$2" -n "$3" -N "$4" -t COPY -o data.sql -b "$1"',
                 "sh", "{work_dir}", "{ora2pg_conf}", "{source_schema}", "{target_schema}"]
ORA2PG_LOAD = ["sh", "-c", 'set -e; cd "$1"; for f in tables.sql data.sql; do psql -X -w -q -v ON_ERROR_STOP=1 '
               '--single-transaction -h "$2" -p "$3" -U "$4" -d "$5" -f "$f"; done',
               "sh", "{work_dir}", "{target_host}", "{target_port}", "{target_admin_user}", "{target_database}"]
PLACEHOLDERS = ("work_dir", "ora2pg_conf", "source_schema", "target_schema", "source_dsn", "target_host",
                "target_port", "target_admin_user", "target_database")


class CrossEngineCommand(Strict):
    """One command of a cross-engine move, run over SSH on `host` (argv quoted per argument)."""
    host: str = Field(description="hosts[].name or migration.hosts[].name: where it runs")
    argv: list[str] | Literal["ora2pg"] = Field(description="the command, one argument per item, with "
                                                "{placeholders}; `ora2pg`: the documented template, confirmed")
    timeout_s: int | None = Field(default=None, ge=60, le=86400, description="none: migration.command_timeout_s")


class CrossEngine(Strict):
    """Oracle -> PostgreSQL family: the backup phase runs `export`, the transfer phase `load`."""
    work_dir: str = Field(description="on the export host (and the load host): where the exported SQL files go")
    ora2pg_conf: str = Field(default="", description="on the export host: ora2pg.conf (ORACLE_DSN, login by the DBA)")
    export: CrossEngineCommand = Field(description="reads the frozen source, writes files in work_dir")
    load: CrossEngineCommand = Field(description="writes the target: the exported files loaded into it")


class MigrationSide(Strict):
    dialect: Literal["postgresql", "oracle"] | None = Field(default=None, description="this side's engine (openGauss, "
                                                            "KingbaseES: postgresql); none: migration.dialect")
    schema_name: str | None = Field(default=None, alias="schema", description="this side's spelling of the vendor's "
                                    "schema (Oracle: upper-case, EBILL); none: migration.schema")
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

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def engine(self) -> str:
        """The side's dialect, resolved (MigrationConfig fills it in from migration.dialect)."""
        assert self.dialect is not None
        return self.dialect

    @property
    def schema(self) -> str:
        assert self.schema_name is not None
        return self.schema_name


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
    cross_engine: CrossEngine | None = Field(default=None, description="source oracle, target postgresql: the "
                                             "export and load commands (ora2pg); required then, refused otherwise")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def across_engines(self) -> bool:
        """Source and target of different engines (Oracle -> PostgreSQL family)."""
        return self.source.engine != self.target.engine

    @model_validator(mode="after")
    def _check(self) -> "MigrationConfig":
        if not _IDENT.match(self.schema_name):
            raise ValueError(f"schema: {self.schema_name} is not a plain identifier")
        for name in ("source", "target"):
            side = getattr(self, name)
            side.dialect = side.dialect or self.dialect
            side.schema_name = side.schema_name or self.schema_name
            if not _IDENT.match(side.schema_name):
                raise ValueError(f"{name}.schema: {side.schema_name} is not a plain identifier")
        self._check_engines()
        if not self.across_engines and self.source.engine == "oracle" and not (self.source.oracle_sid and self.target.oracle_sid):
            raise ValueError("oracle: source.oracle_sid and target.oracle_sid are needed for RMAN and Data Pump")
        if self.oracle_method == "rman_duplicate":
            if self.across_engines:
                raise ValueError("oracle_method: rman_duplicate copies Oracle to Oracle; source.dialect oracle, "
                                 "target.dialect postgresql moves by cross_engine (hint: leave oracle_method out)")
            if self.source.engine != "oracle":
                raise ValueError("oracle_method: rman_duplicate is for dialect oracle (hint: leave it out for "
                                 f"{self.source.engine}, or set dialect: oracle)")
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

    def _check_engines(self) -> None:
        src, tgt = self.source, self.target
        if not self.across_engines:
            if src.schema.lower() != tgt.schema.lower():
                raise ValueError(f"target.schema: {tgt.schema} differs from source.schema {src.schema}: a same-engine "
                                 "dump and restore keep the schema's name (hint: give both the same schema)")
            if self.cross_engine is not None:
                raise ValueError(f"cross_engine: both sides are {src.engine}; the dump and restore move the data "
                                 "(hint: remove cross_engine, or set source.dialect oracle and target.dialect postgresql)")
            return
        if (src.engine, tgt.engine) != ("oracle", "postgresql"):
            raise ValueError(f"target.dialect: {src.engine} -> {tgt.engine} is not supported across engines; only "
                             "source oracle -> target postgresql (the PostgreSQL family: openGauss and KingbaseES speak "
                             "PostgreSQL's protocol, write postgresql for them)")
        if self.cross_engine is None:
            raise ValueError("cross_engine: required when source.dialect is oracle and target.dialect postgresql "
                             "(hint: cross_engine: {work_dir: ..., ora2pg_conf: ..., export: {host: ..., argv: ora2pg}, "
                             "load: {host: ..., argv: ora2pg}} confirms the documented ora2pg commands)")
        for field in ("dump_command", "restore_command"):
            if getattr(self, field) is not None:
                raise ValueError(f"{field}: not used across engines (hint: cross_engine.export / cross_engine.load)")
        for step in ("export", "load"):
            cmd = getattr(self.cross_engine, step)
            if cmd.argv == "ora2pg" and step == "export" and not self.cross_engine.ora2pg_conf:
                raise ValueError("cross_engine.ora2pg_conf: the ora2pg template reads it (hint: the path of ora2pg.conf "
                                 "on the export host)")
            for arg in ([] if cmd.argv == "ora2pg" else cmd.argv):
                for name in re.findall(r"{(\w+)}", arg):
                    if name not in PLACEHOLDERS:
                        raise ValueError(f"cross_engine.{step}.argv: unknown placeholder {{{name}}} (hint: one of "
                                         + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ")")
