import pytest

from sfsync.testing.emulator import start_emulator
from tests.integration.test_emulator_streaming import Bayeux, login

pytestmark = pytest.mark.integration

V = "/services/data/v59.0"
CONNECT_TIMEOUT = 2.0
UNDELETE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader>
<urn:sessionId>{token}</urn:sessionId></urn:SessionHeader></soapenv:Header>
<soapenv:Body><urn:undelete>{ids}</urn:undelete></soapenv:Body></soapenv:Envelope>"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(
        tmp_path_factory.mktemp("emulator-surface"), connect_timeout=CONNECT_TIMEOUT
    )
    yield process
    process.stop()


class Api:
    def __init__(self, emulator, key="integration", client=None):
        self.session = emulator.session()
        self.base = emulator.https_url
        self.token = login(emulator, self.session, key)
        self.user_id = emulator.users[key]["id"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        if client:
            self.session.headers["Sforce-Call-Options"] = f"client={client}"

    def call(self, method, path, **kwargs):
        return self.session.request(method, self.base + V + path, timeout=10, **kwargs)

    def create(self, sobject, **fields):
        response = self.call("POST", f"/sobjects/{sobject}", json=fields)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def query(self, soql, everything=False):
        path = "/queryAll" if everything else "/query"
        response = self.call("GET", path, params={"q": soql})
        assert response.status_code == 200, response.text
        return response.json()

    def undelete(self, *record_ids):
        ids = "".join(f"<urn:ids>{i}</urn:ids>" for i in record_ids)
        return self.session.post(
            f"{self.base}/services/Soap/u/59.0/00DEm0000000001",
            data=UNDELETE.format(token=self.token, ids=ids),
            headers={"Content-Type": "text/xml", "SOAPAction": "undelete"},
            timeout=10,
        )


@pytest.fixture(scope="module")
def api(emulator):
    return Api(emulator, client="surface-test")


def test_account_create_and_get_with_typed_fields(api):
    account_id = api.create(
        "Account", Name="Acme", NumberOfEmployees="120", Platform_Id__c="acc-1"
    )

    record = api.call("GET", f"/sobjects/Account/{account_id}").json()

    assert account_id.startswith("001")
    assert record["Name"] == "Acme"
    assert record["NumberOfEmployees"] == 120
    assert record["OwnerId"] == api.user_id


def test_account_requires_name(api):
    response = api.call("POST", "/sobjects/Account", json={"Type": "Customer"})

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert response.json()[0]["fields"] == ["Name"]


@pytest.mark.parametrize(
    ("account_id", "code"),
    [
        ("001Em0000099999", "FIELD_INTEGRITY_EXCEPTION"),
        ("003Em0000000001", "MALFORMED_ID"),
    ],
)
def test_contact_account_must_exist(api, account_id, code):
    response = api.call(
        "POST", "/sobjects/Contact", json={"LastName": "X", "AccountId": account_id}
    )

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_contact_on_deleted_account_is_refused(api):
    account_id = api.create("Account", Name="Gone")
    api.call("DELETE", f"/sobjects/Account/{account_id}")

    response = api.call(
        "POST", "/sobjects/Contact", json={"LastName": "X", "AccountId": account_id}
    )

    assert response.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_query_parent_fields_nest_under_relationship(api):
    account_id = api.create("Account", Name="Parent Co")
    with_parent = api.create("Contact", LastName="Child", AccountId=account_id)
    orphan = api.create("Contact", LastName="Orphan")

    result = api.query(
        "SELECT Id, Account.Name FROM Contact WHERE Account.Name = 'Parent Co' "
        f"OR Id = '{orphan}' ORDER BY LastName"
    )

    rows = {row["Id"]: row for row in result["records"]}
    assert rows[with_parent]["Account"]["Name"] == "Parent Co"
    assert rows[with_parent]["Account"]["attributes"]["type"] == "Account"
    assert rows[orphan]["Account"] is None


def test_describe_global_lists_account_and_user(api):
    body = api.call("GET", "/sobjects").json()

    names = {s["name"] for s in body["sobjects"]}
    assert {"Account", "Contact", "User", "PushTopic"} <= names
    fields = api.call("GET", "/sobjects/Account/describe").json()["fields"]
    employees = next(f for f in fields if f["name"] == "NumberOfEmployees")
    assert employees["type"] == "int"


def test_collection_create_reports_rows_in_order(api):
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "C1"},
        {"attributes": {"type": "Contact"}},
        {"attributes": {"type": "Account"}, "Name": "C3"},
    ]

    response = api.call("POST", "/composite/sobjects", json={"records": records})

    first, second, third = response.json()
    assert response.status_code == 200
    assert first["success"] and first["id"].startswith("003")
    assert second["success"] is False
    assert second["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert third["success"] and third["id"].startswith("001")


def test_collection_all_or_none_rolls_everything_back(api):
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Rollback-A"},
        {"attributes": {"type": "Contact"}, "Email": "not-an-email"},
    ]

    response = api.call(
        "POST", "/composite/sobjects", json={"allOrNone": True, "records": records}
    )

    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] in (
        "REQUIRED_FIELD_MISSING",
        "INVALID_EMAIL_ADDRESS",
    )
    query = "SELECT COUNT() FROM Contact WHERE LastName = 'Rollback-A'"
    assert api.query(query, everything=True)["totalSize"] == 0


def test_collection_update_upsert_retrieve_delete(api):
    a = api.create("Contact", LastName="U1", Platform_Id__c="coll-1")
    b = api.create("Contact", LastName="U2")

    updated = api.call(
        "PATCH",
        "/composite/sobjects",
        json={"records": [
            {"attributes": {"type": "Contact"}, "id": a, "Title": "T1"},
            {"attributes": {"type": "Contact"}, "Id": b, "Title": "T2"},
        ]},
    ).json()  # fmt: skip
    upserted = api.call(
        "PATCH",
        "/composite/sobjects/Contact/Platform_Id__c",
        json={"records": [
            {"attributes": {"type": "Contact"}, "Platform_Id__c": "coll-1",
             "Title": "T3"},
            {"attributes": {"type": "Contact"}, "Platform_Id__c": "coll-2",
             "LastName": "U3"},
        ]},
    ).json()  # fmt: skip
    retrieved = api.call(
        "POST",
        "/composite/sobjects/Contact",
        json={"ids": [a, b, "003Em0000009999"], "fields": ["Title"]},
    ).json()
    deleted = api.call("DELETE", "/composite/sobjects", params={"ids": f"{a},{b}"})

    assert [r["success"] for r in updated] == [True, True]
    assert [r["created"] for r in upserted] == [False, True]
    assert [r and r["Title"] for r in retrieved] == ["T3", "T2", None]
    assert [r["id"] for r in deleted.json()] == [a, b]


def test_collection_refuses_more_than_200_records(api):
    records = [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201

    response = api.call("POST", "/composite/sobjects", json={"records": records})

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_composite_references_between_subrequests(api):
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "acc",
             "body": {"Name": "Composite Co"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "ct",
             "body": {"LastName": "Comp", "AccountId": "@{acc.id}"}},
            {"method": "GET", "referenceId": "get",
             "url": f"{V}/sobjects/Contact/@{{ct.id}}?fields=AccountId"},
        ],
    }  # fmt: skip

    response = api.call("POST", "/composite", json=body)

    acc, ct, get = response.json()["compositeResponse"]
    assert [acc["httpStatusCode"], ct["httpStatusCode"]] == [201, 201]
    assert get["body"]["AccountId"] == acc["body"]["id"]


def test_composite_all_or_none_halts_and_rolls_back(api):
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "ok",
             "body": {"LastName": "Halted-A"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "bad",
             "body": {"FirstName": "no last name"}},
            {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "later",
             "body": {"LastName": "Halted-B"}},
        ],
    }  # fmt: skip

    results = api.call("POST", "/composite", json=body).json()["compositeResponse"]

    codes = [r["body"][0]["errorCode"] for r in results]
    assert codes == ["PROCESSING_HALTED", "REQUIRED_FIELD_MISSING", "PROCESSING_HALTED"]
    query = "SELECT COUNT() FROM Contact WHERE LastName LIKE 'Halted%'"
    assert api.query(query, everything=True)["totalSize"] == 0


def test_query_all_shows_deleted_rows_and_soap_undelete_restores(api):
    contact_id = api.create("Contact", LastName="Lazarus")
    api.call("DELETE", f"/sobjects/Contact/{contact_id}")
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact_id}'"
    assert api.query(soql)["totalSize"] == 0
    assert api.query(soql, everything=True)["records"][0]["IsDeleted"] is True

    response = api.undelete(contact_id, "003Em0000009999")

    assert response.status_code == 200
    assert response.text.count("<success>true</success>") == 1
    assert "<success>false</success>" in response.text
    assert api.query(soql)["records"][0]["IsDeleted"] is False


def test_limits_and_limit_header(api):
    response = api.call("GET", "/limits")

    assert response.json()["DailyApiRequests"]["Max"] > 0
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_change_events_carry_the_header(emulator, api):
    bayeux = Bayeux(emulator, api.token)
    bayeux.handshake()
    bayeux.connect()
    assert bayeux.subscribe("/data/ContactChangeEvent")["successful"]
    assert bayeux.subscribe("/data/ChangeEvents")["successful"]

    contact_id = api.create("Contact", FirstName="Cee", LastName="Dee")
    api.call("PATCH", f"/sobjects/Contact/{contact_id}", json={"FirstName": None})
    api.call("DELETE", f"/sobjects/Contact/{contact_id}")
    api.undelete(contact_id)
    events = bayeux.events(8)

    by_channel = [e for e in events if e["channel"] == "/data/ContactChangeEvent"]
    payloads = [e["data"]["payload"] for e in by_channel]
    headers = [p["ChangeEventHeader"] for p in payloads]
    assert [h["changeType"] for h in headers] == [
        "CREATE", "UPDATE", "DELETE", "UNDELETE"
    ]  # fmt: skip
    create, update, delete, undelete = payloads
    assert headers[0]["recordIds"] == [contact_id]
    assert headers[0]["entityName"] == "Contact"
    assert headers[0]["commitUser"] == api.user_id
    assert headers[0]["changeOrigin"].endswith(";client=surface-test")
    assert headers[0]["sequenceNumber"] == 1
    assert create["Name"] == {"FirstName": "Cee", "LastName": "Dee"}
    assert "IsDeleted" not in create and "SystemModstamp" not in create
    assert headers[1]["changedFields"] == ["Name.FirstName", "LastModifiedDate"]
    assert headers[1]["nulledFields"] == ["Name.FirstName"]
    assert set(delete) == {"ChangeEventHeader"}
    assert undelete["Name"]["LastName"] == "Dee"
    all_channel = [e for e in events if e["channel"] == "/data/ChangeEvents"]
    assert [e["data"]["event"]["replayId"] for e in all_channel] == [
        e["data"]["event"]["replayId"] for e in by_channel
    ]


def test_change_event_replay_expires_after_72_hours(emulator, api):
    api.create("Account", Name="Replay Co")
    bayeux = Bayeux(emulator, api.token)
    bayeux.handshake()
    bayeux.connect()
    replay = bayeux.subscribe("/data/AccountChangeEvent", replay=-2)
    assert replay["successful"]
    [first, *_] = bayeux.events(1)
    replay_id = first["data"]["event"]["replayId"]

    emulator.advance_clock(25 * 3600)
    within = Bayeux(emulator, api.token)
    within.handshake()
    kept = within.subscribe("/data/AccountChangeEvent", replay=replay_id - 1)
    emulator.advance_clock(48 * 3600)
    api.create("Account", Name="After the jump")
    late = Bayeux(emulator, api.token)
    late.handshake()
    expired = late.subscribe("/data/AccountChangeEvent", replay=replay_id - 1)

    assert kept["successful"], kept
    assert expired["successful"] is False
    assert expired["error"].startswith(f"400::The replayId {replay_id - 1} you")
