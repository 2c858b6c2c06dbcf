"""simple-salesforce 1.12, unmodified: password login, CRUD, upsert, paged query."""

import uuid

import pytest
import requests
from simple_salesforce import Salesforce

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(tmp_path_factory.mktemp("emulator-ss"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def sf(emulator):
    user = emulator.users["integration"]
    session = requests.Session()
    session.verify = emulator.ca_file
    session.trust_env = False
    port = emulator.https_url.rsplit(":", 1)[1]
    # The fragment swallows the `.salesforce.com` simple-salesforce appends.
    return Salesforce(
        username=user["username"],
        password=user["password"],
        security_token="",
        domain=f"127.0.0.1:{port}#",
        session=session,
    )


def test_crud_and_upsert(sf):
    tag = uuid.uuid4().hex[:8]

    account = sf.Account.create({"Name": f"SS {tag}", "NumberOfEmployees": 5})
    created = sf.Contact.create({"LastName": tag, "AccountId": account["id"]})
    updated = sf.Contact.update(created["id"], {"Title": "CTO"})
    fetched = sf.Contact.get(created["id"])
    by_ext_new = sf.Contact.upsert(f"Platform_Id__c/ss-{tag}", {"LastName": tag})
    by_ext_old = sf.Contact.upsert(f"Platform_Id__c/ss-{tag}", {"Title": "x"})
    deleted = sf.Contact.delete(created["id"])

    assert created["success"] is True
    assert updated == 204
    assert fetched["Title"] == "CTO"
    # From API v46 an update by upsert answers 200, not 204.
    assert (by_ext_new, by_ext_old) == (201, 200)
    assert deleted == 204


def test_query_paging_and_query_all(sf):
    tag = uuid.uuid4().hex[:8]
    for index in range(5):
        sf.Contact.create({"LastName": f"{tag}-{index}"})
    gone = sf.Contact.create({"LastName": f"{tag}-gone"})
    sf.Contact.delete(gone["id"])
    soql = f"SELECT Id FROM Contact WHERE LastName LIKE '{tag}-%'"

    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=2"})
    everything = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=2"})
    with_deleted = sf.query_all(soql, include_deleted=True)

    assert (first["totalSize"], len(first["records"]), first["done"]) == (5, 2, False)
    assert len(everything["records"]) == 5
    assert with_deleted["totalSize"] == 6
    assert sf.api_usage["api-usage"].used > 0


def test_describe_and_limits(sf):
    assert sf.Account.describe()["keyPrefix"] == "001"
    assert "Account" in {o["name"] for o in sf.describe()["sobjects"]}
    assert sf.limits()["DailyApiRequests"]["Max"] > 0
