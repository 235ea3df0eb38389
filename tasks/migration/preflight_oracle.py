"""The preflight's users on an Oracle target of a Data Pump migration (read only).

impdp SCHEMAS=EBILL,EBOPS creates the canonical views' owner (oracle.imported_owner) on the target:
a user of that name already there makes it end with errors (ORA-31684 object exists, exit status 5)
or mixes its old objects with the imported ones, so it must not exist yet. Nothing imports the
accounts the checks read the target through, so they must exist before the import: the site's
read-only account (02_readonly_account.sql: the daily checks after the cut-over read the views
through it, and impdp imports the views' grants to it, ORA-01917 without it) and the verification
account (03_verify_account.sql: the verify phase reads as it). The preflight itself logs in to the
target as the verification account, so that one is found whenever the target could be read; it is
listed so that the record names every account the import does not bring. RMAN DUPLICATE copies
every user with the database and a cross-engine move has no Oracle target: not checked there.
"""
from __future__ import annotations

from dataclasses import dataclass

from tasks.backup.verify import measure
from tasks.core.reason_codes import Code
from tasks.core.results import Status
from tasks.migration import db, oracle
from tasks.migration.context import Migration
from tasks.migration.journal import PhaseRun

SCRIPTS = "config/sql/oracle/"


@dataclass(frozen=True)
class Account:
    role: str       # what it is for, as the record says it
    user: str       # as dba_users spells it
    script: str     # the DBA's script that creates it
    exists: bool


@dataclass(frozen=True)
class TargetUsers:
    owner: str | None            # the canonical views' owner impdp creates; None: the views are in the vendor's schema
    owner_exists: bool
    accounts: list[Account]


def applies(m: Migration) -> bool:
    """An Oracle -> Oracle move by Data Pump (impdp into an open database the preflight logs in to)."""
    return m.cfg.source.engine == m.cfg.target.engine == "oracle" and not oracle.duplicates(m.cfg)


def _exists(fetch: measure.Fetch, user: str) -> bool:
    rows = fetch(db.statement("oracle", "user_exists", "", {"username": user}))
    return bool(rows) and int(rows[0].get("n") or 0) > 0


def read(fetch: measure.Fetch, m: Migration) -> TargetUsers | None:
    """The users, read in the preflight's session on the target; None when the check does not apply."""
    if not applies(m):
        return None
    owner = oracle.imported_owner(m.cfg, oracle.canonical_schema(m.site))
    wanted = [("验证账号（迁移校验阶段以它读取目标库）", m.cfg.target.database.user, "03_verify_account.sql")]
    if m.site.database.dialect == "oracle":    # the daily checks read the canonical views through it
        wanted.insert(0, ("只读账号（切换后日常检查以它读取新库）", m.site.database.user, "02_readonly_account.sql"))
    accounts = [Account(role, name, script, _exists(fetch, name))
                for role, name, script in ((r, measure.catalog_name("oracle", u), s) for r, u, s in wanted)]
    return TargetUsers(owner, bool(owner) and _exists(fetch, owner), accounts)


def _hint(a: Account) -> str:
    run = f"请 DBA 在目标库以 SYS 运行 {SCRIPTS}{a.script}"
    if a.script.startswith("02_"):   # its grants on the views fail before the import brings them
        run += ("（导入前规范视图尚不存在，脚本在授予视图权限处停止属预期：账号已建好，impdp 随后导入视图对它的授权；"
                "导入后再完整运行一次，补齐监控视图的授权）")
    return f"{a.role} {a.user}：{run}"


def check(m: Migration, ph: PhaseRun, users: TargetUsers | None) -> None:
    """Two records: the canonical views' owner absent (when it is moved), the checks' accounts present."""
    if users is None:
        return
    dsn, schema = m.cfg.target.database.dsn, measure.catalog_name("oracle", m.cfg.schema_name)
    if users.owner:
        owner, there = users.owner, users.owner_exists
        ph.check("规范视图属主", Status.FAIL if there else Status.OK,
                 f"目标库已有用户 {owner}（规范视图属主）：Data Pump 导入 SCHEMAS={schema},{owner} 会因对象已存在而报错"
                 f"（ORA-31684，impdp 退出码 5）或把原有对象与导入的对象混在一起；迁移拒绝开始（应用未停止）。"
                 f"请 DBA 确认目标库的 {owner} 无需保留后删除（DROP USER {owner} CASCADE），或确认其来历后重建目标库"
                 if there else f"目标库尚无用户 {owner}：impdp 将随厂商模式 {schema} 一起创建它及规范视图",
                 value=owner, threshold="不存在", target=dsn, code=Code.MIGRATION_TARGET_NOT_EMPTY if there else "")
    missing = [a for a in users.accounts if not a.exists]
    ph.check("目标库账号", Status.FAIL if missing else Status.OK,
             "目标库缺少账号（Data Pump 不导入账号）：" + "；".join(_hint(a) for a in missing) + "。迁移拒绝开始（应用未停止）"
             if missing else "目标库已有检查所用账号：" + "；".join(f"{a.role} {a.user}" for a in users.accounts)
             + f"（Data Pump 只导入 {schema} 与规范视图属主，不导入这些账号）",
             value=len(missing), unit="个缺失", threshold="0", target=dsn,
             code=Code.MIGRATION_ACCOUNT_MISSING if missing else "")
