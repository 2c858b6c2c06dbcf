"""Three sync instances: every change has exactly one effect."""

import time

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.services.contacts import ContactsService
from sfsync.services.salesforce_sync import SalesforceSyncService
from sfsync.testing.fixtures import wait_for, wait_until_streaming

pytestmark = pytest.mark.integration

INSTANCES = 3
RECORDS = 15


@pytest.fixture
def three_instances(service_config, redis_uri, container_factory):
    container_factory(ContactsService, service_config).start()
    for _ in range(INSTANCES):
        container_factory(SalesforceSyncService, service_config).start()
    wait_until_streaming(redis_uri, instances=INSTANCES)


def contact_writes(emulator):
    username = emulator.users["integration"]["username"]
    by_object = emulator.stats()["dml_by_object"].get(username, {})
    return by_object.get("Contact", {"create": 0, "update": 0, "delete": 0})


def test_each_salesforce_change_lands_once(
    three_instances, service_config, sales, emulator
):
    ids = [sales.create("Contact", {"LastName": f"Once {n}"}) for n in range(RECORDS)]

    with ServiceRpcProxy("contacts", service_config) as contacts:
        wait_for(lambda: contacts.count(linked=True) == RECORDS, what="every copy")
        time.sleep(1.5)  # room for a second copy, if any instance made one

        assert contacts.count() == RECORDS
        assert contacts.change_counts() == {"salesforce": {"created": RECORDS}}
    assert contact_writes(emulator)["update"] == RECORDS  # one link write each
    assert len(set(ids)) == RECORDS


def test_each_platform_change_goes_up_once(
    three_instances, service_config, sales, emulator
):
    with ServiceRpcProxy("contacts", service_config) as contacts:
        for n in range(RECORDS):
            contacts.create({"last_name": f"Up {n}"})

        wait_for(lambda: contacts.count(linked=True) == RECORDS, what="every link")
        time.sleep(1.5)

    assert sales.count("FROM Contact") == RECORDS
    assert contact_writes(emulator) == {"create": RECORDS, "update": 0, "delete": 0}
