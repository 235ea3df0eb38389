"""The reason code of an ERROR record, from the exception that stopped the check: "the host is
unreachable" reads the same in every check (tasks/core/results.py `error_result` asks here)."""
from __future__ import annotations

from tasks.core.reason_codes import Code

# By exception class name (the class or any base), so that this module imports neither paramiko
# nor the database drivers. First match along the MRO wins.
_BY_EXCEPTION = {
    "HostUnreachable": Code.HOST_UNREACHABLE,
    "NoValidConnectionsError": Code.HOST_UNREACHABLE,
    "ConnectionRefusedError": Code.HOST_UNREACHABLE,
    "AuthenticationRefused": Code.AUTH_REFUSED,
    "AuthenticationException": Code.AUTH_REFUSED,
    "HostKeyRejected": Code.HOST_KEY_REJECTED,
    "BadHostKeyException": Code.HOST_KEY_REJECTED,
    "CommandTimeout": Code.COMMAND_TIMEOUT,
    "DfFailed": Code.COMMAND_FAILED,
    "HostError": Code.COMMAND_FAILED,
    "QueryDeadlineExceeded": Code.QUERY_TIMEOUT,
    "QueryCanceled": Code.QUERY_TIMEOUT,
    "LockNotAvailable": Code.QUERY_TIMEOUT,  # lock_timeout: blocked by a lock, as a statement timeout
    "OperationalError": Code.DATABASE_UNREACHABLE,
    "DatabaseError": Code.DATABASE_ERROR,
    "BackupNotFound": Code.BACKUP_NOT_FOUND,
    "RestoreRefused": Code.RESTORE_TARGET_REFUSED,
    "ApprovalRefused": Code.APPROVAL_REFUSED,
    "ApprovalMissing": Code.APPROVAL_MISSING,
    "PlanChanged": Code.PLAN_CHANGED,
    "PhaseRefused": Code.PHASE_REFUSED,
    "LogUnreadable": Code.FILE_UNREADABLE,
    "LogMissing": Code.FILE_MISSING,
    "FileNotFoundError": Code.FILE_MISSING,
    "PermissionError": Code.FILE_UNREADABLE,
    "HolidayFileError": Code.CONFIG_INVALID,
    "SuiteError": Code.CONFIG_INVALID,
    "SecretMissing": Code.CONFIG_INVALID,
    "TimeoutError": Code.COMMAND_TIMEOUT,
}


def code_for_exception(exc: BaseException, _depth: int = 0) -> Code:
    """The ERROR code for what stopped a measurement. A database error whose cause is a statement
    timeout is a query_timeout, not just any database error; an exception of a library's own
    (Great Expectations wrapping a driver error) is classified by its cause."""
    code = _own_code(exc)
    inner_exc = exc.__cause__ or exc.__context__
    if code is Code.CHECK_ERROR and inner_exc is not None and inner_exc is not exc and _depth < 5:
        return code_for_exception(inner_exc, _depth + 1)
    return code


def _own_code(exc: BaseException) -> Code:
    for klass in type(exc).__mro__:
        code = _BY_EXCEPTION.get(klass.__name__)
        # the drivers' error is kept as the cause, or as the context of a `raise … from None`
        inner_exc = exc.__cause__ or exc.__context__
        if code is Code.DATABASE_ERROR and inner_exc is not None and inner_exc is not exc:
            inner = code_for_exception(inner_exc)
            if inner in (Code.QUERY_TIMEOUT, Code.DATABASE_UNREACHABLE):
                return inner
        if code is not None:
            return code
    return Code.CHECK_ERROR
