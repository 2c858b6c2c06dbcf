"""A REST call as the routers see it, and the body and field helpers they share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sfsync.emulator.errors import ApiError
from sfsync.emulator.schema import SObjectType

# (HTTP status, JSON body, extra headers)
Result = tuple[int, Any, dict[str, str]]


@dataclass
class Call:
    """One REST call, from HTTP or from a Composite subrequest."""

    method: str
    segments: list[str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a write; 400 JSON_PARSER_ERROR otherwise."""
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a JSON value that is "
            "not an object",
        )
    return body


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "JSON_PARSER_ERROR",
            f"Unexpected character at [line:{getattr(exc, 'lineno', 1)}, "
            f"column:{getattr(exc, 'colno', 1)}]",
        ) from None


def requested_fields(sotype: SObjectType, raw: str | None) -> list[str] | None:
    if not raw:
        return None
    fields: list[str] = []
    for name in (part.strip() for part in raw.split(",")):
        spec = sotype.field(name)
        if spec is None:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{sotype.name}'",
            )
        fields.append(spec.name)
    return fields
