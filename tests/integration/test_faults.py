"""The sync rides out every fault the local Salesforce can inject:
no change lost, none applied twice."""

import time

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.salesforce.errors import SalesforceError
from sfsync.testing.fixtures import wait_for, wait_until_streaming

pytestmark = pytest.mark.integration

CHANGES = 6


def contact_writes(emulator):
    username = emulator.users["integration"]["username"]
    by_object = emulator.stats()["dml_by_object"].get(username, {})
    return by_object.get("Contact", {"create": 0, "update": 0, "delete": 0})


def create_in_salesforce(sales, name):
    """As a person would: try again when Salesforce refuses for a moment."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return sales.create("Contact", {"LastName": name})
        except SalesforceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def changes_both_ways(platform, sales):
    ups = [platform.contacts.create({"last_name": f"Up {n}"}) for n in range(CHANGES)]
    downs = [create_in_salesforce(sales, f"Down {n}") for n in range(CHANGES)]
    return [c["id"] for c in ups], downs


def linked_in_salesforce(sales):
    try:
        return sales.count("FROM Contact WHERE Platform_Id__c != null")
    except SalesforceError:  # the fault hits the test's own reads too
        return None


def assert_each_landed_once(platform, sales, emulator, ups, downs, timeout=60):
    wait_for(
        lambda: (
            platform.contacts.count(linked=True) == 2 * CHANGES
            and linked_in_salesforce(sales) == 2 * CHANGES
        ),
        timeout=timeout,
        what="every change to land on both sides",
    )
    time.sleep(1.5)  # room for a change applied twice, if any
    assert platform.contacts.count() == 2 * CHANGES
    assert platform.contacts.change_counts() == {
        "platform": {"created": CHANGES},
        "salesforce": {"created": CHANGES, "updated": CHANGES},  # + links
    }
    writes = contact_writes(emulator)
    assert writes["create"] == CHANGES
    assert writes["update"] == CHANGES  # the Platform_Id__c links
    linked = {platform.contacts.find_by_salesforce_id(sf_id) for sf_id in downs}
    assert None not in linked
    assert all(platform.contacts.get(up)["salesforce_id"] for up in ups)


def test_an_expired_session_is_replaced(platform, sales, emulator):
    emulator.revoke_sessions(emulator.users["integration"]["username"])

    ups, downs = changes_both_ways(platform, sales)

    assert_each_landed_once(platform, sales, emulator, ups, downs)


def test_a_forgotten_streaming_client_handshakes_again(platform, sales, emulator):
    emulator.forget_clients()

    ups, downs = changes_both_ways(platform, sales)

    assert_each_landed_once(platform, sales, emulator, ups, downs)


def test_writes_wait_out_the_daily_api_limit(platform, sales, emulator):
    emulator.set_faults(api_limit_reached=True)
    ups = [platform.contacts.create({"last_name": f"Up {n}"}) for n in range(CHANGES)]
    time.sleep(1.0)
    assert contact_writes(emulator)["create"] == 0

    emulator.clear_faults()
    downs = [create_in_salesforce(sales, f"Down {n}") for n in range(CHANGES)]

    assert_each_landed_once(platform, sales, emulator, [c["id"] for c in ups], downs)


@pytest.mark.parametrize(
    "faults",
    [
        {"lock_row_share": 0.4, "seed": 3},
        {"unavailable_share": 0.3, "seed": 5},
        {"latency_ms": 150},
        {"duplicate_share": 1.0, "seed": 7},
    ],
    ids=["unable-to-lock-row", "503", "latency", "duplicate-delivery"],
)
def test_sync_rides_out(faults, platform, sales, emulator):
    emulator.set_faults(**faults)

    ups, downs = changes_both_ways(platform, sales)

    assert_each_landed_once(platform, sales, emulator, ups, downs)


def test_a_gap_past_retention_is_caught_up_by_query(
    start_sync_services, service_config, redis_uri, sales, emulator
):
    runner = start_sync_services()
    wait_until_streaming(redis_uri)
    first = create_in_salesforce(sales, "Before")
    with ClusterRpcProxy(service_config) as platform:
        wait_for(lambda: platform.contacts.find_by_salesforce_id(first), what="first")
    runner.stop()

    missed = [create_in_salesforce(sales, f"While away {n}") for n in range(3)]
    emulator.advance_clock(25 * 3600)  # the stream keeps 24 h
    start_sync_services()

    with ClusterRpcProxy(service_config) as platform:
        for salesforce_id in missed:
            wait_for(
                lambda sf=salesforce_id: platform.contacts.find_by_salesforce_id(sf),
                timeout=30,
                what="the catch-up",
            )
        assert platform.contacts.count() == 4
