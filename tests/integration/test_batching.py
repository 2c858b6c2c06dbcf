"""Batching on: many workers' calls go out as sObject Collections."""

import pytest
import requests

from sfsync.deadletters import list_dead_letters
from sfsync.testing.fixtures import wait_for

pytestmark = pytest.mark.integration

RECORDS = 60


@pytest.fixture
def service_config(service_config):
    service_config["BATCHING"] = {"ENABLED": True, "SIZE": 200, "WAIT_MS": 50}
    service_config["max_workers"] = 100
    return service_config


def sync_api_calls(emulator):
    username = emulator.users["integration"]["username"]
    return emulator.stats()["api_requests"].get(username, 0)


def create_records(sales, records):
    """Create records as the sales user, in one sObject Collections call."""
    session = sales.session
    response = requests.post(
        f"{session.instance_url}{sales.base_path}/composite/sobjects",
        json={"allOrNone": True, "records": records},
        headers={"Authorization": f"Bearer {session.access_token}"},
        verify=sales.verify,
        timeout=30,
    )
    response.raise_for_status()
    return [row["id"] for row in response.json()]


def create_many_in_salesforce(sales, names):
    records = [{"attributes": {"type": "Contact"}, "LastName": n} for n in names]
    return create_records(sales, records)


def create_accounts(sales, names):
    records = [{"attributes": {"type": "Account"}, "Name": n} for n in names]
    return create_records(sales, records)


def test_bulk_up_spends_a_call_per_batch_not_per_record(platform, sales, emulator):
    before = sync_api_calls(emulator)

    platform.contacts.create_many([{"last_name": f"Up {n}"} for n in range(RECORDS)])

    wait_for(lambda: platform.contacts.count(linked=True) == RECORDS, timeout=30)
    assert sales.count("FROM Contact WHERE Platform_Id__c != null") == RECORDS
    # One bulk task, one Collections upsert (a retry could add one).
    assert sync_api_calls(emulator) - before <= 2


def test_bulk_down_spends_a_call_per_batch_not_per_record(platform, sales, emulator):
    before = sync_api_calls(emulator)

    ids = create_many_in_salesforce(sales, [f"Down {n}" for n in range(RECORDS)])

    wait_for(
        lambda: sales.count("FROM Contact WHERE Platform_Id__c != null") == RECORDS,
        timeout=30,
    )
    assert platform.contacts.count(linked=True) == RECORDS
    assert platform.contacts.find_by_salesforce_id(ids[-1]) is not None
    # Unbatched, each record costs a read and a link write: 2 calls. In bulk,
    # a read and a link write per batch of notifications.
    assert sync_api_calls(emulator) - before <= 6


def test_rows_that_fail_retry_alone_and_the_rest_land(platform, sales, emulator):
    emulator.set_faults(lock_row_share=0.3, seed=1)  # some rows of each batch

    platform.contacts.create_many([{"last_name": f"Row {n}"} for n in range(RECORDS)])

    wait_for(lambda: platform.contacts.count(linked=True) == RECORDS, timeout=60)
    username = emulator.users["integration"]["username"]
    writes = emulator.stats()["dml_by_object"][username]["Contact"]
    assert writes["create"] == RECORDS


def test_bulk_contacts_wait_for_their_accounts_and_land_with_them(platform, sales):
    contacts = [
        {"attributes": {"type": "Contact"}, "LastName": f"Held {n}"}
        for n in range(RECORDS)
    ]
    accounts = create_accounts(sales, [f"Firm {n}" for n in range(3)])
    for n, record in enumerate(contacts):
        record["AccountId"] = accounts[n % 3]

    create_records(sales, contacts)

    wait_for(lambda: platform.contacts.count(linked=True) == RECORDS, timeout=60)
    with_account = [{"field": "account_id", "op": "is_not_null"}]
    landed = platform.contacts.list(filters=with_account, limit=1000)
    assert len(landed) == RECORDS
    platform_accounts = {
        platform.accounts.find_by_salesforce_id(account) for account in accounts
    }
    assert {contact["account_id"] for contact in landed} == platform_accounts


def test_a_row_the_platform_refuses_waits_in_dead_letters_by_name(
    platform, sales, service_config
):
    records = [
        {"attributes": {"type": "Contact"}, "LastName": f"Down {n}"}
        for n in range(RECORDS)
    ]
    records[7]["LastName"] = "   "  # Salesforce takes it; the platform cannot
    ids = create_records(sales, records)

    letters = wait_for(
        lambda: list_dead_letters(service_config["AMQP_URI"], "salesforce"),
        timeout=30,
    )
    wait_for(lambda: platform.contacts.count(linked=True) == RECORDS - 1, timeout=30)
    [letter] = letters
    assert (letter.task, letter.body["args"]) == ("sync_contact_down", [ids[7]])
    assert letter.error_type == "RecordRefused"
    assert f"Salesforce Contact {ids[7]}" in letter.error
    assert "last_name" in letter.error
