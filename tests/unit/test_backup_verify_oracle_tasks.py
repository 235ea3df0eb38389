"""The Oracle path of the backup-restore verification as Prefect tasks (tasks/backup/verify/oracle_tasks.py)
and the choice of backend by dialect (tasks/backup/verify/backends.py), called through `.fn`.

No Oracle server can run on this machine, so everything Oracle is a STAND-IN:
- FakeSession stands for the SSH session to the database host: it records every run/run_script call and
  answers expdp/impdp/RMAN (chosen by the fixed script text of oracle_steps) with the recorded RMAN and Data
  Pump outputs of test_backup_verify_oracle.py, and `stat` / `sha256sum` with fixed values;
- FakeOracle stands for python-oracledb (oracle_tasks.connect is monkeypatched): every statement it receives
  is parsed with sqlglot's Oracle dialect and its ":name" binds must be exactly the keys of the params sent;
  it answers V$DATABASE, SYS_CONTEXT('USERENV', 'INSTANCE_NAME'), ALL_USERS and V$RMAN_BACKUP_JOB_DETAILS,
  and records CREATE USER / DROP USER;
- measure.measure and measure.sample_bills are stubs returning Measurements built here; they ask the
  connection they were given who is logged on, so a test sees which side (production or copy) was measured.
tests/contract runs the same steps against a live Oracle when ORACLE_DSN is set.
"""
from __future__ import annotations

import json
import shlex
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import sqlglot
from sqlglot import exp

from config.backup_verification import BackupVerificationConfig
from config.hosts import BackupConfig
from tasks.backup.verify import (
    backends,
    measure,
    oracle_tasks,
    pg_flow_steps as steps,
    pg_restore_steps as steps_restore,
)
from tasks.backup.verify.locate import BackupFile
from tasks.backup.verify.measure import Measurement
from tasks.backup.verify.oracle_steps import EXPDP_SCRIPT, IMPDP_SCRIPT, RMAN_SCRIPT
from tasks.backup.verify.outputs import Located, Restored, VerifyContext
from tasks.backup.verify import reading as rd
from tasks.backup.verify.reading import AsOf
from tasks.backup.verify.fingerprint import ChunkHash, TableFingerprint
from tasks.backup.verify.catalog import DbObject
from tasks.connect.ssh import CommandResult
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from test_backup_verify_oracle import (BANNER, CORRUPT_LISTING, END, EXPORT_LOG, IMPORT_2_ERRORS, IMPORT_HEAD,
                                       IMPORT_OK, PREVIEW, VALIDATE_OK, _binds, _row)

TZ, SCN, STAMP, HOME = "Asia/Shanghai", 918273645, "20260331_020000", "/u01/app/oracle/product/19c"
SCRATCH = f"EBOPS_VERIFY_{STAMP}"
DUMP_NAME = f"ebops_verify_{STAMP}.dmp"
DUMP = f"/u02/dpdump/{DUMP_NAME}"
SIZE, DIGEST = 1_503_238_553, "ab" * 32
ISSUED = datetime(2026, 3, 30, 9, 15)
CREATE = (f'CREATE USER "{SCRATCH}" NO AUTHENTICATION DEFAULT TABLESPACE "EBOPS_VERIFY" '
          f'QUOTA UNLIMITED ON "EBOPS_VERIFY"')
DROP = f'DROP USER "{SCRATCH}" CASCADE'
WARNINGS_ONLY = IMPORT_HEAD + """\
ORA-39082: Object type PACKAGE_BODY:"EBOPS_VERIFY_20260331"."PKG_EBILL_SYNC" created with compilation warnings
Job "SYS"."SYS_IMPORT_SCHEMA_01" completed with 1 error(s) at Tue Mar 31 23:41:07 2026 elapsed 0 00:21:05
"""
CFG = dict(host="ebilldb", dialect="oracle", schema="EBILL", tools_dir=HOME, oracle_sid="EBILL",
           oracle_directory="EBOPS_DP", oracle_dump_directory="/u02/dpdump", sample_bills=1, chunk_rows=1000,
           oracle_remap_tablespaces={"EBILL_DATA": "EBOPS_VERIFY"}, cutoff_columns={"t_ebill_main": "ivc_datetime"},
           source={"dsn": "ebilldb:1521/EBILL", "user": "EBOPS_READ", "password": {"env": "X"}},
           scratch={"dsn": "ebilldb:1521/EBILL", "user": "EBOPS_VERIFY", "password": {"env": "X"},
                    "prefix": "EBOPS_VERIFY_", "oracle_tablespace": "EBOPS_VERIFY"})


def local_now() -> datetime:
    return datetime.now(ZoneInfo(TZ)).replace(tzinfo=None)


# ---------------------------------------------------------------- stand-ins
class FakeOracle:
    """The database side shared by every connection a test opens; `log` is shared with FakeSession."""

    def __init__(self, log: list):
        self.log, self.instance, self.existing, self.ddl, self.binds = log, "EBILL", set(), [], {}
        self.jobs = [_row(1860, "ARCHIVELOG", "FAILED", local_now() - timedelta(hours=2)),
                     _row(1852, "DB FULL", "COMPLETED", local_now() - timedelta(hours=20))]

    def connect(self, db) -> "FakeConnection":
        return FakeConnection(self, db.user)

    def answer(self, tree: exp.Expression, sql: str, params: dict, user: str):
        if isinstance(tree, exp.Command):  # sqlglot has no model of CREATE/DROP USER
            assert sql.startswith(('CREATE USER "', 'DROP USER "')) and len(sqlglot.parse(sql, read="oracle")) == 1
            self.ddl.append(sql)
            return None
        table = tree.find(exp.Table).name.lower()
        self.binds[table] = params
        if table == "v$database":
            return ["current_scn"], [(Decimal(SCN),)]
        if table == "all_users":
            return ["username", "created"], [(n, datetime(2026, 1, 5)) for n in self.existing if n == params["name"]]
        if table == "v$rman_backup_job_details":
            cols = list(_row(0, "DB FULL", "COMPLETED", ISSUED))
            return cols, [tuple(r[c] for c in cols) for r in self.jobs]
        if table == "dual" and "SYS_CONTEXT('USERENV', 'INSTANCE_NAME')" in sql:
            return ["instance_name"], [(self.instance,)]
        if table == "dual":  # the measure stubs: who is logged on
            return ["who"], [(user,)]
        raise AssertionError(f"unexpected SQL: {sql}")


class FakeConnection:
    """A python-oracledb connection (`with` closes it) whose cursor() is itself, as a context manager."""

    def __init__(self, db: FakeOracle, user: str):
        self.db, self.user, self.closed, self.description, self.rows = db, user, False, None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def cursor(self) -> nullcontext:
        return nullcontext(self)

    def execute(self, sql: str, params: dict | None = None):
        assert not self.closed, "statement on a closed connection"
        params = params or {}
        tree = sqlglot.parse_one(sql, read="oracle")  # raises on anything that is not Oracle SQL
        assert _binds(sql) == set(params), (sql, params)
        if not isinstance(tree, exp.Command):
            assert {p.name for p in tree.find_all(exp.Placeholder)} == set(params), (sql, params)
        self.db.log.append(("sql", self.user, " ".join(sql.split())))
        answer = self.db.answer(tree, sql, params, self.user)
        self.description = None if answer is None else [(c.upper(), None, None, None, None, None, True)
                                                        for c in answer[0]]
        self.rows = [] if answer is None else answer[1]

    def fetchall(self) -> list[tuple]:
        return list(self.rows)


RMAN_KIND = {"RESTORE DATABASE VALIDATE CHECK LOGICAL;": "rman validate",
             "RESTORE DATABASE PREVIEW SUMMARY;": "rman preview"}


class FakeSession:
    def __init__(self, log: list):
        self.log, self.cfg, self.calls = log, SimpleNamespace(name="ebilldb"), []
        self.out = {"expdp": (EXPORT_LOG, 0), "rman validate": (VALIDATE_OK, 0), "rman preview": (PREVIEW, 0),
                    "impdp": (IMPORT_OK, 0)}

    def _done(self, name: str, argv: list[str], text: str, code: int) -> CommandResult:
        self.calls.append((name, argv))
        self.log.append(("host", name))
        now = datetime.now(timezone.utc)
        return CommandResult("ebilldb", shlex.join(argv), code, text, "", now, now)

    def run_script(self, script: str, args=(), timeout=None) -> CommandResult:
        name = RMAN_KIND[args[-1]] if script == RMAN_SCRIPT else {EXPDP_SCRIPT: "expdp",
                                                                   IMPDP_SCRIPT: "impdp"}[script]
        return self._done(name, list(args), *self.out[name])

    def run(self, argv: list[str], timeout=None) -> CommandResult:
        text = {"stat": f"{SIZE}\n", "sha256sum": f"{DIGEST}  {argv[-1]}\n"}[argv[0]]
        return self._done(argv[0], list(argv), text, 0)

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def args(self, name: str) -> list[str]:
        return next(a for n, a in self.calls if n == name)


def measurement(second_chunk: str = "00000000000000000000b2c3", newest_hours_ago: float = 3) -> Measurement:
    chunks = (ChunkHash(0, 1000, "0000000000000000000a1b2c", "1", "1000"),
              ChunkHash(1, 500, second_chunk, "1001", "1500"))
    main = TableFingerprint("T_EBILL_MAIN", "sum", 1000, ("ID", "IVC_DATETIME", "TOTAL_AMT"), ("ID",), chunks)
    inventory = frozenset({DbObject("table", "T_EBILL_MAIN"), DbObject("index", "PK_T_EBILL_MAIN", "T_EBILL_MAIN")})
    return Measurement(inventory, {"T_EBILL_MAIN": 1500}, {"T_EBILL_MAIN": main},
                       local_now() - timedelta(hours=newest_hours_ago), 2.5)


def sample(total: str = "12.50") -> dict:
    return {(101, ISSUED): {"id": 101, "ivc_datetime": ISSUED, "bill_batch_code": "B01", "bill_number": "A101",
                            "total_amt": Decimal(total)}}


class Measurer:
    """Stands for measure.measure / measure.sample_bills: answers per schema, records what it was asked."""

    def __init__(self):
        self.by_schema = {"EBILL": measurement(), SCRATCH: measurement()}
        self.samples = {"EBILL": sample(), SCRATCH: sample()}
        self.calls = []

    @staticmethod
    def who(fetch) -> str:  # the account of the connection the stub was handed
        return fetch(rd.Statement("SELECT USER AS who FROM dual"))[0]["who"]

    def measure(self, fetch, dialect, schema, *, as_of, chunk_rows, mutable_columns=None, key_shifts=None,
                methods=None):
        assert (dialect, chunk_rows) == ("oracle", 1000)
        # the copy is cut like production: the first side's chunking is handed to the second
        self.shifts = getattr(self, "shifts", []) + [key_shifts]
        self.calls.append(("measure", schema, self.who(fetch), as_of))
        return self.by_schema[schema]

    def sample_bills(self, fetch, dialect, schema, n, as_of, keys=None):
        self.calls.append(("sample", schema, self.who(fetch), as_of) + ((keys,) if keys is not None else ()))
        return self.samples[schema]


@pytest.fixture
def env(monkeypatch):
    log: list = []
    db, stubs = FakeOracle(log), Measurer()
    monkeypatch.setattr(oracle_tasks, "connect", db.connect)
    monkeypatch.setattr(measure, "measure", stubs.measure)
    monkeypatch.setattr(measure, "sample_bills", stubs.sample_bills)
    ctx = VerifyContext("qh", TZ, BackupVerificationConfig(**CFG))
    return SimpleNamespace(ctx=ctx, session=FakeSession(log), db=db, stubs=stubs, log=log,
                           dumps=oracle_tasks.dump_config(ctx, None))


def ours(taken_by_us: bool = True) -> Located:
    """What step 1 hands on for a backup that was found (or, taken_by_us, taken by this run)."""
    return Located([], backup=BackupFile("ebilldb", DUMP, SIZE, DIGEST, datetime.now(timezone.utc), "test",
                                         taken_by_us=taken_by_us))


def restored(env, taken_by_us: bool = True) -> tuple[Located, Restored]:
    """Steps 1 and 3 done: production measured in the snapshot when the backup is ours."""
    located = ours(taken_by_us)
    if taken_by_us:
        located = Located([], backup=located.backup, source=env.stubs.by_schema["EBILL"],
                          source_sample=env.stubs.samples["EBILL"])
    return located, Restored([], scratch=SCRATCH, created=True, seconds=600.0)


def sql_by(env, user: str) -> list[str]:
    return [e[2] for e in env.log if e[0] == "sql" and e[1] == user]


# ---------------------------------------------------------------- 1. take a dump at an SCN
def test_take_backup_exports_at_the_current_scn_and_measures_production_as_of_it(env):
    located = oracle_tasks.take_backup.fn(env.ctx, env.session, env.dumps, STAMP)
    recs = located.records
    assert [r.status for r in recs] == [Status.OK]
    args = env.session.args("expdp")
    assert args[:2] == [HOME, "EBILL"]
    assert {f"FLASHBACK_SCN={SCN}", "SCHEMAS=EBILL", "DIRECTORY=EBOPS_DP", f"DUMPFILE={DUMP_NAME}",
            f"LOGFILE=ebops_verify_{STAMP}_exp.log", "REUSE_DUMPFILES=NO"} <= set(args)
    assert env.session.args("stat") == ["stat", "-c", "%s", "--", DUMP]
    assert env.session.args("sha256sum") == ["sha256sum", "--", DUMP]
    assert env.stubs.calls == [("measure", "EBILL", "EBOPS_READ", AsOf(scn=SCN)),
                               ("sample", "EBILL", "EBOPS_READ", AsOf(scn=SCN))]
    assert env.log.index(("sql", "EBOPS_READ", rd.ORACLE_CURRENT_SCN_SQL)) < env.log.index(("host", "expdp"))
    b = located.backup
    assert (b.path, b.name, b.size, b.sha256, b.taken_by_us, b.snapshot_id) == (DUMP, DUMP_NAME, SIZE, DIGEST, True,
                                                                                 f"SCN {SCN}")
    assert located.source is env.stubs.by_schema["EBILL"] and located.source_sample is env.stubs.samples["EBILL"]
    assert (recs[0].target, recs[0].value) == (DUMP, SIZE)
    assert f"FLASHBACK_SCN={SCN}" in recs[0].reason and DIGEST in recs[0].reason and "4 张表" in recs[0].reason
    assert json.loads(located.files["source_fingerprints.json"])["counts"] == {"T_EBILL_MAIN": 1500}


@pytest.mark.parametrize("text,code,word", [
    (EXPORT_LOG.replace('Job "SYS"', 'ORA-01555: snapshot too old: rollback segment number 12 too small\nJob "SYS"')
     .replace("successfully completed", "completed with 1 error(s)"), 0, "ORA-01555"),
    (EXPORT_LOG, 1, "退出码 1"),
])
def test_take_backup_fails_on_an_oracle_error_or_exit_code(env, text, code, word):
    env.session.out["expdp"] = (text, code)
    located = oracle_tasks.take_backup.fn(env.ctx, env.session, env.dumps, STAMP)
    recs = located.records
    assert [(r.status, r.code) for r in recs] == [(Status.FAIL, Code.DUMP_FAILED)] and word in recs[0].reason
    assert located.backup is None and located.source is None and env.stubs.calls == [] and not located.ok
    assert env.session.names() == ["expdp"]


# ---------------------------------------------------------------- 2. validate (RMAN)
def test_validate_runs_rman_validate_and_preview_and_reads_the_job_history(env):
    recs = oracle_tasks.validate_backup.fn(env.ctx, env.session, ours()).records
    assert [r.status for r in recs] == [Status.OK] * 3
    assert env.session.calls == [("rman validate", [HOME, "EBILL", "RESTORE DATABASE VALIDATE CHECK LOGICAL;"]),
                                 ("rman preview", [HOME, "EBILL", "RESTORE DATABASE PREVIEW SUMMARY;"])]
    assert "Finished restore at 2026-03-31 23:10:05" in recs[0].reason
    assert recs[2].value == 2 and "1852" in recs[2].reason and "COMPLETED" in recs[2].reason
    since = env.db.binds["v$rman_backup_job_details"]["since"]
    assert since.tzinfo is None and abs(since - (local_now() - timedelta(days=8))) < timedelta(minutes=1)


def rman(kind: str, text: str, code: int):
    return lambda env: env.session.out.__setitem__(kind, (text, code))


def newest_job(status: str):
    return lambda env: env.db.jobs.insert(0, _row(1871, "DB INCR", status, local_now() - timedelta(hours=5)))


@pytest.mark.parametrize("setup,failed,value,words,code", [
    (rman("rman validate", BANNER + CORRUPT_LISTING + END, 0), 0, 5, ["5 个坏块"], Code.BACKUP_CORRUPT),
    (rman("rman validate", VALIDATE_OK, 1), 0, None, ["退出码 1", "输出与退出码不一致"],  # pgBackRest #2502
     Code.BACKUP_UNREADABLE),
    (rman("rman preview", PREVIEW, 1), 1, None, ["退出码 1"], Code.BACKUP_UNREADABLE),
    (newest_job("FAILED"), 2, 3, ["1871", "FAILED", "失败"], Code.RMAN_JOB_FAILED),
])
def test_validate_fails_on_corruption_a_disagreeing_exit_code_or_a_failed_job(env, setup, failed, value, words, code):
    setup(env)
    validated = oracle_tasks.validate_backup.fn(env.ctx, env.session, ours())
    recs = validated.records
    assert not validated.ok
    assert [r.status for r in recs] == [Status.FAIL if i == failed else Status.OK for i in range(3)]
    assert recs[failed].value == value and all(w in recs[failed].reason for w in words)
    assert [r.code for r in recs] == [code if i == failed else Code.OK for i in range(3)]


def test_validate_restore_and_verify_without_a_backup_are_skipped_and_touch_nothing(env):
    nothing = Located([])
    recs = oracle_tasks.validate_backup.fn(env.ctx, env.session, nothing).records
    not_restored = oracle_tasks.restore_to_scratch.fn(env.ctx, env.session, nothing, SCRATCH)
    recs += not_restored.records
    recs += oracle_tasks.verify_restored.fn(env.ctx, nothing, not_restored).records
    assert (not_restored.scratch, not_restored.created) == (None, False)
    assert [r.status for r in recs] == [Status.SKIPPED] * 3 and env.log == [] and env.stubs.calls == []
    assert {r.code for r in recs} == {Code.EARLIER_STEP_FAILED}


# ---------------------------------------------------------------- 3. restore (impdp into a new scratch schema)
def test_restore_creates_the_scratch_schema_then_imports_with_remap(env):
    done = oracle_tasks.restore_to_scratch.fn(env.ctx, env.session, ours(), SCRATCH.lower())
    recs = done.records
    assert [r.status for r in recs] == [Status.OK] and f"REMAP_SCHEMA=EBILL:{SCRATCH}" in recs[0].reason
    assert env.db.ddl == [CREATE] and env.db.binds["all_users"] == {"name": SCRATCH}
    assert env.log.index(("sql", "EBOPS_VERIFY", CREATE)) < env.log.index(("host", "impdp"))
    args = env.session.args("impdp")
    assert {"SCHEMAS=EBILL", f"REMAP_SCHEMA=EBILL:{SCRATCH}", f"DUMPFILE={DUMP_NAME}", "DIRECTORY=EBOPS_DP",
            f"LOGFILE={SCRATCH.lower()}_imp.log", "REMAP_TABLESPACE=EBILL_DATA:EBOPS_VERIFY", "EXCLUDE=JOB",
            "TABLE_EXISTS_ACTION=SKIP"} <= set(args)
    assert (done.scratch, done.created, done.ok) == (SCRATCH, True, True)
    assert recs[0].value == round(done.seconds, 1)
    assert sql_by(env, "EBOPS_READ") == []  # everything on the verification account


@pytest.mark.parametrize("scratch,change,word", [
    ("ebill", {}, "production schema"),
    ("EBILL_COPY_1", {}, "lacks the prefix"),
    (SCRATCH, {"existing": {SCRATCH}}, "已存在"),
    (SCRATCH, {"instance": "EBILLDG"}, "EBILLDG"),
])
def test_restore_refusals_create_nothing_and_import_nothing(env, scratch, change, word):
    for k, v in change.items():
        setattr(env.db, k, v)
    refused = oracle_tasks.restore_to_scratch.fn(env.ctx, env.session, ours(), scratch)
    recs = refused.records
    assert [(r.status, r.code) for r in recs] == [(Status.FAIL, Code.RESTORE_TARGET_REFUSED)]
    assert "恢复目标安全检查" in recs[0].title and word in recs[0].reason
    assert env.db.ddl == [] and env.session.calls == []
    assert (refused.scratch, refused.created, refused.seconds) == (None, False, None)


@pytest.mark.parametrize("text,code,status,word", [
    (WARNINGS_ONLY, 5, Status.OK, "1 个对象带编译警告"),
    (IMPORT_2_ERRORS, 5, Status.FAIL, "ORA-01652"),
    (IMPORT_OK, 1, Status.FAIL, "退出码 1"),
])
def test_restore_judges_impdp_by_log_and_exit_code(env, text, code, status, word):
    env.session.out["impdp"] = (text, code)
    done = oracle_tasks.restore_to_scratch.fn(env.ctx, env.session, ours(), SCRATCH)
    recs = done.records
    assert [r.status for r in recs] == [status] and word in recs[0].reason
    assert recs[0].code == (Code.OK if status is Status.OK else Code.RESTORE_FAILED)
    assert done.created and done.seconds is not None  # cleanup still drops it


# ---------------------------------------------------------------- 4. verify
def test_verify_equal_copy_is_ok_and_our_backup_is_not_measured_again(env):
    located, copy = restored(env)
    source = located.source
    verified = oracle_tasks.verify_restored.fn(env.ctx, located, copy)
    recs = verified.records
    assert [(r.check, r.status) for r in recs] == [
        ("restore_inventory", Status.OK), ("restore_row_count", Status.OK), ("restore_fingerprint", Status.OK),
        ("backup_verify", Status.OK), ("backup_verify", Status.OK), ("backup_verify", Status.OK)]
    assert "RPO" in recs[4].title and 2.9 <= recs[4].value <= 3.01
    assert "RTO" in recs[5].title and recs[5].value == 10.0 and "impdp" in recs[5].reason
    assert env.stubs.calls == [("measure", SCRATCH, "EBOPS_VERIFY", None),
                               ("sample", SCRATCH, "EBOPS_VERIFY", None)]
    assert located.source is source and sql_by(env, "EBOPS_READ") == []
    assert "restored_fingerprints.json" in verified.files and "source_fingerprints.json" not in verified.files


@pytest.mark.parametrize("copy,total,failed", [
    ({"second_chunk": "00000000000000000000ffff"}, "12.50", [("内容指纹", "第 1 块", 1, Code.CHECKSUM_MISMATCH)]),
    ({"newest_hours_ago": 40}, "99.00", [("票据抽样", "total_amt", 1, Code.SAMPLE_MISMATCH),
                                         ("RPO", "相差 40.0", 40.0, Code.RPO_EXCEEDED)]),
])
def test_verify_fails_naming_what_differs(env, copy, total, failed):
    env.stubs.by_schema[SCRATCH], env.stubs.samples[SCRATCH] = measurement(**copy), sample(total)
    bad = [r for r in oracle_tasks.verify_restored.fn(env.ctx, *restored(env)).records if r.status is not Status.OK]
    assert [r.status for r in bad] == [Status.FAIL] * len(failed)
    for r, (title, word, value, code) in zip(bad, failed):
        assert title in r.title and word in r.reason and abs(r.value - value) < 0.02 and r.code == code
    assert "99.00" not in "".join(r.reason + r.raw for r in bad)  # fields are named, values never shown


def test_verify_someone_elses_backup_measures_production_with_the_cutoff(env):
    located, copy = restored(env, taken_by_us=False)
    verified = oracle_tasks.verify_restored.fn(env.ctx, located, copy)
    assert all(r.status is Status.OK for r in verified.records)
    assert "source_fingerprints.json" in verified.files  # production measured now: its side is kept too
    cut = AsOf(before=located.backup.taken_at.astimezone(ZoneInfo(TZ)).replace(tzinfo=None),
               cutoff_columns={"t_ebill_main": "IVC_DATETIME"})
    assert env.stubs.calls == [("measure", SCRATCH, "EBOPS_VERIFY", cut), ("sample", SCRATCH, "EBOPS_VERIFY", cut),
                               ("measure", "EBILL", "EBOPS_READ", cut),
                               ("sample", "EBILL", "EBOPS_READ", cut, [{"id": 101, "ivc_datetime": ISSUED}])]


# ---------------------------------------------------------------- 5. clean up
@pytest.mark.parametrize("created,keep,scratch,status,ddl", [
    (True, False, SCRATCH, Status.OK, [DROP]),
    (True, True, SCRATCH, Status.WARN, []),
    (False, False, None, Status.OK, []),
    (True, False, "EBILL", Status.ERROR, []),  # never drops a schema without the prefix
])
def test_cleanup_drops_only_the_scratch_schema_this_run_created(env, created, keep, scratch, status, ddl):
    recs = oracle_tasks.cleanup.fn(env.ctx, Restored([], scratch=scratch, created=created), keep)
    assert [r.status for r in recs] == [status] and env.db.ddl == ddl
    assert sql_by(env, "EBOPS_VERIFY") == ddl


# ---------------------------------------------------------------- 6. backends
def test_backend_for_chooses_each_familys_tasks_plan_and_dump_location(env, monkeypatch):
    ora, pg = backends.backend_for("oracle"), backends.backend_for("postgresql")
    assert (ora.take_backup, ora.validate, ora.verify, ora.cleanup, ora.location) == (
        oracle_tasks.take_backup, oracle_tasks.validate_backup, oracle_tasks.verify_restored, oracle_tasks.cleanup,
        oracle_tasks.dump_config)
    assert (pg.take_backup, pg.validate, pg.restore, pg.verify, pg.cleanup) == (
        steps.take_backup, steps.validate_backup, steps_restore.restore_to_scratch, steps_restore.verify_restored,
        steps_restore.cleanup)
    seen = []
    monkeypatch.setattr(oracle_tasks, "restore_to_scratch", lambda *a: seen.append(a) or ["restored"])
    located = ours()
    assert ora.restore(env.ctx, env.session, located, SCRATCH, "prefect-run-1") == ["restored"]
    assert seen == [(env.ctx, env.session, located, SCRATCH)]  # the Prefect run id is PostgreSQL's only
    with pytest.raises(ValueError, match="'mssql'"):
        backends.backend_for("mssql")
    plan = ora.plan(env.ctx, True, SCRATCH.lower())
    assert set(plan) == {"locate", "validate", "restore", "verify", "cleanup"}
    assert "FLASHBACK_SCN" in plan["locate"][1] and "RMAN" in plan["validate"][1]
    assert "impdp REMAP_SCHEMA" in plan["restore"][1] and SCRATCH in plan["restore"][1]
    assert plan["cleanup"][1] == f"DROP USER {SCRATCH} CASCADE"
    assert "Data Pump" in ora.plan(env.ctx, False, SCRATCH)["locate"][1]
    assert (env.dumps.directory, env.dumps.pattern) == ("/u02/dpdump", "*.dmp")
    env.ctx.cfg.oracle_dump_directory = None
    assert oracle_tasks.dump_config(env.ctx, BackupConfig(directory="/backup/dp")).directory == "/backup/dp"
    with pytest.raises(ValueError, match="oracle_dump_directory"):
        oracle_tasks.dump_config(env.ctx, None)


# ---------------------------------------------------------------- 7. the whole sequence
def test_take_validate_restore_verify_cleanup_in_order(env):
    ctx, s = env.ctx, env.session
    located = oracle_tasks.take_backup.fn(ctx, s, env.dumps, STAMP)
    validated = oracle_tasks.validate_backup.fn(ctx, s, located)
    copy = oracle_tasks.restore_to_scratch.fn(ctx, s, located, SCRATCH)
    verified = oracle_tasks.verify_restored.fn(ctx, located, copy)
    recs = located.records + validated.records + copy.records + verified.records
    recs += oracle_tasks.cleanup.fn(ctx, copy, False)
    assert [(r.title, r.reason) for r in recs if r.status is not Status.OK] == [] and len(recs) == 12
    assert s.names() == ["expdp", "stat", "sha256sum", "rman validate", "rman preview", "impdp"]
    assert env.db.ddl == [CREATE, DROP]
    assert env.stubs.calls == [("measure", "EBILL", "EBOPS_READ", AsOf(scn=SCN)),
                               ("sample", "EBILL", "EBOPS_READ", AsOf(scn=SCN)),
                               ("measure", SCRATCH, "EBOPS_VERIFY", None), ("sample", SCRATCH, "EBOPS_VERIFY", None)]
