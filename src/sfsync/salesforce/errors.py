"""Errors raised by the Salesforce client.

The tree::

    SalesforceError
    ├── LoginFailed          the login host refused the credentials
    ├── SessionExpired       401 INVALID_SESSION_ID after a fresh login too
    ├── RequestRefused       403, e.g. REQUEST_LIMIT_EXCEEDED
    ├── RecordNotFound       404 NOT_FOUND or ENTITY_IS_DELETED
    ├── MultipleRecords      300 on an upsert that matched several records
    ├── InvalidRequest       400: bad field, missing required field, bad query
    │   └── RecordLocked     400 UNABLE_TO_LOCK_ROW: try again shortly
    ├── ServerUnavailable    5xx, or the server could not be reached
    └── StreamingError       a Bayeux reply with successful=false
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SalesforceError",
    "LoginFailed",
    "SessionExpired",
    "RequestRefused",
    "RecordNotFound",
    "MultipleRecords",
    "InvalidRequest",
    "RecordLocked",
    "ServerUnavailable",
    "StreamingError",
]


class SalesforceError(Exception):
    """Root of every error the client raises.

    ``error_code`` is Salesforce's code (``REQUIRED_FIELD_MISSING``...),
    ``fields`` the fields it names, ``status`` the HTTP status.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: str = "",
        fields: list[str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.fields = fields or []
        self.status = status


class LoginFailed(SalesforceError):
    pass


class SessionExpired(SalesforceError):
    pass


class RequestRefused(SalesforceError):
    pass


class RecordNotFound(SalesforceError):
    pass


class MultipleRecords(SalesforceError):
    pass


class InvalidRequest(SalesforceError):
    pass


class RecordLocked(InvalidRequest):
    pass


class ServerUnavailable(SalesforceError):
    pass


class StreamingError(SalesforceError):
    pass


_BY_STATUS: dict[int, type[SalesforceError]] = {
    300: MultipleRecords,
    400: InvalidRequest,
    401: SessionExpired,
    403: RequestRefused,
    404: RecordNotFound,
}


def error_from_response(status: int, body: Any, what: str) -> SalesforceError:
    """Build the error for a failed REST response about ``what``."""
    error_code, message, fields = "", "", list[str]()
    if isinstance(body, list) and body and isinstance(body[0], dict):
        error_code = str(body[0].get("errorCode", ""))
        message = str(body[0].get("message", ""))
        fields = list(body[0].get("fields") or [])
    elif isinstance(body, dict):
        error_code = str(body.get("errorCode", body.get("error", "")))
        message = str(body.get("message", body.get("error_description", "")))
    if status >= 500:
        cls: type[SalesforceError] = ServerUnavailable
    elif error_code == "UNABLE_TO_LOCK_ROW":
        cls = RecordLocked
    else:
        cls = _BY_STATUS.get(status, SalesforceError)
    text = f"{what}: Salesforce answered {status} {error_code}: {message}".rstrip(": ")
    return cls(text, error_code=error_code, fields=fields, status=status)
