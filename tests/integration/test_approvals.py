"""Approvals (QH 9.1.2 多人负责制度) against the real S3 store of the sandbox and a Prefect server:
the refusals, records never overwritten, the Prefect UI form (answered through Prefect's API as the
UI does, and left unanswered), the confirmation code through a real local webhook receiver (a
stand-in for the WeCom robot: apprise's json:// posts to it), and the resumable runbook."""
from __future__ import annotations

import contextvars
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.runtime import flow_run

from config.settings import load_site
from tasks.approvals.gate import ApprovalRefused, approve, require_approval
from tasks.approvals.plan import Plan, PlanStep, StepOutcome
from tasks.approvals.records import list_approvals, store_plan
from tasks.approvals.runbook import run_steps
from tasks.core.reason_codes import Code
from tasks.evidence.store import open_store

pytestmark = pytest.mark.sandbox
REQUESTER = "张工"
REPO = Path(__file__).resolve().parents[2]


def _approvers(data: dict) -> None:
    data["approvers"] = [{"name": "王主任", "role": "信息科主任"}, {"name": "赵工", "role": "信息科工程师"},
                         {"name": REQUESTER, "role": "驻场工程师"}]


@pytest.fixture()
def site(sites_dir):
    """A site of its own per test (a fresh id): records of earlier runs never count."""
    return load_site(sites_dir(f"appr-{uuid.uuid4().hex[:8]}", _approvers))


def year_end_plan(site, size_mb: int = 512) -> Plan:
    return Plan(site=site.site, duty="year_end", title="2027年技术年结方案", requested_by=REQUESTER, facts={"ts_size_mb": size_mb},
                steps=[PlanStep(id="tablespace:ts_ebill_2027", kind="sql", target="db",
                                text="CREATE TABLESPACE ts_ebill_2027 DATAFILE SIZE 512M", expect="新建2027年表空间"),
                       PlanStep(id="partition:2027", kind="sql", target="db",
                                text="ALTER TABLE t_ebill_main ADD PARTITION p2027 VALUES LESS THAN (2028)",
                                expect="新增2027年分区"),
                       PlanStep(id="archive:2025", kind="command", target="files1", text="tar -czf /a/2025.tgz /d/2025",
                                expect="归档2025年版式文件")])


def refused(expected: Code, fn, *args, **kwargs) -> str:
    with pytest.raises(ApprovalRefused) as exc:
        fn(*args, **kwargs)
    assert exc.value.code is expected, str(exc.value)
    return str(exc.value)


def test_refusals_each_with_its_code_and_a_hint(site):
    plan = year_end_plan(site)
    key = store_plan(site, plan).prefix
    assert "hint" in refused(Code.APPROVAL_MISSING, require_approval, site, plan, "李工")
    msg = refused(Code.APPROVER_IS_REQUESTER, approve, site, key, REQUESTER)
    assert "second person" in msg and "王主任" in msg
    assert "王主任" in refused(Code.APPROVER_NOT_LISTED, approve, site, key, "路人甲")
    refused(Code.APPROVER_IS_REQUESTER, approve, site, key, "赵工", requested_by="赵工")   # the run's engineer too
    refused(Code.PLAN_NOT_FOUND, approve, site, key.replace("plans", "nothing"), "王主任")
    # an approval that expired: recorded two hours ago for one hour
    approve(site, key, "王主任", expires_hours=1, now=datetime.now(timezone.utc) - timedelta(hours=2))
    assert "expired" in refused(Code.APPROVAL_EXPIRED, require_approval, site, plan, "李工")
    # a valid one: the run's engineer may not be its approver either
    rec = approve(site, key, "赵工", ticket="CHG-2027-01")
    assert require_approval(site, plan, "李工", plan_key=key) == rec
    refused(Code.APPROVER_IS_REQUESTER, require_approval, site, plan, "赵工")


def test_a_fact_that_changed_since_the_approval_refuses_the_run(site):
    plan = year_end_plan(site, size_mb=512)
    key = store_plan(site, plan).prefix
    approve(site, key, "王主任")
    assert require_approval(site, plan, "李工").plan_sha256 == plan.sha256()
    changed = year_end_plan(site, size_mb=1024)   # re-rendered at execution time: the table grew
    msg = refused(Code.PLAN_CHANGED, require_approval, site, changed, "李工", plan_key=key)
    assert "fact ts_size_mb" in msg and "new plan" in msg
    assert key in refused(Code.PLAN_CHANGED, require_approval, site, changed, "李工")   # without the key too


def test_a_second_approval_is_recorded_beside_the_first_never_over_it(site):
    plan = year_end_plan(site)
    key = store_plan(site, plan).prefix
    store = open_store(site.evidence)
    first = approve(site, key, "王主任", store=store)
    first_bytes = store.get(first.key)
    second = approve(site, key, "赵工", ticket="CHG-1", store=store)
    assert (first.sequence, second.sequence) == (1, 2) and first.key != second.key
    assert store.get(first.key) == first_bytes
    assert [r.approver for r in list_approvals(store, site.site, "year_end", plan.sha256())] == ["王主任", "赵工"]
    assert store.put_if_absent(first.key, b"{}") is False   # the store itself refuses to overwrite it


# ---------------------------------------------------------------- confirmation code
class _Receiver(BaseHTTPRequestHandler):
    bodies: "queue.Queue[str]"

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        self.bodies.put(self.rfile.read(length).decode("utf-8"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    """A real HTTP server on 127.0.0.1 standing in for the WeCom group robot."""
    handler = type("Receiver", (_Receiver,), {"bodies": queue.Queue()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"json://127.0.0.1:{server.server_address[1]}/robot", handler.bodies
    server.shutdown()
    server.server_close()


def code_site(sites_dir, receiver, monkeypatch, prefix: str):
    """A site whose approvals need a confirmation code, sent to the test's own receiver; its plan,
    stored; and a reader of the next code the group receives."""
    url, bodies = receiver
    monkeypatch.setenv("EBOPS_TEST_ROBOT_URL", url)

    def edit(d):
        _approvers(d)
        d["notify"] = [{"name": "信息科工作群", "url": {"env": "EBOPS_TEST_ROBOT_URL"}}]
        d["approval"] = {"confirm_code": True, "confirm_code_minutes": 10}

    site = load_site(sites_dir(f"{prefix}-{uuid.uuid4().hex[:6]}", edit))
    plan = year_end_plan(site)
    return site, plan, store_plan(site, plan).prefix, lambda: json.loads(bodies.get(timeout=30))["message"]


def test_confirmation_code_sent_to_the_group_must_be_typed(sites_dir, receiver, monkeypatch):
    site, plan, key, next_message = code_site(sites_dir, receiver, monkeypatch, "appr-code")
    refused(Code.CONFIRM_CODE_SENT, approve, site, key, "王主任")
    message = next_message()
    code = re.search(r"确认码：([A-Z0-9]{8})", message).group(1)
    assert plan.sha256()[:16] in message
    store = open_store(site.evidence)
    [kept] = [store.get(o.object_name).decode() for o in store.list(f"_approval_codes/{site.site}/")]
    assert code not in kept and json.loads(kept)["hash"]   # only a salted hash of the code is kept
    refused(Code.CONFIRM_CODE_WRONG, approve, site, key, "王主任", code="WRONG234")
    refused(Code.APPROVAL_MISSING, require_approval, site, plan, "李工")
    rec = approve(site, key, "王主任", code=code.lower())
    assert rec.confirmed_by_code and require_approval(site, plan, "李工") == rec


def test_wrong_confirmation_codes_void_the_code_after_five_attempts(sites_dir, receiver, monkeypatch):
    from tasks.approvals.confirm import MAX_WRONG

    site, plan, key, next_message = code_site(sites_dir, receiver, monkeypatch, "appr-lock")
    refused(Code.CONFIRM_CODE_SENT, approve, site, key, "王主任")
    code = re.search(r"确认码：([A-Z0-9]{8})", next_message()).group(1)
    for _ in range(MAX_WRONG - 1):
        refused(Code.CONFIRM_CODE_WRONG, approve, site, key, "王主任", code="WRONG234")
    refused(Code.CONFIRM_CODE_LOCKED, approve, site, key, "王主任", code="WRONG234")
    refused(Code.CONFIRM_CODE_LOCKED, approve, site, key, "王主任", code=code)   # the right code is void now
    store = open_store(site.evidence)
    wrong = [json.loads(store.get(o.object_name)) for o in store.list(f"_approval_codes/{site.site}/")
             if o.object_name.rsplit("/", 1)[-1].startswith("wrong-")]
    assert len(wrong) == MAX_WRONG + 1 and all(w["approver"] == "王主任" and "WRONG" not in json.dumps(w) for w in wrong)
    refused(Code.CONFIRM_CODE_SENT, approve, site, key, "王主任")             # a new code is sent ...
    fresh = re.search(r"确认码：([A-Z0-9]{8})", next_message()).group(1)
    assert approve(site, key, "王主任", code=fresh).confirmed_by_code          # ... and it is good


# ---------------------------------------------------------------- runbook
def test_runbook_stops_at_a_failing_step_and_the_next_run_resumes_after_the_done_ones(site):
    plan = year_end_plan(site)
    rec = approve(site, store_plan(site, plan).prefix, "王主任")
    ran: list[str] = []

    def execute(step):
        ran.append(step.id)
        if step.id == "partition:2027" and ran.count(step.id) == 1:
            raise RuntimeError("ORA-14074: partition bound must collate higher than that of the last partition")
        now = datetime.now(timezone.utc)
        return StepOutcome(step_id=step.id, status="done", output="ok", started_at=now, finished_at=now)

    first = run_steps(site, plan, rec, execute, already_done=lambda step: False)
    assert [o.status for o in first] == ["done", "failed", "skipped"] and "ORA-14074" in first[1].output
    # the archive already exists on the file server: recorded as already done, not run again
    second = run_steps(site, plan, rec, execute, already_done=lambda step: step.id == "archive:2025")
    assert [o.status for o in second] == ["already_done", "done", "already_done"]
    assert "already done" in second[0].output
    assert ran == ["tablespace:ts_ebill_2027", "partition:2027", "partition:2027"]
    third = run_steps(site, plan, rec, execute, already_done=lambda step: False)
    assert [o.status for o in third] == ["already_done"] * 3 and len(ran) == 3
    keys = [o.object_name for o in open_store(site.evidence).list(f"_runbooks/{site.site}/year_end/{plan.sha256()}/")]
    assert len(keys) == 4 and any(k.endswith("partition%3A2027/0002.json") for k in keys)   # attempts, never overwritten
    # a plan that changed is refused before any step runs
    refused(Code.PLAN_CHANGED, run_steps, site, year_end_plan(site, 2048), rec, execute, lambda s: False)
    assert len(ran) == 3


# ---------------------------------------------------------------- the Prefect UI form
@flow(name="approval-gate-test")
def gated(site_name: str, timeout_s: int, ids: "queue.Queue | None" = None):
    from tasks.approvals.ui import approve_in_ui

    if ids is not None:
        ids.put(flow_run.id)
    site = load_site(site_name)
    return approve_in_ui(site, year_end_plan(site), REQUESTER, timeout_s=timeout_s, poll_interval_s=1)


def test_an_unanswered_form_ends_the_run_denied_with_the_evidence_stored(prefect_harness, site):
    state = gated(site.site, 4, return_state=True)
    assert state.is_failed()   # (the server fails a run whose pause ran out; the gate logs why and stores it)
    store = open_store(site.evidence)
    decisions = [o.object_name for o in store.list(f"{site.site}/year_end/") if o.object_name.endswith("approval.json")]
    assert len(decisions) == 1
    decision = json.loads(store.get(decisions[0]))
    assert (decision["decision"], decision["code"]) == ("denied", "approval_denied")
    assert decision["reason"] == "no answer within 4 s" and decision["plan_sha256"] == year_end_plan(site).sha256()
    assert store.get(decisions[0].replace("approval.json", "plan.md"))
    assert list_approvals(store, site.site) == []


def _wait_paused(run_id, deadline_s: float = 300):
    end = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < end:
            state = client.read_flow_run(run_id).state
            if state is not None and state.is_paused() and state.state_details.run_input_keyset:
                return state
            time.sleep(0.5)   # polling the run's state with a deadline, not a guess at how long it takes
    raise AssertionError(f"flow run {run_id} never paused")


def _start_gated(site):
    """The gated flow in a thread (its Prefect settings copied along), once it waits for its form."""
    ids: queue.Queue = queue.Queue()
    results: dict = {}
    ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(lambda: results.update(state=gated(site.site, 600, ids,
                                                                                  return_state=True)),))
    t.start()
    end = time.monotonic() + 300
    while t.is_alive() and time.monotonic() < end:
        try:
            run_id = ids.get(timeout=1)
            break
        except queue.Empty:
            continue
    else:
        raise AssertionError(f"the gated flow did not start: {results}")
    _wait_paused(run_id)
    return t, results, run_id


def test_the_form_answered_in_the_ui_records_the_approval(prefect_harness, site):
    t, results, run_id = _start_gated(site)
    resume_flow_run(run_id, run_input={"approver": "王主任", "decision": "approve", "ticket": "CHG-77",
                                       "confirm_code": "", "comment": "同意"})
    t.join(300)
    state = results["state"]
    assert state.is_completed(), state.message
    rec = state.result()
    assert (rec.approver, rec.via, rec.ticket, rec.plan_sha256) == ("王主任", "ui", "CHG-77", year_end_plan(site).sha256())
    assert list_approvals(open_store(site.evidence), site.site, "year_end") == [rec]


def test_a_form_answered_by_the_requester_is_refused(prefect_harness, site):
    t, results, run_id = _start_gated(site)
    resume_flow_run(run_id, run_input={"approver": REQUESTER, "decision": "approve", "ticket": "", "confirm_code": "",
                                       "comment": ""})
    t.join(300)
    state = results["state"]
    assert state.is_failed() and "second person" in state.message and "evidence" in state.message


# ---------------------------------------------------------------- the CLI
def ebops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ebops_cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


def test_ebops_approve_and_approvals_list(site):
    plan = year_end_plan(site)
    key = store_plan(site, plan).prefix
    bad = ebops("approve", site.site, key, "--as", REQUESTER)
    assert bad.returncode == 2 and "approver_is_requester" in bad.stderr and "Traceback" not in bad.stderr
    ok = ebops("approve", site.site, key, "--as", "王主任", "--ticket", "CHG-5", "-f", "json")
    assert ok.returncode == 0, ok.stderr
    [rec] = json.loads(ok.stdout)
    assert (rec["approver"], rec["role"], rec["ticket"], rec["plan_sha256"]) == ("王主任", "信息科主任", "CHG-5", plan.sha256())
    listed = ebops("approvals", site.site, "-f", "tsv")
    assert listed.returncode == 0 and rec["key"] in listed.stdout
    assert require_approval(site, plan, "李工").key == rec["key"]


def test_a_standing_approval_stops_covering_a_changed_backup_command(sites_dir, approve_standing):
    from tasks.approvals.standing import standing_plans

    name = sites_dir(f"appr-std-{uuid.uuid4().hex[:6]}", _approvers)
    [fresh, verification] = approve_standing(name)
    assert fresh.expires_at - fresh.approved_at == timedelta(days=365) and fresh.requested_by == "ebops（常设方案）"
    site = load_site(name)
    assert [require_approval(site, p, "测试工程师") for p in standing_plans(site)] == [fresh, verification]

    def other_command(d):
        _approvers(d)
        d["hosts"][0]["backup"]["command"] = ["sh", "-c", "rm -rf /data/ebill"]   # what was not approved

    site = load_site(sites_dir(name, other_command))
    [changed, same] = standing_plans(site)
    assert "hint" in refused(Code.PLAN_CHANGED, require_approval, site, changed, "测试工程师")
    assert require_approval(site, same, "测试工程师") == verification   # the verification's plan did not change
