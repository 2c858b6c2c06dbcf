"""The project's own client (sfsync.salesforce) against the emulator."""

import uuid

import pytest

from sfsync.salesforce.client import Credentials, SalesforceClient
from sfsync.salesforce.streaming import StreamingSession
from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

REPLAY_ALL = -2


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(tmp_path_factory.mktemp("emulator-own"), connect_timeout=1)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(emulator):
    user = emulator.users["integration"]
    sf = SalesforceClient(
        Credentials(emulator.https_url, user["username"], user["password"]),
        ca_file=emulator.ca_file,
        client_name="own-client-test",
    )
    yield sf
    sf.close()


def test_crud_upsert_and_paged_query(client):
    tag = uuid.uuid4().hex[:8]
    account_id = client.create("Account", {"Name": f"Own {tag}"})
    contact_id = client.create("Contact", {"LastName": tag, "AccountId": account_id})
    client.update("Contact", contact_id, {"Title": "Lead"})
    first = client.upsert("Contact", "Platform_Id__c", f"own-{tag}", {"LastName": tag})
    second = client.upsert("Contact", "Platform_Id__c", f"own-{tag}", {"Title": "x"})
    records = [{"attributes": {"type": "Contact"}, "LastName": f"{tag}-page"}] * 200
    for _ in range(11):
        client.request(
            "POST",
            f"{client.base_path}/composite/sobjects",
            "bulk create",
            json={"records": records},
        )

    fetched = client.get("Contact", contact_id)
    paged = list(client.query(f"SELECT Id FROM Contact WHERE LastName = '{tag}-page'"))
    assert client.delete("Contact", contact_id) is True
    deleted = list(
        client.query(
            f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact_id}'",
            include_deleted=True,
        )
    )

    assert fetched["Title"] == "Lead" and fetched["AccountId"] == account_id
    assert (first.created, second.created, first.id) == (True, False, second.id)
    assert len(paged) == 2200
    assert deleted == [{"Id": contact_id, "IsDeleted": True}]


def test_streaming_session_receives_change_events(client):
    contact_id = client.create("Contact", {"LastName": "Streamed"})
    session = StreamingSession(
        client, ["/data/ContactChangeEvent"], replay_from=lambda channel: REPLAY_ALL
    )
    session.poll_timeout = 1.0

    found = None
    events = session.events()
    for _, message in zip(range(10_000), events, strict=False):
        header = message["data"]["payload"]["ChangeEventHeader"]
        if header["recordIds"] == [contact_id]:
            found = header
            break
    session.stop()

    assert found is not None
    assert found["changeType"] == "CREATE"
    assert found["changeOrigin"].endswith(";client=own-client-test")
