"""Oracle migration commands: Data Pump (expdp on the source, the dump copied, impdp on the target
into the same schema) or RMAN DUPLICATE ... FROM ACTIVE DATABASE (the target instance started
NOMOUNT by the DBA). Each can be replaced in the site file (migration.dump_command /
restore_command). The SQL the migration runs against Oracle (tasks/migration/db.py, freeze's newest
bill) is parsed with sqlglot's oracle dialect in tests/unit/test_migration_pure.py; RMAN's own
language is not SQL and is checked by shape there. Not run against a live Oracle in this repository
(no Oracle in the sandbox): the transcripts are recorded as any command's output.
"""
from __future__ import annotations

import re

from config.migration import MigrationConfig
from tasks.backup.verify.oracle_steps import DATAPUMP_LOGINS, EXPDP_SCRIPT, IMPDP_SCRIPT, _home_sid, _name

_SERVICE = re.compile(r"^[A-Za-z0-9_.-]+(:\d+)?/[A-Za-z0-9_.$#-]+$")


def _dumpfile(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def expdp_argv(cfg: MigrationConfig, out: str) -> list[str]:
    """Export the vendor's schema from the frozen source (the application is stopped: consistent
    without FLASHBACK_SCN); the dump lands in the directory object's path (source.work_dir)."""
    dump = _dumpfile(out)
    args = [*_home_sid(cfg.source.tools_dir, cfg.source.oracle_sid or ""), DATAPUMP_LOGINS["sysdba"],
            f"DIRECTORY={_name('oracle_directory', cfg.oracle_directory, True)}", f"DUMPFILE={dump}",
            f"LOGFILE={dump.rsplit('.', 1)[0]}_exp.log", f"SCHEMAS={_name('schema', cfg.schema_name, True)}",
            "REUSE_DUMPFILES=NO"]
    return ["sh", "-c", EXPDP_SCRIPT, "sh", *args]


def impdp_argv(cfg: MigrationConfig, dump_path: str) -> list[str]:
    """Import into the same schema on the empty target; an existing table is an error, never replaced."""
    dump = _dumpfile(dump_path)
    args = [*_home_sid(cfg.target.tools_dir, cfg.target.oracle_sid or ""), DATAPUMP_LOGINS["sysdba"],
            f"DIRECTORY={_name('oracle_directory', cfg.oracle_directory, True)}", f"DUMPFILE={dump}",
            f"LOGFILE={dump.rsplit('.', 1)[0]}_imp.log", f"SCHEMAS={_name('schema', cfg.schema_name, True)}",
            "TABLE_EXISTS_ACTION=SKIP"]
    return ["sh", "-c", IMPDP_SCRIPT, "sh", *args]


def rman_duplicate_script(target_service: str, auxiliary_service: str, db_name: str) -> str:
    """RMAN DUPLICATE FROM ACTIVE DATABASE: the whole database copied over Oracle Net to the new
    server's instance (started NOMOUNT with the same DB_NAME's pfile by the DBA). Passwords are
    not in the script: RMAN reads them from the wallet (connect with /@alias)."""
    for what, v in (("target_service", target_service), ("auxiliary_service", auxiliary_service)):
        if not _SERVICE.match(v):
            raise ValueError(f"{what} {v!r} is not host:port/service (hint: db1.hospital:1521/ebill)")
    name = _name("db_name", db_name)
    return (f"CONNECT TARGET /@{target_service}\n"
            f"CONNECT AUXILIARY /@{auxiliary_service}\n"
            "RUN {\n"
            "  ALLOCATE CHANNEL c1 DEVICE TYPE DISK;\n"
            "  ALLOCATE AUXILIARY CHANNEL a1 DEVICE TYPE DISK;\n"
            f"  DUPLICATE TARGET DATABASE TO {name} FROM ACTIVE DATABASE NOFILENAMECHECK;\n"
            "}\nEXIT\n")


def rman_argv(oracle_home: str, oracle_sid: str) -> list[str]:
    """rman reading its script from stdin (the worker sends rman_duplicate_script)."""
    home, sid = _home_sid(oracle_home, oracle_sid)
    return ["env", f"ORACLE_HOME={home}", f"ORACLE_SID={sid}", f"{home}/bin/rman", "NOCATALOG"]


# Checked on the target after RMAN DUPLICATE / impdp, before the verification: every statement
# goes through sqlglot in the unit tests.
AFTER_RESTORE_SQL = [
    "SELECT COUNT(*) AS invalid FROM dba_objects WHERE owner = :schema AND status = 'INVALID'",
    "SELECT open_mode FROM v$database",
]
