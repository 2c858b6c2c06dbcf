import pytest

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(tmp_path_factory.mktemp("emulator-rest"))
    yield process
    process.stop()


class Api:
    """Minimal REST caller bound to one user's session."""

    def __init__(self, emulator, user_key):
        self.session = emulator.session()
        self.base = emulator.https_url
        user = emulator.users[user_key]
        self.user_id = user["id"]
        token = self.session.post(
            f"{self.base}/services/oauth2/token",
            data={"grant_type": "password", "username": user["username"],
                  "password": user["password"]},
            timeout=10,
        ).json()["access_token"]  # fmt: skip
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, **kwargs):
        url = path if path.startswith("http") else self.base + path
        return self.session.request(method, url, timeout=10, **kwargs)

    def create(self, **fields):
        response = self.call("POST", f"{V}/sobjects/Contact", json=fields)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def query(self, soql, **kwargs):
        response = self.call("GET", f"{V}/query", params={"q": soql}, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def api(emulator):
    return Api(emulator, "integration")


@pytest.fixture(scope="module")
def sales(emulator):
    return Api(emulator, "sales")


def test_create_returns_location_and_limit_header(api):
    response = api.call("POST", f"{V}/sobjects/Contact/", json={"LastName": "Loc"})

    body = response.json()
    assert response.status_code == 201
    assert body == {"id": body["id"], "success": True, "errors": []}
    assert len(body["id"]) == 18 and body["id"].startswith("003")
    assert response.headers["Location"] == f"{V}/sobjects/Contact/{body['id']}"
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_get_record_with_system_fields(api):
    contact_id = api.create(FirstName="Ann", LastName="Lee", Email=" ann@x.example ")

    record = api.call("GET", f"{V}/sobjects/Contact/{contact_id[:15]}").json()

    assert record["attributes"] == {
        "type": "Contact",
        "url": f"{V}/sobjects/Contact/{contact_id}",
    }
    assert record["Id"] == contact_id
    assert record["Name"] == "Ann Lee"
    assert record["Email"] == "ann@x.example"
    assert record["HasOptedOutOfEmail"] is False
    assert record["CreatedById"] == record["LastModifiedById"] == api.user_id
    assert record["OwnerId"] == api.user_id
    assert record["CreatedDate"].endswith("+0000") and len(record["CreatedDate"]) == 28


def test_get_selected_fields(api):
    contact_id = api.create(LastName="Few", Title="CTO")

    response = api.call("GET", f"{V}/sobjects/Contact/{contact_id}?fields=title,Id")

    assert response.json() == {
        "attributes": {"type": "Contact", "url": f"{V}/sobjects/Contact/{contact_id}"},
        "Title": "CTO",
        "Id": contact_id,
    }


def test_update_changes_fields_and_stamps(api, sales):
    contact_id = api.create(LastName="Before")
    before = api.call("GET", f"{V}/sobjects/Contact/{contact_id}").json()

    response = sales.call(
        "PATCH", f"{V}/sobjects/Contact/{contact_id}", json={"LastName": "After"}
    )
    after = api.call("GET", f"{V}/sobjects/Contact/{contact_id}").json()

    assert response.status_code == 204
    assert after["Name"] == "After"
    assert after["LastModifiedById"] == sales.user_id
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]


def test_delete_then_access_is_entity_is_deleted(api, sales):
    contact_id = api.create(LastName="Doomed")

    deleted = sales.call("DELETE", f"{V}/sobjects/Contact/{contact_id}")
    fetched = api.call("GET", f"{V}/sobjects/Contact/{contact_id}")
    patched = api.call("PATCH", f"{V}/sobjects/Contact/{contact_id}", json={})
    again = api.call("DELETE", f"{V}/sobjects/Contact/{contact_id}")
    rows = api.call(
        "GET",
        f"{V}/queryAll",
        params={"q": f"SELECT IsDeleted, LastModifiedById FROM Contact "
                     f"WHERE Id = '{contact_id}'"},
    ).json()["records"]  # fmt: skip

    assert deleted.status_code == 204
    assert [r.status_code for r in (fetched, patched, again)] == [404, 404, 404]
    assert fetched.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert rows[0]["IsDeleted"] is True
    assert rows[0]["LastModifiedById"] == sales.user_id
    assert (
        api.query(f"SELECT Id FROM Contact WHERE Id = '{contact_id}'")["totalSize"] == 0
    )


def test_unknown_id_is_not_found(api):
    response = api.call("GET", f"{V}/sobjects/Contact/003Em00000ZZZZZ")

    assert response.status_code == 404
    assert response.json()[0]["errorCode"] == "NOT_FOUND"


def test_upsert_creates_then_updates(api):
    url = f"{V}/sobjects/Contact/Platform_Id__c/up-1"

    first = api.call("PATCH", url, json={"LastName": "Up"})
    second = api.call("PATCH", url, json={"Title": "Boss"})
    old_api = api.call(
        "PATCH", "/services/data/v45.0/sobjects/Contact/Platform_Id__c/up-1",
        json={"Title": "Old"},
    )  # fmt: skip

    assert first.status_code == 201
    assert first.json() == {
        "id": first.json()["id"], "success": True, "errors": [], "created": True
    }  # fmt: skip
    assert second.status_code == 200
    assert second.json() == {
        "id": first.json()["id"], "success": True, "errors": [], "created": False
    }  # fmt: skip
    assert old_api.status_code == 204
    record = api.call("GET", f"{V}/sobjects/Contact/{first.json()['id']}").json()
    assert (record["Platform_Id__c"], record["Title"]) == ("up-1", "Old")


def test_upsert_after_delete_creates_a_new_row(api):
    url = f"{V}/sobjects/Contact/Platform_Id__c/up-2"
    first = api.call("PATCH", url, json={"LastName": "One"}).json()["id"]
    api.call("DELETE", f"{V}/sobjects/Contact/{first}")

    second = api.call("PATCH", url, json={"LastName": "Two"})

    assert second.status_code == 201
    assert second.json()["id"] != first


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"FirstName": "NoLast"}, 400, "REQUIRED_FIELD_MISSING"),
        ({"LastName": "x", "Bogus__c": 1}, 400, "INVALID_FIELD"),
        ({"LastName": "x", "Name": "y"}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"LastName": "x", "SystemModstamp": "y"}, 400,
         "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"LastName": "x" * 81}, 400, "STRING_TOO_LONG"),
        ({"LastName": "x", "Email": "nope"}, 400, "INVALID_EMAIL_ADDRESS"),
        ({"LastName": "x", "AccountId": "bad!"}, 400, "MALFORMED_ID"),
    ],
)  # fmt: skip
def test_create_errors(api, body, status, code):
    response = api.call("POST", f"{V}/sobjects/Contact", json=body)

    assert response.status_code == status
    assert response.json()[0]["errorCode"] == code


def test_required_field_error_names_the_field(api):
    response = api.call("POST", f"{V}/sobjects/Contact", json={"FirstName": "x"})

    assert response.json()[0]["fields"] == ["LastName"]


def test_malformed_json(api):
    response = api.call(
        "POST", f"{V}/sobjects/Contact", data="{nope",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_unknown_sobject(api):
    response = api.call("POST", f"{V}/sobjects/Widget__c", json={"Name": "x"})

    assert response.json()[0]["errorCode"] == "INVALID_TYPE"


def test_duplicate_platform_id(api):
    api.create(LastName="A", Platform_Id__c="dup-1")

    response = api.call(
        "POST",
        f"{V}/sobjects/Contact",
        json={"LastName": "B", "Platform_Id__c": "dup-1"},
    )

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "DUPLICATE_VALUE"


def test_malformed_id_for_another_object(api):
    response = api.call("GET", f"{V}/sobjects/Contact/001D000000IqhSL")

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_ID"


def test_query_pages_over_next_records_url(api):
    for n in range(7):
        api.create(LastName=f"Page{n}", LeadSource="paging")
    soql = (
        "SELECT Id, LastName FROM Contact WHERE LeadSource = 'paging' ORDER BY LastName"
    )

    page = api.query(soql, headers={"Sforce-Query-Options": "batchSize=3"})
    names = [r["LastName"] for r in page["records"]]
    while not page["done"]:
        assert page["nextRecordsUrl"].startswith(f"{V}/query/")
        page = api.call("GET", page["nextRecordsUrl"]).json()
        names += [r["LastName"] for r in page["records"]]

    assert page["totalSize"] == 7
    assert names == [f"Page{n}" for n in range(7)]


def test_query_count_and_canonical_field_names(api):
    api.create(LastName="Counted", LeadSource="count")

    count = api.query("select count() from contact where leadsource = 'count'")
    rows = api.query("select lastname, ID from CONTACT where LeadSource = 'count'")

    assert count == {"totalSize": 1, "done": True, "records": []}
    assert list(rows["records"][0]) == ["attributes", "LastName", "Id"]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Nope FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
    ],
)
def test_query_errors(api, soql, code):
    response = api.call("GET", f"{V}/query/", params={"q": soql})

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_users_are_queryable(api, emulator):
    rows = api.query("SELECT Id, Username, Name, Email, IsActive FROM User ORDER BY Id")

    assert [r["Username"] for r in rows["records"]] == [
        emulator.users["integration"]["username"],
        emulator.users["sales"]["username"],
    ]
    assert rows["records"][0]["Id"] == emulator.users["integration"]["id"]


def test_push_topic_crud_and_duplicate_name(api):
    body = {"Name": "CrudTopic", "Query": "SELECT Id, Name FROM Contact",
            "ApiVersion": "59.0"}  # fmt: skip

    created = api.call("POST", f"{V}/sobjects/PushTopic", json=body)
    duplicate = api.call("POST", f"{V}/sobjects/PushTopic", json=body)
    topic_id = created.json()["id"]
    api.call("PATCH", f"{V}/sobjects/PushTopic/{topic_id}", json={"IsActive": False})
    fetched = api.call("GET", f"{V}/sobjects/PushTopic/{topic_id}").json()
    rows = api.query("SELECT Id, Name FROM PushTopic WHERE Name = 'CrudTopic'")
    deleted = api.call("DELETE", f"{V}/sobjects/PushTopic/{topic_id}")

    assert created.status_code == 201
    assert duplicate.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    assert fetched["ApiVersion"] == 59.0
    assert fetched["IsActive"] is False
    assert fetched["NotifyForFields"] == "Referenced"
    assert fetched["NotifyForOperationCreate"] is True
    assert rows["records"][0]["Id"] == topic_id
    assert deleted.status_code == 204


def test_push_topic_query_must_select_id(api):
    response = api.call(
        "POST", f"{V}/sobjects/PushTopic",
        json={"Name": "NoId", "Query": "SELECT Name FROM Contact", "ApiVersion": 59},
    )  # fmt: skip

    assert response.status_code == 400


def test_versions_and_limits(api):
    versions = api.call("GET", "/services/data/").json()
    limits = api.call("GET", f"{V}/limits/").json()

    assert {"label", "url", "version"} <= set(versions[0])
    assert "59.0" in [v["version"] for v in versions]
    assert limits["DailyApiRequests"]["Max"] == 5_000_000


def test_stats_count_requests_and_dml_per_user(emulator, sales):
    before = emulator.stats()
    contact_id = sales.create(LastName="Stats")
    sales.call("PATCH", f"{V}/sobjects/Contact/{contact_id}", json={"Title": "x"})
    sales.call(
        "PATCH", f"{V}/sobjects/Contact/Platform_Id__c/st-1", json={"LastName": "s"}
    )
    sales.call("DELETE", f"{V}/sobjects/Contact/{contact_id}")

    after = emulator.stats()
    name = emulator.users["sales"]["username"]

    assert after["api_requests"][name] - before["api_requests"][name] == 4
    delta = {op: after["dml"][name][op] - before["dml"][name][op]
             for op in ("create", "update", "delete")}  # fmt: skip
    assert delta == {"create": 2, "update": 1, "delete": 1}
