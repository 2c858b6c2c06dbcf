"""Both directions of the sync and both loop breakers, on real parts.

RabbitMQ and Redis are the machine's; the emulator runs as its own process;
the contacts and salesforce services run in-process as nameko containers.
"""

import time

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.services.contacts import ContactsService
from sfsync.services.salesforce_sync import SalesforceSyncService
from sfsync.testing.fixtures import wait_for, wait_until_streaming

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 1.5  # time for any echo to show up before counting writes
CONTACT_FIELDS = "Id, LastName, FirstName, Email, Platform_Id__c"


@pytest.fixture
def services(service_config, redis_uri, runner_factory):
    runner = runner_factory(service_config, ContactsService, SalesforceSyncService)
    runner.start()
    wait_until_streaming(redis_uri)
    return runner


@pytest.fixture
def contacts(services, service_config):
    with ServiceRpcProxy("contacts", service_config) as proxy:
        yield proxy


def integration_writes(emulator):
    username = emulator.users["integration"]["username"]
    by_object = emulator.stats()["dml_by_object"].get(username, {})
    return dict(by_object.get("Contact", {}))


def writes_since(emulator, before):
    after = integration_writes(emulator)
    return {
        op: after.get(op, 0) - before.get(op, 0)
        for op in ("create", "update", "delete")
    }


def salesforce_contact_for(sales, contact_id):
    found = list(
        sales.query(
            f"SELECT {CONTACT_FIELDS} FROM Contact "
            f"WHERE Platform_Id__c = '{contact_id}'"
        )
    )
    return found[0] if found else None


def test_platform_contact_goes_up_and_is_linked(contacts, sales):
    created = contacts.create({"last_name": "Turner", "email": "sara@turner.uk"})

    record = wait_for(
        lambda: salesforce_contact_for(sales, created["id"]), what="the upsert"
    )

    assert record["LastName"] == "Turner"
    assert record["Email"] == "sara@turner.uk"
    linked = wait_for(
        lambda: contacts.get(created["id"])["salesforce_id"], what="the link"
    )
    assert linked == record["Id"]


def test_platform_update_and_delete_go_up(contacts, sales):
    created = contacts.create({"last_name": "Before"})
    wait_for(lambda: contacts.get(created["id"])["salesforce_id"], what="the link")
    salesforce_id = contacts.get(created["id"])["salesforce_id"]

    contacts.update(created["id"], {"last_name": "After", "first_name": "Ada"})
    wait_for(
        lambda: sales.get("Contact", salesforce_id)["LastName"] == "After",
        what="the update",
    )
    contacts.delete(created["id"])

    wait_for(lambda: sales.get("Contact", salesforce_id) is None, what="the delete")


def test_salesforce_contact_comes_down_and_is_linked(contacts, sales):
    salesforce_id = sales.create("Contact", {"LastName": "Хохлов", "FirstName": "Ян"})

    contact = wait_for(lambda: first_linked(contacts, salesforce_id), what="the copy")

    assert contact["last_name"] == "Хохлов"
    assert contact["first_name"] == "Ян"
    wait_for(
        lambda: (
            sales.get("Contact", salesforce_id)["Platform_Id__c"] == str(contact["id"])
        ),
        what="the link back",
    )


def test_salesforce_update_and_delete_come_down(contacts, sales):
    salesforce_id = sales.create("Contact", {"LastName": "Before"})
    contact = wait_for(lambda: first_linked(contacts, salesforce_id), what="the copy")

    sales.update("Contact", salesforce_id, {"LastName": "After", "Phone": "+1 555"})
    wait_for(
        lambda: contacts.get(contact["id"])["phone"] == "+1 555", what="the update"
    )
    sales.delete("Contact", salesforce_id)

    wait_for(lambda: contacts.get(contact["id"]) is None, what="the delete")


def test_sync_writes_to_salesforce_do_not_come_back_down(contacts, sales, emulator):
    """Loop breaker 1: the PushTopic leaves out the integration user's writes.

    The sync's link write (Platform_Id__c) on a record that came down would
    otherwise notify again and write the platform a second time.
    """
    before = integration_writes(emulator)
    salesforce_id = sales.create("Contact", {"LastName": "Once"})
    contact = wait_for(lambda: first_linked(contacts, salesforce_id), what="the copy")
    wait_for(
        lambda: sales.get("Contact", salesforce_id)["Platform_Id__c"],
        what="the link back",
    )
    time.sleep(SETTLE_SECONDS)

    assert contacts.change_counts() == {"salesforce": {"created": 1}}
    assert writes_since(emulator, before) == {"create": 0, "update": 1, "delete": 0}
    assert contacts.get(contact["id"])["last_name"] == "Once"


def test_sync_writes_to_the_platform_do_not_go_back_up(contacts, sales, emulator):
    """Loop breaker 2: platform events caused by the sync carry the flag.

    The sync's link write (salesforce_id) on a contact that went up would
    otherwise be sent up again as an update.
    """
    before = integration_writes(emulator)
    created = contacts.create({"last_name": "Once"})
    wait_for(lambda: contacts.get(created["id"])["salesforce_id"], what="the link")
    time.sleep(SETTLE_SECONDS)

    assert writes_since(emulator, before) == {"create": 1, "update": 0, "delete": 0}
    assert contacts.change_counts() == {
        "platform": {"created": 1},
        "salesforce": {"updated": 1},
    }


def test_a_change_made_while_the_sync_was_down_arrives_after_restart(
    runner_factory, service_config, redis_uri, sales
):
    runner = runner_factory(service_config, ContactsService, SalesforceSyncService)
    runner.start()
    wait_until_streaming(redis_uri)
    first = sales.create("Contact", {"LastName": "Before"})
    with ServiceRpcProxy("contacts", service_config) as contacts:
        wait_for(lambda: first_linked(contacts, first), what="the first copy")
    runner.stop()

    second = sales.create("Contact", {"LastName": "While down"})
    runner = runner_factory(service_config, ContactsService, SalesforceSyncService)
    runner.start()

    with ServiceRpcProxy("contacts", service_config) as contacts:
        contact = wait_for(lambda: first_linked(contacts, second), what="the replay")
        assert contact["last_name"] == "While down"
        assert contacts.count() == 2


def first_linked(contacts, salesforce_id):
    for contact in contacts.list(0, 1000):
        if contact["salesforce_id"] == salesforce_id:
            return contact
    return None


def test_sync_rides_out_a_restart_of_salesforce(contacts, sales, emulator):
    before = sales.create("Contact", {"LastName": "Before restart"})
    wait_for(lambda: first_linked(contacts, before), what="the first copy")

    emulator.restart()
    after = sales.create("Contact", {"LastName": "After restart"})

    contact = wait_for(
        lambda: first_linked(contacts, after), timeout=30, what="the copy after restart"
    )
    assert contact["last_name"] == "After restart"
    assert sales.get("Contact", before)["LastName"] == "Before restart"
    assert contacts.count() == 2
