"""The e-bill functions answer (MZ 一.11-16): issue, red-flush, query, archive, delivery, reports,
administration — one health URL each, GET must answer 2xx.
"""
from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from config.settings import EBILL_FUNCTIONS_ZH, Site
from tasks.core.check_task import check_task
from tasks.core.reason_codes import Code
from tasks.core.results import CheckResult, Status, utcnow

CHECK, TITLE = "ebill_function", "电子票据功能可用性"
THRESHOLD = "健康检查地址返回 HTTP 2xx"
MAX_BODY_CHARS = 500
MAX_CALLS_IN_FLIGHT = 4


def function_target(key: str) -> str:
    return f"{EBILL_FUNCTIONS_ZH.get(key, key)}（{key}）"


def _client(site: Site) -> httpx.Client:
    h = site.health
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=h.ca_file) if h.ca_file else True
    # trust_env=False: the health URLs are on the hospital's intranet; a proxy inherited from the
    # worker's environment would measure the proxy, not the e-bill system. No redirects: a health
    # URL that redirects (to a login page, typically) is not answering as a health URL.
    return httpx.Client(timeout=h.timeout_s, verify=verify, trust_env=False, follow_redirects=False,
                        headers={"User-Agent": "ebill-ops inspection"})


def _call(client: httpx.Client, site_id: str, key: str, url: str) -> CheckResult:
    started = utcnow()
    base = dict(check=CHECK, title=TITLE, site=site_id, target=function_target(key), threshold=THRESHOLD,
                started_at=started)
    t0 = time.perf_counter()
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return CheckResult(**base, status=Status.FAIL, code=Code.HTTP_UNREACHABLE, reason=f"调用失败：{type(exc).__name__}: {exc or '无详细信息'}",
                           raw=f"GET {url}", finished_at=utcnow())
    ms = round((time.perf_counter() - t0) * 1000)
    ok = 200 <= resp.status_code < 300
    reason = (f"HTTP {resp.status_code}，耗时 {ms} ms" if ok
              else f"HTTP {resp.status_code} {resp.reason_phrase}，健康检查未通过")
    return CheckResult(**base, value=ms, unit="ms", status=Status.OK if ok else Status.FAIL, reason=reason,
                       code=Code.OK if ok else Code.HTTP_STATUS_NOT_2XX,
                       raw=f"GET {url} -> {resp.status_code}\n{resp.text[:MAX_BODY_CHARS]}", finished_at=utcnow())


# No retry: a function that fails its health call now is the finding (availability, MZ 一.18).
@check_task("ebill_functions", error_fields=None, retries=0)
def ebill_functions(site: Site) -> list[CheckResult]:
    """One record per e-bill function, in the order of MZ 一.11-16 (EBILL_FUNCTIONS_ZH)."""
    if site.health is None:
        return [CheckResult(check=CHECK, title=TITLE, site=site.site, status=Status.SKIPPED, code=Code.NOT_CONFIGURED,
                            reason="站点文件没有配置电子票据功能的健康检查地址（health.urls）")]
    urls = site.health.urls
    calls = [(k, urls[k]) for k in EBILL_FUNCTIONS_ZH if k in urls]
    with _client(site) as client, ThreadPoolExecutor(max_workers=MAX_CALLS_IN_FLIGHT) as ex:
        done = dict(zip([k for k, _ in calls], ex.map(lambda kv: _call(client, site.site, *kv), calls)))
    # MZ 一.11-16 asks for all seven: one without a URL is reported as not checked, not dropped.
    return [done.get(key) or CheckResult(check=CHECK, title=TITLE, site=site.site, target=function_target(key),
                                         status=Status.SKIPPED, threshold=THRESHOLD, code=Code.NOT_CONFIGURED,
                                         reason="站点文件没有配置该功能的健康检查地址")
            for key in EBILL_FUNCTIONS_ZH]
