"""Composite (`/composite`) and sObject Collections (`/composite/sobjects`).

Emulator decisions: the 25-subrequest and 200-record limits answer 400
LIMIT_EXCEEDED and EXCEEDED_ID_LIMIT; the ten-type-chunk rule of Collections
is not enforced (issue #4); a Composite request counts as one API call.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sfsync.emulator import ids
from sfsync.emulator.calls import Call, Result, parse_json, requested_fields
from sfsync.emulator.errors import ApiError
from sfsync.emulator.org import Org, lookup_or_fail
from sfsync.emulator.schema import SOBJECTS, SObjectType

logger = logging.getLogger(__name__)

MAX_RECORDS = 200
MAX_SUBREQUESTS = 25
_REFERENCE_RE = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
_PATH_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the "
    "request was using AllOrNone header",
    "fields": [],
}
_HALTED_MESSAGE = (
    "The transaction was rolled back since another operation in the same "
    "transaction failed."
)

Dispatch = Callable[[Call, str, dict[str, Any]], Result]


class _RollBack(Exception):
    """Raised inside a transaction to undo it after collecting row results."""


class CompositeApi:
    """Batch endpoints; single calls are delegated back to the REST router."""

    def __init__(self, org: Org, dispatch: Dispatch) -> None:
        self.org = org
        self.dispatch = dispatch

    # --- Composite --------------------------------------------------------------

    def composite(self, call: Call, version: str, user: dict[str, Any]) -> Result:
        body = parse_json(call.body)
        requests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise ApiError(
                400, "JSON_PARSER_ERROR", "compositeRequest must be a non-empty list"
            )
        if len(requests) > MAX_SUBREQUESTS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"Limit Exceeded: a composite request takes at most "
                f"{MAX_SUBREQUESTS} subrequests",
            )
        all_or_none = bool(body.get("allOrNone", False))
        results: list[dict[str, Any]] = []
        if not all_or_none:
            for sub in requests:
                results.append(self._subrequest(sub, results, user))
            return 200, {"compositeResponse": results}, {}
        try:
            with self.org.transaction():
                for sub in requests:
                    result = self._subrequest(sub, results, user)
                    results.append(result)
                    if result["httpStatusCode"] >= 400:
                        raise _RollBack
        except _RollBack:
            failed = len(results) - 1
            halted = [
                _halted(sub, _HALTED_MESSAGE)
                for index, sub in enumerate(requests)
                if index != failed
            ]
            results = halted[:failed] + [results[failed]] + halted[failed:]
        return 200, {"compositeResponse": results}, {}

    def _subrequest(
        self, sub: Any, done: list[dict[str, Any]], user: dict[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(sub, dict) or not isinstance(sub.get("url"), str):
            return _halted({}, "Each subrequest needs a method and a url")
        reference_id = sub.get("referenceId")
        try:
            url = _substitute(sub["url"], done, quote_values=True)
            body = _substitute(sub.get("body"), done, quote_values=False)
        except LookupError as exc:
            return _halted(sub, str(exc))
        parts = urlsplit(url)
        segments = [unquote(p) for p in parts.path.split("/") if p]
        if segments[:2] != ["services", "data"] or len(segments) < 3:
            return _halted(sub, f"Invalid subrequest url: {url}")
        version = segments[2].lstrip("v")
        raw = b"" if body is None else _dumps(body)
        headers = dict(sub.get("httpHeaders") or {})
        call = Call(
            str(sub.get("method", "GET")).upper(),
            segments[3:],
            dict(parse_qsl(parts.query)),
            headers,
            raw,
        )
        status, result, extra = self.dispatch(call, version, user)
        return {
            "body": result,
            "httpHeaders": extra,
            "httpStatusCode": status,
            "referenceId": reference_id,
        }

    # --- sObject Collections ------------------------------------------------------

    def collections(
        self, call: Call, version: str, rest: list[str], user: dict[str, Any]
    ) -> Result:
        method = call.method
        if not rest and method == "DELETE":
            raw_ids = call.query.get("ids", "")
            record_ids = [i for i in raw_ids.split(",") if i]
            all_or_none = call.query.get("allOrNone", "false").lower() == "true"
            self._check_count(record_ids)
            rows = [partial(self._delete_row, rid, user) for rid in record_ids]
            return 200, self._run(rows, record_ids, all_or_none), {}
        if not rest and method in ("POST", "PATCH"):
            body = _collection_body(call.body)
            records = body["records"]
            self._check_count(records)
            all_or_none = bool(body.get("allOrNone", False))
            if method == "POST":
                rows = [partial(self._create_row, r, user) for r in records]
                known: list[str | None] = [None] * len(records)
            else:
                rows = [partial(self._update_row, r, user) for r in records]
                known = [_record_id(r) for r in records]
            return 200, self._run(rows, known, all_or_none), {}
        if len(rest) == 2 and method == "PATCH":
            sotype = lookup_or_fail(rest[0])
            body = _collection_body(call.body)
            records = body["records"]
            self._check_count(records)
            rows = [
                partial(self._upsert_row, sotype, rest[1], r, user, version)
                for r in records
            ]
            return (
                200,
                self._run(rows, [None] * len(records), bool(body.get("allOrNone"))),
                {},
            )
        if len(rest) == 1 and method in ("GET", "POST"):
            return 200, self._retrieve(lookup_or_fail(rest[0]), call, version), {}
        raise ApiError(
            405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed here"
        )

    @staticmethod
    def _check_count(items: list[Any]) -> None:
        if len(items) > MAX_RECORDS:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} "
                "records into this call",
            )

    def _run(
        self,
        rows: Sequence[Callable[[], dict[str, Any]]],
        known_ids: Sequence[str | None],
        all_or_none: bool,
    ) -> list[dict[str, Any]]:
        """Run each row; under allOrNone one failure rolls every row back."""
        pairs = list(zip(rows, known_ids, strict=True))
        if not all_or_none:
            return [_row_result(row, known) for row, known in pairs]
        results: list[dict[str, Any]] = []
        try:
            with self.org.transaction():
                results = [_row_result(row, known) for row, known in pairs]
                if all(result["success"] for result in results):
                    return results
                raise _RollBack
        except _RollBack:
            pass
        rolled_back = []
        for result, known in zip(results, known_ids, strict=False):
            if result["success"]:
                result = _failure(known, dict(_ROLLED_BACK))
            rolled_back.append(result)
        return rolled_back

    def _create_row(self, record: Any, user: dict[str, Any]) -> dict[str, Any]:
        sotype = _record_type(record)
        created = self.org.create(sotype, _fields(record), user["Id"])
        return {"id": created["Id"], "success": True, "errors": []}

    def _update_row(self, record: Any, user: dict[str, Any]) -> dict[str, Any]:
        sotype = _record_type(record)
        raw_id = _record_id(record)
        if raw_id is None:
            raise ApiError(
                400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]
            )
        record_id = self.org.resolve_id(sotype, raw_id)
        fields = {k: v for k, v in _fields(record).items() if k.lower() != "id"}
        self.org.update(sotype, record_id, fields, user["Id"])
        return {"id": record_id, "success": True, "errors": []}

    def _upsert_row(
        self,
        sotype: SObjectType,
        field_name: str,
        record: Any,
        user: dict[str, Any],
        version: str,
    ) -> dict[str, Any]:
        fields = _fields(record)
        spec = sotype.field(field_name)
        value = fields.get(spec.name) if spec else None
        if spec is None or value is None:
            raise ApiError(
                400,
                "MISSING_ARGUMENT",
                f"{field_name} not specified for an upsert",
                [field_name],
            )
        stored, created = self.org.upsert(
            sotype, field_name, str(value), fields, user["Id"], version
        )
        return {"id": stored["Id"], "success": True, "errors": [], "created": created}

    def _delete_row(self, raw_id: str, user: dict[str, Any]) -> dict[str, Any]:
        sotype = _type_of_id(raw_id)
        record_id = self.org.resolve_id(sotype, raw_id)
        self.org.delete(sotype, record_id, user["Id"])
        return {"id": record_id, "success": True, "errors": []}

    def _retrieve(
        self, sotype: SObjectType, call: Call, version: str
    ) -> list[dict[str, Any] | None]:
        if call.method == "GET":
            raw_ids = [i for i in call.query.get("ids", "").split(",") if i]
            raw_fields = call.query.get("fields", "")
        else:
            body = parse_json(call.body)
            if not isinstance(body, dict):
                raise ApiError(400, "JSON_PARSER_ERROR", "expected a JSON object")
            raw_ids = list(body.get("ids") or [])
            raw_fields = ",".join(body.get("fields") or [])
        if not raw_fields:
            raise ApiError(
                400, "MISSING_ARGUMENT", "The fields parameter is required", ["fields"]
            )
        self._check_count(raw_ids)
        fields = requested_fields(sotype, raw_fields)
        out: list[dict[str, Any] | None] = []
        for raw_id in raw_ids:
            record_id = self.org.resolve_id(sotype, str(raw_id))
            record = self.org.records[sotype.name].get(record_id)
            if record is None or record["IsDeleted"]:
                out.append(None)
            else:
                out.append(self.org.render(sotype, record, fields, version))
        return out


def _row_result(
    row: Callable[[], dict[str, Any]], known_id: str | None
) -> dict[str, Any]:
    try:
        return row()
    except ApiError as exc:
        error = {
            "statusCode": exc.code,
            "message": exc.message,
            "fields": exc.fields or [],
        }
        return _failure(known_id, error)


def _failure(known_id: str | None, error: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"success": False, "errors": [error]}
    if known_id is not None:
        result = {"id": known_id} | result
    return result


def _halted(sub: dict[str, Any], message: str) -> dict[str, Any]:
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": sub.get("referenceId"),
    }


def _collection_body(raw: bytes) -> dict[str, Any]:
    body = parse_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise ApiError(
            400, "JSON_PARSER_ERROR", "A records array is required", ["records"]
        )
    return body


def _record_type(record: Any) -> SObjectType:
    attributes = record.get("attributes") if isinstance(record, dict) else None
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(name, str):
        raise ApiError(
            400,
            "INVALID_TYPE",
            "Must send a concrete entity type in attributes.type",
        )
    return lookup_or_fail(name)


def _record_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    # jsforce sends a lowercase `id`; Salesforce accepts either spelling.
    value = record.get("Id", record.get("id"))
    return value if isinstance(value, str) else None


def _fields(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", "Each record must be an object")
    return {k: v for k, v in record.items() if k != "attributes"}


def _type_of_id(raw_id: str) -> SObjectType:
    normalized = ids.normalize(raw_id)
    for sotype in SOBJECTS.values():
        if normalized is not None and sotype.key_prefix == normalized[:3]:
            return sotype
    raise ApiError(400, "MALFORMED_ID", f"malformed id {raw_id}")


def _dumps(body: Any) -> bytes:
    return json.dumps(body).encode()


def _lookup(done: list[dict[str, Any]], name: str, path: str) -> Any:
    source = next((r for r in done if r.get("referenceId") == name), None)
    if source is None or source["httpStatusCode"] >= 400:
        raise LookupError(
            f"Invalid reference specified. No value for {name}.{path} found in "
            f"{name}. Provided referenceId ({name}) did not succeed or was not "
            "found."
        )
    value: Any = source["body"]
    for key, index in _PATH_PART_RE.findall(path):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            raise LookupError(
                f"Invalid reference specified. No value for {name}.{path} found "
                f"in {name}."
            ) from None
    return value


def _substitute(value: Any, done: list[dict[str, Any]], quote_values: bool) -> Any:
    """Replace `@{ref.path}` inside strings (recursively through JSON)."""
    if isinstance(value, str):
        whole = _REFERENCE_RE.fullmatch(value)
        if whole and not quote_values:
            return _lookup(done, whole.group(1), whole.group(2))
        return _REFERENCE_RE.sub(
            lambda m: str(_lookup(done, m.group(1), m.group(2))), value
        )
    if isinstance(value, list):
        return [_substitute(item, done, quote_values) for item in value]
    if isinstance(value, dict):
        return {k: _substitute(v, done, quote_values) for k, v in value.items()}
    return value
