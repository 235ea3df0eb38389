"""Alerts to the hospital's chat robots (企业微信群机器人, 钉钉机器人) through apprise.

One digest message per notify target per run: a run's findings (WARN/FAIL/ERROR) at or above
the target's `min_status`, each finding once (deduplicated by check, host, target and status),
worst first, then the report link and the evidence prefix. A digest rather than one message per
finding because the robots are rate limited (企业微信: 20 messages a minute per robot) and a
duty engineer reads one message per run more reliably than a burst.

Messages stay under the robot's size limit: the lines that do not fit are cut and counted
("…另有 N 项"), the report link always stays, since the full list is in the report.

Delivery never fails the run: a receiver that is down, a URL apprise cannot parse or a missing
secret gives a `failed` record and a warning. The URL carries the robot's key, so it is never
logged, returned or written anywhere; apprise's own log lines are captured per call (they can
quote the key) and only a redacted form of them is kept.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
from typing import TYPE_CHECKING, Iterable

from config.problems import ConfigProblem
from config.secrets import PrefectSecret
from config.settings import NotifyTarget, SecretMissing, Site, resolve_secret
from tasks.core.masking import mask_name, mask_text
from tasks.core.results import CheckResult, Status

if TYPE_CHECKING:  # annotations only
    import apprise

# apprise is imported when a message is sent, not with the module: every flow run is a new process
# on a worker (~0.1 CPU-s), and most sites' runs send nothing.
LOGGER_NAME = "apprise"   # apprise.logger.LOGGER_NAME (tests/unit/test_alerts.py checks it)
ALERT_STATUSES = (Status.WARN, Status.FAIL, Status.ERROR)

# Byte limits of one message body, by URL scheme. apprise's wecombot plugin sends msgtype
# "text", whose content the WeCom API caps at 2048 bytes (markdown would be 4096); DingTalk
# caps text at 20000 bytes. Other schemes get a conservative limit that fits most chat robots.
BODY_LIMIT_BYTES = {"wecombot": 2048, "dingtalk": 20000}
DEFAULT_BODY_LIMIT_BYTES = 4000
# A single finding's line is cut here so one long reason cannot crowd out the others.
LINE_MAX_CHARS = 160

_log = logging.getLogger("ebops.alerts")


# ---------------------------------------------------------------- apprise log capture
class _AppriseCapture(logging.Filter):
    """Swallows apprise's log records emitted by the thread that is sending, keeping them for
    that send's error message. Per thread, because sites are alerted concurrently by the fleet;
    swallowed, because apprise may quote the robot key (e.g. "invalid WeCom Bot key ...")."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(self._local, "sink", None)
        if sink is None:
            return True
        if record.levelno >= logging.WARNING:
            sink.append(record.getMessage())
        return False

    def start(self) -> list[str]:
        self._local.sink = []
        return self._local.sink

    def stop(self) -> None:
        self._local.sink = None


_capture = _AppriseCapture()
logging.getLogger(LOGGER_NAME).addFilter(_capture)


def _redact(text: str, secret: str) -> str:
    """Remove the URL and each of its longer parts (key, token, host) from a message."""
    if not secret:
        return text
    parts = sorted({p for p in re.split(r"[/:?&=@,;#]+", secret) if len(p) >= 6} | {secret}, key=len, reverse=True)
    for p in parts:
        text = text.replace(p, "***")
    return text


# ---------------------------------------------------------------- the message
# mask_text cannot find a name by pattern, but a reason that quotes a row or a vendor's error
# may carry one behind a label ("缴款人：张三", "payer_name=张三"); an alert leaves the hospital's
# network (to WeCom/DingTalk servers), so labelled values are masked here as well.
_LABELLED_RE = re.compile(
    r"""(?P<label>payer_name|payer|patient_name|姓名|缴款人|交款人|付款人|患者姓名|患者|就诊人)"""
    r"""(?P<sep>["']?\s*[=:：]\s*["']?)(?P<value>[^\s,，;；"'}\]）)、]+)""", re.I)


def mask_alert_text(text: str) -> str:
    text = _LABELLED_RE.sub(lambda m: m.group("label") + m.group("sep") + (mask_name(m.group("value")) or ""), text)
    return mask_text(text)


def _logger():
    # Inside a flow or task run the Prefect run logger (the lines show in the UI); outside one
    # (CLI tools, unit tests) a plain logger, so send_alerts works anywhere. Prefect is only
    # consulted when already imported: no run can exist otherwise, and importing it is slow.
    if "prefect.context" in sys.modules:
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.logging import get_run_logger

        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            return get_run_logger()
    return _log


def findings_for(results: Iterable[CheckResult], min_status: str = "WARN") -> list[CheckResult]:
    """The findings a target with this min_status receives: once each, worst first."""
    floor = Status(min_status).rank
    seen: set[tuple] = set()
    out: list[CheckResult] = []
    for r in results:
        if r.status not in ALERT_STATUSES or r.status.rank < floor:
            continue
        key = (r.check, r.host or "", r.target, r.status)
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return sorted(out, key=lambda r: -r.status.rank)  # stable: catalogue order within a status


def _finding_line(i: int, r: CheckResult) -> str:
    where = " ".join(x for x in (r.host or "", r.target) if x)
    line = f"{i}.【{r.status.label_zh}】{r.title}"
    if where:
        line += f"（{where}）"
    line += f"：{r.reason or '见报告明细'}"
    return line if len(line) <= LINE_MAX_CHARS else line[: LINE_MAX_CHARS - 1] + "…"


def _fits(lines: list[str], limit: int) -> bool:
    return len("\n".join(lines).encode("utf-8")) <= limit


def compose_message(site: Site, findings: list[CheckResult], *, title: str, report_url: str | None,
                    evidence_prefix: str, limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES) -> str:
    """The digest's text, masked, at most `limit_bytes` bytes of UTF-8."""
    counts = [f"{s.label_zh} {n} 项" for s in reversed(ALERT_STATUSES) if (n := sum(1 for r in findings if r.status == s))]
    head = [mask_alert_text(f"【电子票据运维告警】{site.name}（{site.site}）{title}"), mask_alert_text("发现：" + "，".join(counts))]
    # The link and the prefix are generated by us and carry no personal data; they are kept out
    # of the masking because a digit run inside a presigned signature could be mistaken for a
    # phone number and the link broken.
    tail = [f"报告：{report_url}" if report_url else "报告：证据包暂存本地 outbox，上传后可用 ebops evidence url 取得链接",
            f"证据包：{evidence_prefix}"]
    if not _fits(head + tail, limit_bytes):
        tail = [f"证据包：{evidence_prefix}"]  # a link that long is useless in a chat anyway
    lines = [mask_alert_text(_finding_line(i, r)) for i, r in enumerate(findings, 1)]

    def digest(kept: int) -> list[str]:
        more = len(lines) - kept
        return head + lines[:kept] + ([f"…另有 {more} 项，详见报告"] if more else []) + tail

    kept = len(lines)
    while kept and not _fits(digest(kept), limit_bytes):
        kept -= 1
    text = "\n".join(digest(kept))
    return text.encode("utf-8")[:limit_bytes].decode("utf-8", "ignore")  # last guard: never over


def body_limit(url: str) -> int:
    return BODY_LIMIT_BYTES.get(url.split("://", 1)[0].lower(), DEFAULT_BODY_LIMIT_BYTES)


# ---------------------------------------------------------------- delivery
def _record(target: NotifyTarget, status: str, findings: int, error: str | None = None) -> dict:
    return {"target": target.name, "status": status, "findings": findings, "error": error}


def _url_hint(target: NotifyTarget) -> str:
    return f"检查 {target.url.describe()} 的值，应为 wecombot://KEY 或 dingtalk://TOKEN/ 等 apprise URL"


def _parse(url: str, target: NotifyTarget) -> tuple["apprise.Apprise | None", str | None]:
    """An Apprise object holding only this target's URL, or why the URL is unusable (without hint)."""
    import apprise

    client = apprise.Apprise()
    captured = _capture.start()
    try:
        ok = client.add(url)
    finally:
        _capture.stop()
    if ok and len(client) == 1:
        return client, None
    detail = "; ".join(_redact(m, url) for m in captured[-2:])
    return None, f"通知目标 {target.name} 的 URL 无法被 apprise 解析（协议未知或格式错误{'：' + detail if detail else ''}）"


def _client(url: str, target: NotifyTarget) -> tuple["apprise.Apprise | None", str | None]:
    """An Apprise object holding only this target's URL, or why the URL is unusable, with a hint."""
    client, problem = _parse(url, target)
    return client, (f"{problem}；hint: {_url_hint(target)}" if problem else None)


def _deliver(target: NotifyTarget, results: list[CheckResult], site: Site, title: str,
             report_url: str | None, evidence_prefix: str) -> dict:
    findings = findings_for(results, target.min_status)
    if not findings:
        return _record(target, "skipped", 0, None)
    try:
        url = resolve_secret(target.url)
    except SecretMissing as exc:
        return _record(target, "failed", len(findings), f"通知目标 {target.name} 的 URL 取不到：{exc}")
    client, problem = _client(url, target)
    if client is None:
        return _record(target, "failed", len(findings), problem)
    body = compose_message(site, findings, title=title, report_url=report_url,
                           evidence_prefix=evidence_prefix, limit_bytes=body_limit(url))
    import apprise

    kind = apprise.NotifyType.FAILURE if any(r.status != Status.WARN for r in findings) else apprise.NotifyType.WARNING
    captured = _capture.start()
    try:
        sent = client.notify(body=body, notify_type=kind)
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not fail the run either
        sent, captured = False, captured + [f"{type(exc).__name__}: {exc}"]
    finally:
        _capture.stop()
    if sent:
        return _record(target, "sent", len(findings), None)
    detail = "; ".join(_redact(m, url) for m in captured[-3:]) or "apprise 未说明原因"
    return _record(target, "failed", len(findings), f"通知目标 {target.name} 发送失败：{detail}")


def send_alerts(site: Site, results: list[CheckResult], *, title: str, report_url: str | None,
                evidence_prefix: str) -> list[dict]:
    """Send the run's findings to every notify target of the site; one record per target
    ({target, status: sent|failed|skipped, findings, error}). Never raises: an alert that cannot
    be delivered is a warning in the run's log, not a reason to lose the run's result."""
    logger = _logger()
    records = []
    for target in site.notify:
        try:
            rec = _deliver(target, results, site, title, report_url, evidence_prefix)
        except Exception as exc:  # noqa: BLE001 - belt and braces: see docstring
            rec = _record(target, "failed", 0, f"通知目标 {target.name} 发送时出错：{type(exc).__name__}")
        records.append(rec)
        if rec["status"] == "failed":
            logger.warning("告警未送达 %s（%d 项）：%s", target.name, rec["findings"], rec["error"])
        elif rec["status"] == "sent":
            logger.info("告警已发送至 %s（%d 项）", target.name, rec["findings"])
    return records


def validate_notify_urls(site: Site, file: str = "", missing_ok: bool = False) -> list[ConfigProblem]:
    """Problems with the site's notify URLs (secret missing, URL apprise cannot parse), without sending.

    `ebops config check` passes missing_ok: like every other secret, a robot URL is read where the
    worker runs, so an unset variable on the engineer's machine is not a fault of the site file,
    and a Prefect Secret is not fetched (a config check never needs the Prefect API).
    """
    problems = []
    for i, target in enumerate(site.notify):
        field = f"notify[{i}].url"
        if missing_ok and isinstance(target.url, PrefectSecret):
            continue
        try:
            url = resolve_secret(target.url)
        except SecretMissing as exc:
            if not missing_ok:
                problems.append(ConfigProblem(file, field, f"通知目标 {target.name}：{exc}",
                                              f"设置 {target.url.describe()}"))
            continue
        _, problem = _parse(url, target)
        if problem:
            problems.append(ConfigProblem(file, field, problem, _url_hint(target)))
    return problems


def deliver_text(target: NotifyTarget, body: str, failure: bool) -> dict:
    """Send one prepared text (masked here, cut to the robot's limit) to one target; a record as
    send_alerts gives ({target, status, findings: 1, error}). Never raises. Used by the watch, whose
    messages are state changes rather than a run's findings."""
    import apprise

    try:
        url = resolve_secret(target.url)
    except SecretMissing as exc:
        return _record(target, "failed", 1, f"通知目标 {target.name} 的 URL 取不到：{exc}")
    client, problem = _client(url, target)
    if client is None:
        return _record(target, "failed", 1, problem)
    text = mask_alert_text(body).encode("utf-8")[:body_limit(url)].decode("utf-8", "ignore")
    captured = _capture.start()
    try:
        sent = client.notify(body=text, notify_type=apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS)
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not fail the run
        sent, captured = False, captured + [f"{type(exc).__name__}: {exc}"]
    finally:
        _capture.stop()
    if sent:
        return _record(target, "sent", 1, None)
    detail = "; ".join(_redact(m, url) for m in captured[-3:]) or "apprise 未说明原因"
    return _record(target, "failed", 1, f"通知目标 {target.name} 发送失败：{detail}")
