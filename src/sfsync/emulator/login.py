"""SOAP partner login and `undelete`, and the OAuth 2 username-password login."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from sfsync.emulator import ids
from sfsync.emulator.errors import ApiError
from sfsync.emulator.org import Org

logger = logging.getLogger(__name__)

DEFAULT_VERSION = "59.0"
_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
_SOAP_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:sf="urn:fault.partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<soapenv:Fault><faultcode>sf:{code}</faultcode>\
<faultstring>{code}: {message}</faultstring><detail>\
<sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>\
<sf:exceptionMessage>{message}</sf:exceptionMessage></sf:LoginFault></detail>\
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
# Children are unprefixed on purpose: simple-salesforce looks tags up by their
# literal name (`sessionId`) and jsforce matches `<serverUrl>` with regexes.
_SOAP_RESULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<loginResponse><result>\
<metadataServerUrl>{base}/services/Soap/m/{version}/{org15}</metadataServerUrl>\
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>\
<serverUrl>{base}/services/Soap/u/{version}/{org15}</serverUrl>\
<sessionId>{token}</sessionId><userId>{user_id}</userId>\
<userInfo><accessibilityMode>false</accessibilityMode>\
<currencySymbol>$</currencySymbol>\
<orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>\
<organizationId>{org18}</organizationId>\
<organizationName>sfsync emulator</organizationName>\
<sessionSecondsValid>7200</sessionSecondsValid>\
<userEmail>{email}</userEmail><userFullName>{full_name}</userFullName>\
<userId>{user_id}</userId><userLanguage>en_US</userLanguage>\
<userLocale>en_US</userLocale><userName>{username}</userName>\
<userTimeZone>Etc/UTC</userTimeZone><userType>Standard</userType>\
</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"""


def base_url(request: web.Request) -> str:
    """scheme://host:port the request came in on, as the client addressed it."""
    return f"{request.scheme}://{request.host}"


def _soap_fault(code: str, message: str) -> web.Response:
    body = _SOAP_FAULT.format(code=code, message=escape(message))
    return web.Response(status=500, text=body, content_type="text/xml")


def _local_name(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


async def soap_login(org: Org, request: web.Request) -> web.Response:
    """`POST /services/Soap/u/{ver}`: the partner API `login` call."""
    version = request.match_info.get("version", DEFAULT_VERSION)
    try:
        root = ET.fromstring(await request.read())
    except ET.ParseError:
        return _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
    found = {_local_name(el.tag): (el.text or "") for el in root.iter()}
    if "undelete" in found:
        record_ids = [
            (el.text or "").strip()
            for el in root.iter()
            if _local_name(el.tag) == "ids"
        ]
        return soap_undelete(org, request, found.get("sessionId", ""), record_ids)
    if "login" not in found:
        return _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
    user = org.authenticate(found.get("username", ""), found.get("password", ""))
    if user is None:
        logger.info("SOAP login refused for %s", found.get("username"))
        return _soap_fault("INVALID_LOGIN", _INVALID_LOGIN)
    token = org.new_session(user["Id"])
    body = _SOAP_RESULT.format(
        base=escape(base_url(request)),
        version=escape(version),
        org15=ids.ORG_ID,
        org18=ids.to18(ids.ORG_ID),
        token=token,
        user_id=user["Id"],
        email=escape(user["Email"] or ""),
        full_name=escape(user["Name"] or ""),
        username=escape(user["Username"]),
    )
    logger.info("SOAP login for %s", user["Username"])
    return web.Response(text=body, content_type="text/xml")


_UNDELETE_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns="urn:partner.soap.sforce.com" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>\
<undeleteResponse>{results}</undeleteResponse></soapenv:Body></soapenv:Envelope>"""


def soap_undelete(
    org: Org, request: web.Request, token: str, record_ids: list[str]
) -> web.Response:
    """The partner API `undelete` call: one `<result>` per id, in order.

    Salesforce's REST API has no undelete; SOAP is the real wire for it.
    """
    user = org.session_user(token.strip())
    if user is None:
        return _soap_fault(
            "INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader"
        )
    version = request.match_info.get("version", DEFAULT_VERSION)
    org.call_origin = f"com/salesforce/api/soap/{version}"
    results = []
    for record_id in record_ids:
        try:
            record = org.undelete(record_id, user["Id"])
        except ApiError as exc:
            message, code = escape(exc.message), escape(exc.code)
            results.append(
                f"<result><errors><message>{message}</message>"
                f"<statusCode>{code}</statusCode></errors>"
                '<id xsi:nil="true"/><success>false</success></result>'
            )
            continue
        results.append(
            f"<result><id>{record['Id']}</id><success>true</success></result>"
        )
    logger.info("SOAP undelete of %d ids by %s", len(record_ids), user["Username"])
    body = _UNDELETE_RESPONSE.format(results="".join(results))
    return web.Response(text=body, content_type="text/xml")


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=400
    )


async def oauth_token(org: Org, request: web.Request) -> web.Response:
    """`POST /services/oauth2/token` with the username-password grant."""
    form = await request.post()
    grant = form.get("grant_type")
    if grant != "password":
        return _oauth_error("unsupported_grant_type", "grant type not supported")
    user = org.authenticate(
        str(form.get("username", "")), str(form.get("password", ""))
    )
    if user is None:
        logger.info("OAuth login refused for %s", form.get("username"))
        return _oauth_error("invalid_grant", "authentication failure")
    token = org.new_session(user["Id"])
    base = base_url(request)
    identity = f"{base}/id/{ids.to18(ids.ORG_ID)}/{user['Id']}"
    issued_at = str(org.clock.now_ms())
    digest = hmac.new(token.encode(), (identity + issued_at).encode(), hashlib.sha256)
    logger.info("OAuth login for %s", user["Username"])
    return web.json_response(
        {
            "access_token": token,
            "instance_url": base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest.digest()).decode(),
        }
    )


async def root_login(org: Org, request: web.Request) -> web.Response:
    """`POST /`: where `domain='host:port#'` logins land; dispatch on body type."""
    content_type = request.content_type
    if content_type in ("text/xml", "application/soap+xml"):
        return await soap_login(org, request)
    if content_type == "application/x-www-form-urlencoded":
        return await oauth_token(org, request)
    return web.json_response(
        [{"message": "Unsupported login request", "errorCode": "NOT_FOUND"}],
        status=404,
    )
