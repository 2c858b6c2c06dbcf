import pytest
import requests
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

SOAP_BODY = """<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
 <env:Body>
  <n1:login xmlns:n1="urn:partner.soap.sforce.com">
   <n1:username>{username}</n1:username><n1:password>{password}</n1:password>
  </n1:login>
 </env:Body>
</env:Envelope>"""
SOAP_HEADERS = {"Content-Type": "text/xml", "SOAPAction": "login"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(tmp_path_factory.mktemp("emulator-login"))
    yield process
    process.stop()


@pytest.fixture
def http(emulator):
    with emulator.session() as session:
        yield session


def soap(emulator, http, url, password=None):
    user = emulator.users["integration"]
    body = SOAP_BODY.format(
        username=user["username"], password=password or user["password"]
    )
    return http.post(url, data=body, headers=SOAP_HEADERS, timeout=10)


def tag(xml, name):
    return xml.split(f"<{name}>", 1)[1].split(f"</{name}>", 1)[0]


@pytest.mark.parametrize("base", ["https_url", "http_url"])
def test_soap_login_returns_server_url_on_the_same_port(emulator, http, base):
    url = getattr(emulator, base)

    response = soap(emulator, http, f"{url}/services/Soap/u/59.0")

    assert response.status_code == 200
    assert tag(response.text, "serverUrl").startswith(f"{url}/services/Soap/u/59.0/")
    assert tag(response.text, "sessionId").startswith("00D")
    assert tag(response.text, "userId") == emulator.users["integration"]["id"]
    assert "<passwordExpired>false</passwordExpired>" in response.text


def test_soap_login_at_root(emulator, http):
    response = soap(emulator, http, f"{emulator.https_url}/")

    assert response.status_code == 200
    assert "!AQ" in tag(response.text, "sessionId")


def test_soap_login_fault(emulator, http):
    response = soap(emulator, http, f"{emulator.https_url}/services/Soap/u/59.0", "x")

    assert response.status_code == 500
    assert "<faultcode>sf:INVALID_LOGIN</faultcode>" in response.text
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in response.text


@pytest.mark.parametrize("path", ["/services/oauth2/token", "/"])
def test_oauth_password_login(emulator, http, path):
    user = emulator.users["sales"]

    response = http.post(
        emulator.http_url + path,
        data={"grant_type": "password", "client_id": "c", "client_secret": "s",
              "username": user["username"], "password": user["password"]},
        timeout=10,
    )  # fmt: skip

    body = response.json()
    assert response.status_code == 200
    assert body["instance_url"] == emulator.http_url
    assert body["token_type"] == "Bearer"
    assert body["id"].endswith("/" + user["id"])
    assert body["access_token"].startswith("00D")


def test_oauth_bad_password(emulator, http):
    response = http.post(
        emulator.https_url + "/services/oauth2/token",
        data={"grant_type": "password", "username": "sync@platform.example",
              "password": "wrong"},
        timeout=10,
    )  # fmt: skip

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_rest_without_valid_token_is_401(emulator, http):
    url = emulator.https_url + "/services/data/v59.0/sobjects/Contact/003Em0000000001"

    response = http.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_simple_salesforce_soap_password_login(emulator, http):
    user = emulator.users["integration"]
    host = emulator.https_url.removeprefix("https://")

    sf = Salesforce(
        username=user["username"],
        password=user["password"],
        security_token="",
        domain=f"{host}#",
        session=http,
    )

    assert sf.sf_instance == host
    assert (
        sf.query("SELECT Id FROM User WHERE Username = 'sync@platform.example'")[
            "records"
        ][0]["Id"]
        == user["id"]
    )


def test_simple_salesforce_oauth_password_login(emulator, http):
    user = emulator.users["sales"]
    host = emulator.https_url.removeprefix("https://")

    sf = Salesforce(
        username=user["username"],
        password=user["password"],
        consumer_key="key",
        consumer_secret="secret",
        domain=f"{host}#",
        session=http,
    )

    assert sf.Contact.create({"LastName": "ViaOAuth"})["success"] is True


def test_simple_salesforce_bad_password(emulator, http):
    host = emulator.https_url.removeprefix("https://")

    with pytest.raises(SalesforceAuthenticationFailed) as info:
        Salesforce(
            username="sync@platform.example",
            password="wrong",
            security_token="",
            domain=f"{host}#",
            session=http,
        )

    assert info.value.code == "INVALID_LOGIN"


def test_simple_salesforce_with_session_id(emulator, http):
    token = http.post(
        emulator.https_url + "/services/oauth2/token",
        data={"grant_type": "password", "username": "sync@platform.example",
              "password": "sync-password"},
        timeout=10,
    ).json()["access_token"]  # fmt: skip

    sf = Salesforce(instance_url=emulator.https_url, session_id=token, session=http)
    contacts = sf.Contact
    created = contacts.create({"LastName": "Session", "Platform_Id__c": "ss-1"})
    fetched = contacts.get(created["id"])
    by_ext = contacts.get_by_custom_id("Platform_Id__c", "ss-1")

    assert fetched["Name"] == "Session"
    assert by_ext["Id"] == created["id"]
    assert contacts.api_usage["api-usage"].used >= 3


def test_requests_honours_ca_file(emulator):
    response = requests.get(
        emulator.https_url + "/_emulator/health",
        verify=emulator.ca_file,
        timeout=10,
    )

    assert response.json() == {"ok": True}
