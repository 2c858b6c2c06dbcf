"""The REST data API under `/services/data`: sObjects, SOQL, describe, limits."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from sfsync.emulator.calls import Call, Result, parse_body, requested_fields
from sfsync.emulator.composite import CompositeApi
from sfsync.emulator.errors import ApiError
from sfsync.emulator.org import Org, external_id_field, lookup_or_fail
from sfsync.emulator.schema import SOBJECTS, SObjectType

logger = logging.getLogger(__name__)

API_VERSIONS = [f"{major}.0" for major in range(31, 63)]
JSON_TYPE = "application/json;charset=UTF-8"
MAX_PAGE_SIZE = 2000
_VERSION_RE = re.compile(r"^v(\d{2,3}\.\d)$")
_BATCH_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)
_CLIENT_RE = re.compile(r"(?:^|[,;\s])client\s*=\s*([^,;\s]+)", re.IGNORECASE)


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> web.Response:
    headers = dict(headers or {})
    if status == 204:
        return web.Response(status=204, headers=headers)
    headers["Content-Type"] = JSON_TYPE
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)


def session_token(request: web.Request) -> str | None:
    """Token from `Authorization: Bearer <tok>` or `OAuth <tok>`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


def call_origin(version: str, headers: Mapping[str, str], api: str = "rest") -> str:
    """CDC `changeOrigin` from the writer's `Sforce-Call-Options: client=...`."""
    origin = f"com/salesforce/api/{api}/{version}"
    match = _CLIENT_RE.search(headers.get("Sforce-Call-Options", ""))
    return f"{origin};client={match.group(1)}" if match else origin


class RestApi:
    """Dispatches `/services/data/...` paths onto the org."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.composite = CompositeApi(org, self.dispatch)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        # Split the raw path so an encoded "/" inside an external id survives.
        tail = path[len("/services/data") :]
        segments = [unquote(part) for part in tail.split("/") if part]
        if not segments and request.method == "GET":
            limit = {"Sforce-Limit-Info": self.org.limit_info()}
            return json_response(200, self._versions(), limit)
        try:
            match = _VERSION_RE.match(segments[0]) if segments else None
            if match is None:
                raise ApiError(
                    404, "NOT_FOUND", "The requested resource does not exist"
                )
            version = match.group(1)
            user = self.org.session_user(session_token(request))
            if user is None:
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            if self.org.faults.unavailable():
                raise ApiError(
                    503,
                    "SERVER_UNAVAILABLE",
                    "Server temporarily unavailable (emulated fault); retry later",
                )
            self.org.count_request(user)
            call = Call(
                request.method,
                segments[1:],
                request.query,
                request.headers,
                await request.read(),
            )
            self.org.call_origin = call_origin(version, request.headers)
            status, body, headers = self.dispatch(call, version, user)
        except ApiError as exc:
            status, body, headers = exc.status, exc.payload(), {}
        headers["Sforce-Limit-Info"] = self.org.limit_info()
        return json_response(status, body, headers)

    def dispatch(self, call: Call, version: str, user: dict[str, Any]) -> Result:
        """Serve one call; errors come back as a result, never raised."""
        try:
            return self._route(call, version, call.segments, user)
        except ApiError as exc:
            return exc.status, exc.payload(), {}
        except Exception:
            logger.exception("REST %s %s failed", call.method, call.segments)
            body = [
                {"message": "internal emulator error", "errorCode": "UNKNOWN_EXCEPTION"}
            ]
            return 500, body, {}

    @staticmethod
    def _versions() -> list[dict[str, str]]:
        return [
            {"label": f"Emulated v{v}", "url": f"/services/data/v{v}", "version": v}
            for v in API_VERSIONS
        ]

    def _route(
        self, call: Call, version: str, rest: list[str], user: dict[str, Any]
    ) -> Result:
        method = call.method
        base = f"/services/data/v{version}"
        if not rest:
            _allow(method, "GET")
            names = ("sobjects", "query", "queryAll", "limits", "composite")
            return 200, {name: f"{base}/{name}" for name in names}, {}
        head = rest[0]
        if head == "sobjects":
            return self._sobjects(call, version, rest[1:], user)
        if head in ("query", "queryAll") and len(rest) <= 2:
            _allow(method, "GET")
            return self._query(call, version, rest, include_deleted=head == "queryAll")
        if head == "limits" and len(rest) == 1:
            _allow(method, "GET")
            return 200, self._limits(), {}
        if head == "composite" and len(rest) == 1:
            _allow(method, "POST")
            return self.composite.composite(call, version, user)
        if head == "composite" and rest[1] == "sobjects":
            return self.composite.collections(call, version, rest[2:], user)
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _sobjects(
        self, call: Call, version: str, rest: list[str], user: dict[str, Any]
    ) -> Result:
        method = call.method
        if not rest:
            _allow(method, "GET")
            return 200, describe_global(version), {}
        sotype = lookup_or_fail(rest[0])
        url = f"/services/data/v{version}/sobjects/{sotype.name}"
        if len(rest) == 1:
            _allow(method, "GET", "POST")
            if method == "GET":
                summary = describe_summary(sotype, version)
                return 200, {"objectDescribe": summary, "recentItems": []}, {}
            record = self.org.create(sotype, parse_body(call.body), user["Id"])
            body = {"id": record["Id"], "success": True, "errors": []}
            return 201, body, {"Location": f"{url}/{record['Id']}"}
        if len(rest) == 2 and rest[1] == "describe":
            _allow(method, "GET")
            return 200, describe(sotype, version), {}
        if len(rest) == 2:
            _allow(method, "GET", "PATCH", "DELETE")
            record_id = self.org.resolve_id(sotype, rest[1])
            if method == "GET":
                record = self.org.get(sotype, record_id)
                fields = requested_fields(sotype, call.query.get("fields"))
                return 200, self.org.render(sotype, record, fields, version), {}
            if method == "PATCH":
                self.org.update(sotype, record_id, parse_body(call.body), user["Id"])
                return 204, None, {}
            self.org.delete(sotype, record_id, user["Id"])
            return 204, None, {}
        if len(rest) == 3:
            _allow(method, "GET", "PATCH")
            field_name, value = rest[1], rest[2]
            if method == "GET":
                return self._get_by_external_id(
                    sotype, field_name, value, version, call
                )
            record, created = self.org.upsert(
                sotype, field_name, value, parse_body(call.body), user["Id"], version
            )
            body = {
                "id": record["Id"],
                "success": True,
                "errors": [],
                "created": created,
            }
            if created:
                return 201, body, {"Location": f"{url}/{record['Id']}"}
            # `created:false` with 200 arrived in API v46; older versions said 204.
            if float(version) >= 46:
                return 200, body, {}
            return 204, None, {}
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _get_by_external_id(
        self,
        sotype: SObjectType,
        field_name: str,
        value: str,
        version: str,
        call: Call,
    ) -> Result:
        spec = external_id_field(sotype, field_name)
        matches = self.org.find_live(sotype, spec.name, value)
        if not matches:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(matches) > 1:
            urls = [
                f"/services/data/v{version}/sobjects/{sotype.name}/{m}" for m in matches
            ]
            raise ApiError(300, "MULTIPLE_CHOICES", "More than one record", body=urls)
        record = self.org.get(sotype, matches[0])
        fields = requested_fields(sotype, call.query.get("fields"))
        return 200, self.org.render(sotype, record, fields, version), {}

    def _query(
        self, call: Call, version: str, rest: list[str], include_deleted: bool
    ) -> Result:
        if len(rest) == 2:
            return 200, self.org.next_page(rest[1]), {}
        text = call.query.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string (q) is required")
        page_size = MAX_PAGE_SIZE
        options = call.headers.get("Sforce-Query-Options", "")
        match = _BATCH_RE.search(options)
        if match:
            # Salesforce enforces 200..2000; any positive size is honoured here
            # so tests can page through small data sets.
            page_size = max(1, min(MAX_PAGE_SIZE, int(match.group(1))))
        result = self.org.query(
            text, include_deleted=include_deleted, page_size=page_size, version=version
        )
        return 200, result, {}

    def _limits(self) -> dict[str, Any]:
        used = self.org.api_usage["used"]
        limit = self.org.api_limit
        remaining = 0 if self.org.faults.api_limit_reached else max(0, limit - used)
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": remaining},
            "DailyStreamingApiEvents": {"Max": 1_000_000, "Remaining": 1_000_000},
            "DailyDurableStreamingApiEvents": {
                "Max": 1_000_000,
                "Remaining": 1_000_000,
            },
        }


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}",
        )


def describe_summary(sotype: SObjectType, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{sotype.name}"
    return {
        "name": sotype.name,
        "label": sotype.label,
        "labelPlural": sotype.label + "s",
        "keyPrefix": sotype.key_prefix,
        "custom": False,
        "createable": sotype.createable,
        "updateable": sotype.updateable,
        "deletable": sotype.deletable,
        "queryable": True,
        "retrieveable": True,
        "searchable": False,
        "urls": {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        },
    }


def describe(sotype: SObjectType, version: str) -> dict[str, Any]:
    fields = []
    for spec in sotype.fields.values():
        fields.append(
            {
                "name": spec.name,
                "type": spec.type,
                "label": spec.label,
                "length": spec.length,
                "nillable": not spec.required
                and spec.type != "boolean"
                and spec.name != "Id",
                "createable": spec.createable,
                "updateable": spec.updateable,
                "unique": spec.unique,
                "externalId": spec.external_id,
                "idLookup": spec.name == "Id" or spec.external_id,
                "calculated": spec.name == "Name" and sotype.name == "Contact",
                "defaultedOnCreate": spec.default is not None
                or spec.name in ("Id", "OwnerId", "IsDeleted"),
                "referenceTo": list(spec.reference_to),
                "relationshipName": spec.name[:-2]
                if spec.type == "reference" and spec.name.endswith("Id")
                else None,
                "picklistValues": [
                    {"value": v, "label": v, "active": True, "defaultValue": False}
                    for v in spec.restricted_values
                ],
            }
        )
    summary = describe_summary(sotype, version)
    return summary | {"fields": fields, "recordTypeInfos": [], "childRelationships": []}


def describe_global(version: str) -> dict[str, Any]:
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [describe_summary(s, version) for s in SOBJECTS.values()],
    }
