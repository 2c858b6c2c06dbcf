"""Change Data Capture as the way down, chosen by config."""

import time

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.services.contacts import ContactsService
from sfsync.services.salesforce_sync import SalesforceSyncService
from sfsync.testing.fixtures import wait_for, wait_until_streaming

pytestmark = pytest.mark.integration


@pytest.fixture
def cdc_config(service_config):
    service_config["SALESFORCE"]["STREAMING"] = "cdc"
    return service_config


@pytest.fixture
def contacts(cdc_config, redis_uri, runner_factory):
    runner = runner_factory(cdc_config, ContactsService, SalesforceSyncService)
    runner.start()
    wait_until_streaming(redis_uri)
    with ServiceRpcProxy("contacts", cdc_config) as proxy:
        yield proxy


def linked(contacts, salesforce_id):
    return next(
        (c for c in contacts.list(0, 100) if c["salesforce_id"] == salesforce_id),
        None,
    )


def test_changes_come_down_through_change_events(contacts, sales):
    salesforce_id = sales.create("Contact", {"LastName": "Event"})
    contact = wait_for(lambda: linked(contacts, salesforce_id), what="the copy")

    sales.update("Contact", salesforce_id, {"Title": "Changed"})
    wait_for(lambda: contacts.get(contact["id"])["title"] == "Changed", what="update")
    sales.delete("Contact", salesforce_id)

    wait_for(lambda: contacts.get(contact["id"]) is None, what="the delete")


def test_the_sync_own_change_events_are_dropped(contacts, sales, emulator):
    salesforce_id = sales.create("Contact", {"LastName": "Once"})
    wait_for(lambda: linked(contacts, salesforce_id), what="the copy")
    wait_for(
        lambda: sales.get("Contact", salesforce_id)["Platform_Id__c"],
        what="the link back",
    )
    time.sleep(1.5)

    assert contacts.change_counts() == {"salesforce": {"created": 1}}


def test_no_pushtopic_is_declared_in_cdc_mode(contacts, sales):
    assert list(sales.query("SELECT Id FROM PushTopic")) == []
