"""The site file's `year_end:` section (技术年结, QH row 14).

"年底增加次年度表空间，对数据库进行分表分库。同时，对超过2年的静态数据进行压缩": next year's tablespace
and partitions, and the compression of the years that ended more than two years ago. What the DDL
runs as is a DBA account given by reference, apart from the read-only account of the checks: the
checks never hold a session that could write.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from config.model import Strict
from config.secrets import SecretRef, refuse_password_in_dsn

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]{0,62}$")


class _ByName(Strict):
    """Fields with an alias (e.g. `schema`) may also be given by their Python name."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DbaSession(_ByName):
    """The write-capable account the year-end DDL runs as (PostgreSQL: a superuser, since only a
    superuser may CREATE TABLESPACE; Oracle: an account with CREATE TABLESPACE, ALTER ANY TABLE)."""
    dsn: str = Field(description="postgresql: libpq conninfo without password; oracle: host:port/service_name")
    user: str
    password: SecretRef
    connect_timeout_s: int = Field(default=30, ge=1, le=600)
    statement_timeout_s: int = Field(default=7200, ge=1, le=86400, description=(
        "deadline of each DDL statement (a MOVE PARTITION of a big year takes long)"))
    lock_timeout_s: int = Field(default=60, ge=1, le=3600, description=(
        "PostgreSQL: longest wait for a lock another session holds (the e-bill system keeps issuing)"))

    _no_password_in_dsn = field_validator("dsn")(refuse_password_in_dsn)


class TablespaceSpec(_ByName):
    """How a year's tablespace is named and made; `{year}` is replaced by the year."""
    name_pattern: str = Field(default="ts_ebill_{year}", description="e.g. TS_EBILL_{year}")
    location: str = Field(description="postgresql: the directory on the database host; oracle: the datafile path; "
                                      "may start with {tablespace_dir}, the folder of the newest year's tablespace "
                                      "as the catalogue gives it (the server's own path)")
    make_directory: bool = Field(
        default=False, description="postgresql: a step on the database host makes the empty directory, owned "
        "like its parent (the server's OS user), before CREATE TABLESPACE")
    owner: str | None = Field(default=None, description="postgresql: OWNER of the tablespace (the vendor's role)")
    initial_size_mb: int = Field(default=1024, ge=1, le=32 * 1024 * 1024, description="oracle: DATAFILE SIZE")
    autoextend: bool = Field(default=True, description="oracle: AUTOEXTEND ON")
    autoextend_next_mb: int = Field(default=256, ge=1, le=1024 * 1024)
    autoextend_max_mb: int | None = Field(default=None, ge=1, description="oracle: MAXSIZE (None: UNLIMITED)")

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if "{year}" not in v or not _IDENT.match(v.replace("{year}", "2027")):
            raise ValueError("name_pattern must hold {year} and make a plain identifier (e.g. ts_ebill_{year})")
        return v

    @field_validator("location")
    @classmethod
    def _location(cls, v: str) -> str:
        if "{year}" not in v:
            raise ValueError("location must hold {year}")
        return _path_ok(v)

    def name(self, year: int) -> str:
        return self.name_pattern.replace("{year}", str(year))

    def path(self, year: int, tablespace_dir: str | None = None) -> str:
        return fill_dir(self.location, tablespace_dir).replace("{year}", str(year))


def _path_ok(v: str) -> str:
    if "'" in v or not (v.startswith("/") or v.startswith("{tablespace_dir}/")):
        raise ValueError("location must be an absolute path (or start with {tablespace_dir}/), without quotes")
    return v


def fill_dir(location: str, tablespace_dir: str | None) -> str:
    if "{tablespace_dir}" in location:
        if not tablespace_dir:
            raise ValueError(f"location {location!r} names {{tablespace_dir}}, but no year's tablespace was found "
                             f"in the catalogue (hint: give an absolute path)")
        return location.replace("{tablespace_dir}", tablespace_dir.rstrip("/"))
    return location


class ArchiveSpec(_ByName):
    """PostgreSQL-family: where the old years go (one archive tablespace), rewritten compacted."""
    tablespace: str = Field(default="ts_ebill_archive")
    location: str = Field(description="directory of the archive tablespace on the database host")

    @field_validator("tablespace")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError("tablespace must be a plain identifier")
        return v

    @field_validator("location")
    @classmethod
    def _location(cls, v: str) -> str:
        return _path_ok(v)

    def path(self, tablespace_dir: str | None = None) -> str:
        return fill_dir(self.location, tablespace_dir)


class YearEndDatabase(_ByName):
    """`year_end.database:` the database part (next year's tablespace and partitions, old years compacted)."""
    schema_name: str = Field(alias="schema", description="the vendor's schema whose year-partitioned tables are found "
                                                         "from the catalogue")
    dba: DbaSession
    tablespace: TablespaceSpec
    compress_after_years: int = Field(default=2, ge=1, le=30, description=(
        "years whose end lies more than this many years back are compressed (QH row 14: 超过2年的静态数据)"))
    oracle_compression: Literal["basic", "advanced"] = Field(default="basic", description=(
        "oracle: COMPRESS BASIC (every edition) or ROW STORE COMPRESS ADVANCED (needs the Advanced "
        "Compression option: the site's licence)"))
    oracle_online: bool = Field(default=True, description="oracle: MOVE PARTITION ... ONLINE (12.2+, Enterprise)")
    postgresql_action: Literal["archive", "none"] = Field(default="archive", description=(
        "postgresql: 'archive' moves the old years' partitions into the archive tablespace, rewrites them "
        "compacted (VACUUM FULL) and revokes write privileges on them; 'none' leaves them"))
    archive: ArchiveSpec | None = None

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, v: str) -> str:
        if not _IDENT.match(v):
            raise ValueError("schema must be a plain identifier")
        return v


class YearEndFiles(Strict):
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


class YearEndConfig(Strict):
    """`year_end:` of a site file: the database part, the file server's part, and the gate both share."""

    database: YearEndDatabase | None = None
    files: YearEndFiles | None = None
    max_backup_verification_age_days: int = Field(default=100, ge=1, le=400, description=(
        "execution needs a PASSED backup verification of the site at most this old"))
    backup_host: str | None = Field(default=None, description="host (hosts[].name) whose backup.command takes the "
                                                              "fresh backup before execution; default: the database host")
