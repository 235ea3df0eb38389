"""Inspection checks that read the e-bill database through the read-only account."""
from __future__ import annotations

from config.settings import Site
from tasks.core.check_task import check_task
from tasks.connect.database import connect
from tasks.connect.database.base import TablespaceUsage
from tasks.connect.df import disk_usage as df_paths
from tasks.connect.ssh import HostPool
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, grade, utcnow

_KIND_ZH = {"permanent": "表空间使用率", "temp": "临时表空间使用率", "undo": "回滚表空间使用率"}


def _with_filesystem(usages: list[TablespaceUsage], site: Site, pool: HostPool) -> dict[str, tuple[float, str]]:
    """PostgreSQL has no autoextend limit: a tablespace can grow until its filesystem is full, so
    its usage is its size against (size + the filesystem's free space), measured over SSH on the
    database server. Returns {tablespace: (pct, how)}."""
    hosts = site.hosts_with_role("database")
    located = [u for u in usages if u.location]
    if not hosts or not located:
        return {}
    mounts = df_paths(pool.get(hosts[0]), [u.location for u in located])
    by_path = {m.path: m for m in mounts}
    out = {}
    for u in located:
        m = by_path.get(u.location)
        if m is None:
            continue
        avail = m.avail_kb * 1024
        pct = 100.0 * u.used_bytes / (u.used_bytes + avail) if (u.used_bytes + avail) else 0.0
        out[u.name] = (pct, f"已用 {u.used_bytes / 1048576:.1f} MiB，所在文件系统 {m.mounted_on} 可用 {avail / 1073741824:.1f} GiB")
    return out


def database_host(site: Site) -> str:
    """The `host` of a database record: the database server as the site file names it, else the
    server of the DSN (the dialect is not a host; it goes into the record's raw output)."""
    hosts = site.hosts_with_role("database")
    if hosts:
        return hosts[0].name
    dsn = site.database.dsn
    if site.database.dialect == "oracle":  # host:port/service_name
        return dsn.split("/", 1)[0].rsplit(":", 1)[0].lstrip("/") or "database"
    parts = dict(kv.split("=", 1) for kv in dsn.split() if "=" in kv)  # libpq conninfo
    return parts.get("host", "database")


def _tablespace_fields(site: Site, *_: object) -> dict:
    return dict(check="tablespace_usage", title="表空间使用率", site=site.site, host=database_host(site),
                target="database")


@check_task("tablespace_usage", error_fields=_tablespace_fields)
def tablespace_usage(site: Site, pool: HostPool) -> list[CheckResult]:
    """Autoextend-aware tablespace usage: Oracle from DBA_TABLESPACE_USAGE_METRICS (TEMP and UNDO
    apart); PostgreSQL each tablespace against its filesystem's free space."""
    th = site.thresholds
    started = utcnow()
    threshold = f"警告 ≥ {th.tablespace_warn_pct:g}%，异常 ≥ {th.tablespace_fail_pct:g}%"
    base = dict(check="tablespace_usage", site=site.site, host=database_host(site))
    # Any failure here becomes check_task's ERROR record (target: the database).
    with connect(site.database) as db:
        usages = db.tablespace_usage()
    measured = {u.name: (u.used_pct, f"已用 {u.used_bytes / 1048576:.1f} MiB / 上限 {u.max_bytes / 1048576:.1f} MiB")
                for u in usages if u.used_pct is not None and u.max_bytes}
    if len(measured) < len(usages):
        measured.update(_with_filesystem([u for u in usages if u.name not in measured], site, pool))
    out = []
    for u in usages:
        title = _KIND_ZH.get(u.kind, "表空间使用率")
        if u.name not in measured:
            out.append(CheckResult(**base, title=title, target=u.name, threshold=threshold, status=Status.SKIPPED,
                                   code=Code.TABLESPACE_LIMIT_UNKNOWN,
                                   reason="无法得到该表空间的容量上限（站点配置中没有数据库服务器，或位置不可见）",
                                   started_at=started))
            continue
        pct, how = measured[u.name]
        out.append(CheckResult(**base, title=title, target=u.name, value=round(pct, 2), unit="%",
                               threshold=threshold, status=grade(pct, th.tablespace_warn_pct, th.tablespace_fail_pct),
                               code=Code.OK if pct < th.tablespace_warn_pct else Code.TABLESPACE_USAGE_HIGH,
                               reason=how, raw=f"{site.database.dialect}: {u!r}", started_at=started, finished_at=utcnow()))
    return out
