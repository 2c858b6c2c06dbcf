"""Errors the emulator turns into Salesforce-shaped responses.

EmulatorError
 └── ApiError            REST error: HTTP status + errorCode + message
      └── SoqlError      MALFORMED_QUERY and friends, raised by the parser
"""

from __future__ import annotations

from typing import Any


class EmulatorError(Exception):
    """Root of the emulator's own errors."""


class ApiError(EmulatorError):
    """A REST failure rendered as `[{"message", "errorCode", "fields"?}]`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.body = body

    def payload(self) -> Any:
        if self.body is not None:
            return self.body
        error: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


class SoqlError(ApiError):
    """A query that cannot be parsed or bound to the schema."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(400, code, message)
