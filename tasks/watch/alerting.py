"""The watch alerts on a change of state, not on every cycle: an item going from OK to WARN/FAIL
(or between them) is announced once, and its return to OK once; while it stays the same nothing
is sent, however many cycles see it.

What each notify target was last told is kept per target and item (`announced`:
{target name: {item key: status}}); an item never announced counts as OK, so a new item that is
bad at once is announced and a new item that is fine is not. A target whose delivery failed keeps
its old state, so the change is sent again next cycle (it was not received); the others do not
repeat it. The state is written into every probe record, which goes to the journal and, as a
write-once part, to the evidence store: a fresh worker (no local files) takes it from the newest
part there and neither repeats an alert nor misses a recovery (tasks/watch/journal.py).
"""
from __future__ import annotations

from config.settings import NotifyTarget, Site
from tasks.core.alerts import deliver_text
from tasks.core.results import Status

OK = Status.OK.value


def changes(told: dict[str, str], items: list[dict]) -> list[dict]:
    """Items whose status differs from what was told: {key, title, target, from, to, reason}."""
    out = []
    for i in items:
        before = told.get(i["key"], OK)
        if i["status"] != before:
            out.append({"key": i["key"], "title": i["title"], "target": i["target"], "from": before,
                        "to": i["status"], "code": i.get("code", ""), "reason": i.get("reason", "")})
    return out


def matters_to(target: NotifyTarget, change: dict) -> bool:
    """A target with min_status FAIL hears of a FAIL and of the recovery from it, not of a WARN."""
    floor = Status(target.min_status).rank
    return max(Status(change["from"]).rank, Status(change["to"]).rank) >= floor


def message(site: Site, local_time: str, sent: list[dict], items: list[dict]) -> str:
    lines = [f"【电子票据接口监控】{site.name}（{site.site}）状态变化 {local_time}"]
    for n, c in enumerate(sent, 1):
        where = f"（{c['target']}）" if c["target"] and c["target"] not in c["title"] else ""
        label = "恢复" if c["to"] == OK else Status(c["to"]).label_zh
        line = f"{n}.【{label}】{c['title']}{where}：{Status(c['from']).label_zh} → {Status(c['to']).label_zh}"
        if c["to"] != OK and c["reason"]:
            line += f"：{c['reason'][:120]}"
        lines.append(line)
    bad = [i for i in items if i["status"] != OK]
    counts = "，".join(f"{Status(s).label_zh} {n} 项" for s in ("ERROR", "FAIL", "WARN", "SKIPPED")
                      if (n := sum(1 for i in bad if i["status"] == s)))
    lines.append(f"当前：{counts}" if counts else "当前：全部正常")
    return "\n".join(lines)


def announce(site: Site, announced: dict[str, dict[str, str]], record: dict) -> tuple[dict, list[dict], list[dict]]:
    """Send each target the changes that matter to it; return (new announced state, the changes
    seen, one delivery record per target that had something to send)."""
    items = record["items"]
    keys = {i["key"] for i in items}
    new_state: dict[str, dict[str, str]] = {}
    deliveries, seen = [], {}
    for target in site.notify:
        told = {k: v for k, v in (announced.get(target.name) or {}).items() if k in keys}  # gone items are dropped
        found = changes(told, items)
        for c in found:
            seen[c["key"]] = c
        to_send = [c for c in found if matters_to(target, c)]
        after = dict(told) | {c["key"]: c["to"] for c in found}
        if to_send:
            body = message(site, record["local"], to_send, items)
            failure = any(c["to"] in ("FAIL", "ERROR") for c in to_send)
            rec = deliver_text(target, body, failure) | {"changes": [c["key"] for c in to_send]}
            deliveries.append(rec)
            if rec["status"] != "sent":  # not received: keep the old state, so it is sent again next cycle
                after = dict(told) | {c["key"]: c["to"] for c in found if c not in to_send}
        new_state[target.name] = after
    if not site.notify:  # nobody to tell: the changes are still recorded against an empty state
        seen = {c["key"]: c for c in changes(announced.get("", {}), items)}
        new_state[""] = {i["key"]: i["status"] for i in items}
    return new_state, list(seen.values()), deliveries
