"""One wrapper for the inspection checks: Prefect retries where a retry can help, else an ERROR record.

A check used to declare `retries=1` and then catch every exception itself and return an ERROR
record, so Prefect never saw a failure and the retry could never fire (issue 14). `check_task`
declares the Prefect task and does the catching once, for every check:

- a transient error (a dropped SSH connection or channel, a database connection reset) is raised
  while a retry remains, so Prefect runs the check again;
- on the last attempt, or for an error a retry cannot cure (a refused login, a rejected host key,
  a hung command's timeout, a query deadline, a bad site file), the check returns the same ERROR
  record as before (tasks/core/results.py `error_result`), and the run goes on with its other checks.

The checks stay callable as plain functions (`.fn`, as `PlainChecks` of a fleet run calls them):
there, outside a task run of their own, nothing retries and every exception is an ERROR record.
"""
from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NONE
from prefect.context import TaskRunContext

from tasks.core.results import CheckResult, error_result, utcnow

# By class name (the class or any base), as in tasks/core/reason_codes.py, so that this module imports
# neither paramiko nor the database drivers.
_TRANSIENT = frozenset({
    "SSHException",            # paramiko: the transport or channel died under a command
    "EOFError",                # paramiko: the server closed the connection mid-read
    "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError",
    "OperationalError",        # psycopg/DB-API: connection lost (auth and deadlines excluded below)
})
# Subclasses of the above that a retry cannot cure.
_PERMANENT = frozenset({
    "AuthenticationException", "BadHostKeyException",   # paramiko: refused login, wrong host key
    "QueryCanceled", "LockNotAvailable",                # psycopg: the deadline cut the query
    "InvalidAuthorizationSpecification", "InvalidPassword",
    "QueryDeadlineExceeded", "CommandTimeout", "HostKeyRejected", "AuthenticationRefused",
})
# PostgreSQL refuses a login with an OperationalError that has no SQLSTATE at connect time; only
# its message tells it apart from a dropped connection.
_AUTH_WORDS = ("authentication failed", "password", "no pg_hba.conf entry", "role \"", "permission denied")


def _names(exc: BaseException) -> set[str]:
    return {k.__name__ for k in type(exc).__mro__}


def _own_transient(exc: BaseException) -> bool | None:
    """True/False when this exception alone decides; None to look at its cause."""
    names = _names(exc)
    if names & _PERMANENT:
        return False
    if "HostUnreachable" in names:
        # tasks/connect/ssh.py marks the drop of an open connection; a host that cannot be reached at
        # all (refused port, no route) will not be there five seconds later either.
        return bool(getattr(exc, "dropped", False))
    if "OperationalError" in names:
        text = str(exc).lower()
        return not (getattr(exc, "sqlstate", None) or "").startswith("28") and not any(w in text for w in _AUTH_WORDS)
    if names & _TRANSIENT:
        return True
    return None


def is_transient(exc: BaseException | None) -> bool:
    """Whether a retry of the check can help. Follows the cause chain: tasks/database wraps the
    driver's error in its own (`raise DatabaseError(...) from None` keeps it as the context)."""
    seen = 0
    while exc is not None and seen < 6:
        verdict = _own_transient(exc)
        if verdict is not None:
            return verdict
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _retry_condition(task_: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry only the transient errors (the wrapper raises nothing
    else, so this is the declaration of the rule rather than its only guard)."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - an unreadable state: do not retry
            return False
    return isinstance(exc, BaseException) and is_transient(exc)


def _retry_remains(wrapper: Callable) -> bool:
    """True inside this check's own Prefect task run when another attempt will follow. A plain
    call (`.fn`, possibly under another task's context copied by PlainChecks) never retries."""
    ctx = TaskRunContext.get()
    if ctx is None or getattr(ctx.task, "fn", None) is not wrapper:
        return False
    return ctx.task_run.run_count <= (ctx.task.retries or 0)


_ACTIVE: ContextVar[Callable | None] = ContextVar("ebops_active_check", default=None)


def retry_pending(exc: BaseException) -> bool:
    """For a check that reports its own errors per item (each log, each certificate): True when
    Prefect will run the whole check again for this error, so the check should raise it instead of
    writing ERROR records that the retry would replace."""
    wrapper = _ACTIVE.get()
    return wrapper is not None and is_transient(exc) and _retry_remains(wrapper)


def check_task(name: str, *, error_fields: Callable[..., dict] | None, retries: int = 1,
               retry_delay_seconds: float = 5, **task_kwargs: Any) -> Callable:
    """Decorator: a check as a Prefect task whose failures end as one ERROR record.

    `error_fields` receives the check's arguments and returns the ERROR record's fields (check,
    title, site, host, target), the same ones the check's own records carry. None: the check
    writes its own ERROR records per item and calls `retry_pending` first; anything it lets
    through is raised."""

    def decorate(fn: Callable[..., list[CheckResult]]):
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> list[CheckResult]:
            started = utcnow()
            token = _ACTIVE.set(wrapper)
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - unreachable host, refused key, timeout: ERROR, run goes on
                if error_fields is None or (is_transient(exc) and _retry_remains(wrapper)):
                    raise
                return [error_result(exc, started_at=started, **error_fields(*args, **kwargs))]
            finally:
                _ACTIVE.reset(token)

        return task(wrapper, name=name, cache_policy=NONE, retries=retries,
                    retry_delay_seconds=retry_delay_seconds, retry_condition_fn=_retry_condition, **task_kwargs)

    return decorate
