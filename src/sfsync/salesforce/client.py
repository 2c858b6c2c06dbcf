"""A thin Salesforce REST client on requests: login, sObjects, upsert, SOQL.

Framework-free: it imports nothing from nameko, so it works in a plain
script, a test, or (cooperatively) under eventlet. One client is shared by
every worker of a process: when a session expires, the first worker to see
the 401 logs in again and the others reuse the new session.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import requests
from requests.adapters import HTTPAdapter

from sfsync.salesforce.errors import (
    LoginFailed,
    RecordNotFound,
    SalesforceError,
    ServerUnavailable,
    SessionExpired,
    error_from_response,
)

__all__ = ["Credentials", "SalesforceClient", "Session", "UpsertResult"]

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "59.0"
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_SOAP_NS = "{urn:partner.soap.sforce.com}"

_SOAP_LOGIN = """<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:urn="urn:partner.soap.sforce.com">
  <env:Body>
    <urn:login>
      <urn:username>{username}</urn:username>
      <urn:password>{password}</urn:password>
    </urn:login>
  </env:Body>
</env:Envelope>"""


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to log in. ``repr`` never shows the secrets."""

    login_url: str
    username: str
    password: str
    security_token: str = ""
    consumer_key: str = ""
    consumer_secret: str = ""

    def __repr__(self) -> str:
        return f"Credentials(login_url={self.login_url!r}, username={self.username!r})"


@dataclass(frozen=True)
class Session:
    instance_url: str
    access_token: str
    user_id: str

    def __repr__(self) -> str:
        return f"Session(instance_url={self.instance_url!r}, user_id={self.user_id!r})"


@dataclass(frozen=True)
class UpsertResult:
    id: str
    created: bool


class SalesforceClient:
    """REST calls against one org as one user.

    ``ca_file`` is the CA bundle to trust (the emulator's, for a local org);
    ``client_name`` goes out in ``Sforce-Call-Options`` so Change Data Capture
    can tell this client's writes apart.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        api_version: str = DEFAULT_API_VERSION,
        ca_file: str | None = None,
        client_name: str = "sfsync",
        timeout: float = 30.0,
        pool_size: int = 20,
    ) -> None:
        self.credentials = credentials
        self.api_version = api_version
        self.client_name = client_name
        self.timeout = timeout
        self.api_usage: tuple[int, int] | None = None
        # Passed on every call: a session-wide ``verify`` loses to the
        # REQUESTS_CA_BUNDLE environment variable, this does not.
        self.verify: str | bool = ca_file or True
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        self._session: Session | None = None
        self._login_lock = threading.Lock()

    # -- sessions ------------------------------------------------------

    @property
    def session(self) -> Session:
        if self._session is None:
            self.relogin(stale=None)
        assert self._session is not None
        return self._session

    @property
    def user_id(self) -> str:
        return self.session.user_id

    def relogin(self, stale: Session | None) -> Session:
        """Log in again, unless another worker already replaced ``stale``."""
        with self._login_lock:
            if self._session is not None and self._session is not stale:
                return self._session
            if self.credentials.consumer_key:
                self._session = self._login_oauth()
            else:
                self._session = self._login_soap()
            log.info(
                "logged in to Salesforce as %s at %s",
                self.credentials.username,
                self._session.instance_url,
            )
            return self._session

    def _login_soap(self) -> Session:
        creds = self.credentials
        body = _SOAP_LOGIN.format(
            username=escape(creds.username),
            password=escape(creds.password + creds.security_token),
        )
        url = f"{creds.login_url.rstrip('/')}/services/Soap/u/{self.api_version}"
        response = self._post_login(
            url,
            data=body.encode("utf-8"),
            headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "login"},
        )
        root = ElementTree.fromstring(response.content)
        if response.status_code != 200:
            fault = root.find(".//faultstring")
            reason = fault.text if fault is not None else response.status_code
            raise LoginFailed(
                f"Salesforce refused the login of {creds.username}: {reason}",
                status=response.status_code,
            )
        result = root.find(f".//{_SOAP_NS}result")
        if result is None:
            raise LoginFailed(f"Salesforce sent no login result for {creds.username}")
        server_url = result.findtext(f"{_SOAP_NS}serverUrl", "")
        match = re.match(r"^(https?://[^/]+)", server_url)
        if not match:
            raise LoginFailed(f"Salesforce sent an unusable serverUrl: {server_url!r}")
        return Session(
            instance_url=match.group(1),
            access_token=result.findtext(f"{_SOAP_NS}sessionId", ""),
            user_id=result.findtext(f"{_SOAP_NS}userId", ""),
        )

    def _login_oauth(self) -> Session:
        creds = self.credentials
        url = f"{creds.login_url.rstrip('/')}/services/oauth2/token"
        response = self._post_login(
            url,
            data={
                "grant_type": "password",
                "client_id": creds.consumer_key,
                "client_secret": creds.consumer_secret,
                "username": creds.username,
                "password": creds.password + creds.security_token,
            },
        )
        body = response.json()
        if response.status_code != 200:
            raise LoginFailed(
                f"Salesforce refused the login of {creds.username}: "
                f"{body.get('error')}: {body.get('error_description')}",
                status=response.status_code,
            )
        return Session(
            instance_url=body["instance_url"].rstrip("/"),
            access_token=body["access_token"],
            user_id=body["id"].rstrip("/").rsplit("/", 1)[-1],
        )

    def _post_login(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.http.post(
                url, timeout=self.timeout, verify=self.verify, **kwargs
            )
        except requests.RequestException as exc:
            raise ServerUnavailable(
                f"could not reach the Salesforce login host: {type(exc).__name__}"
            ) from exc

    # -- raw requests ----------------------------------------------------

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.api_version}"

    def request(
        self, method: str, path: str, what: str, **kwargs: Any
    ) -> requests.Response:
        """Send one REST call; ``path`` is relative to the instance URL.

        Logs in again once on a 401; raises the error for any other failure.
        ``what`` names the record or operation in error messages.
        """
        extra_headers = kwargs.pop("headers", {})
        session = self.session
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {session.access_token}",
                "Sforce-Call-Options": f"client={self.client_name}",
                "Accept": "application/json",
                **extra_headers,
            }
            try:
                response = self.http.request(
                    method,
                    session.instance_url + path,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify,
                    **kwargs,
                )
            except requests.RequestException as exc:
                raise ServerUnavailable(
                    f"{what}: could not reach Salesforce: {type(exc).__name__}"
                ) from exc
            self._track_limits(response)
            if response.status_code == 401 and attempt == 1:
                session = self.relogin(stale=session)
                continue
            if response.status_code >= 300:
                raise error_from_response(
                    response.status_code, _json_or_text(response), what
                )
            return response
        raise SessionExpired(f"{what}: the session was refused after a new login")

    def _track_limits(self, response: requests.Response) -> None:
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_usage = (int(match.group(1)), int(match.group(2)))

    # -- sObjects ------------------------------------------------------

    def get(
        self, sobject: str, record_id: str, fields: list[str] | None = None
    ) -> dict[str, Any] | None:
        """The record, or None when it does not exist or was deleted."""
        params = {"fields": ",".join(fields)} if fields else None
        try:
            response = self.request(
                "GET",
                f"{self.base_path}/sobjects/{sobject}/{record_id}",
                f"{sobject} {record_id}",
                params=params,
            )
        except RecordNotFound:
            return None
        return response.json()

    def create(self, sobject: str, fields: dict[str, Any]) -> str:
        response = self.request(
            "POST",
            f"{self.base_path}/sobjects/{sobject}",
            f"new {sobject}",
            json=fields,
        )
        return response.json()["id"]

    def update(self, sobject: str, record_id: str, fields: dict[str, Any]) -> None:
        self.request(
            "PATCH",
            f"{self.base_path}/sobjects/{sobject}/{record_id}",
            f"{sobject} {record_id}",
            json=fields,
        )

    def delete(self, sobject: str, record_id: str) -> bool:
        """Delete the record; False when it was already gone."""
        try:
            self.request(
                "DELETE",
                f"{self.base_path}/sobjects/{sobject}/{record_id}",
                f"{sobject} {record_id}",
            )
        except RecordNotFound:
            return False
        return True

    def upsert(
        self, sobject: str, field: str, value: str, fields: dict[str, Any]
    ) -> UpsertResult:
        """Create or update the one record whose external id ``field`` is ``value``."""
        body = {name: v for name, v in fields.items() if name != field}
        response = self.request(
            "PATCH",
            f"{self.base_path}/sobjects/{sobject}/{field}/{quote(value, safe='')}",
            f"{sobject} with {field}={value}",
            json=body,
        )
        if response.status_code == 204:  # API versions before 46.0
            found = self.query(
                f"SELECT Id FROM {sobject} WHERE {field} = '{soql_quote(value)}'"
            )
            return UpsertResult(id=next(iter(found))["Id"], created=False)
        result = response.json()
        return UpsertResult(id=result["id"], created=bool(result.get("created")))

    # -- sObject Collections (up to 200 records a call) -----------------

    def upsert_many(
        self, sobject: str, field: str, records: list[dict[str, Any]]
    ) -> list[UpsertResult | SalesforceError]:
        """Upsert by external id ``field``; one result or error per record, in
        order. One bad record fails alone (``allOrNone`` false)."""
        response = self._collection_write(
            f"/composite/sobjects/{sobject}/{field}", sobject, records, "upserts"
        )
        return [
            UpsertResult(id=row["id"], created=bool(row.get("created")))
            if row.get("success")
            else _row_error(row, f"{sobject} with {field}={record.get(field)}")
            for row, record in zip(response.json(), records, strict=True)
        ]

    def update_many(
        self, sobject: str, records: list[dict[str, Any]]
    ) -> list[None | SalesforceError]:
        """Update records (each with its ``Id``); None or an error per record."""
        response = self._collection_write(
            "/composite/sobjects", sobject, records, "updates"
        )
        return [
            None if row.get("success") else _row_error(row, f"{sobject} {record['Id']}")
            for row, record in zip(response.json(), records, strict=True)
        ]

    def _collection_write(
        self, path: str, sobject: str, records: list[dict[str, Any]], what: str
    ) -> requests.Response:
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": sobject}, **r} for r in records],
        }
        return self.request(
            "PATCH",
            self.base_path + path,
            f"{len(records)} {sobject} {what}",
            json=body,
        )

    def retrieve_many(
        self, sobject: str, ids: list[str], fields: list[str]
    ) -> list[dict[str, Any] | None]:
        """The records for ``ids``, in order; None for deleted or missing ones."""
        response = self.request(
            "POST",
            f"{self.base_path}/composite/sobjects/{sobject}",
            f"{len(ids)} {sobject} reads",
            json={"ids": ids, "fields": fields},
        )
        return list(response.json())

    # -- SOQL ------------------------------------------------------------

    def query(self, soql: str, include_deleted: bool = False) -> Iterator[dict]:
        """Every record the query selects, following ``nextRecordsUrl`` pages."""
        endpoint = "queryAll" if include_deleted else "query"
        response = self.request(
            "GET", f"{self.base_path}/{endpoint}", "SOQL query", params={"q": soql}
        )
        while True:
            page = response.json()
            for record in page["records"]:
                record.pop("attributes", None)
                yield record
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            response = self.request("GET", page["nextRecordsUrl"], "SOQL query page")

    def count(self, soql_from_where: str) -> int:
        """``SELECT COUNT()`` over ``FROM ... [WHERE ...]``."""
        response = self.request(
            "GET",
            f"{self.base_path}/query",
            "SOQL count",
            params={"q": f"SELECT COUNT() {soql_from_where}"},
        )
        return int(response.json()["totalSize"])

    def close(self) -> None:
        self.http.close()


def _row_error(row: dict[str, Any], what: str) -> SalesforceError:
    error = (row.get("errors") or [{}])[0]
    body = [
        {
            "errorCode": error.get("statusCode", error.get("errorCode", "")),
            "message": error.get("message", ""),
            "fields": error.get("fields") or [],
        }
    ]
    code = body[0]["errorCode"]
    status = 404 if code in ("ENTITY_IS_DELETED", "NOT_FOUND") else 400
    return error_from_response(status, body, what)


def soql_quote(value: str) -> str:
    """Escape a string for use inside single quotes in SOQL."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _json_or_text(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]
