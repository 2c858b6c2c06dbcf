"""The /contact slash command over HTTP, on real RabbitMQ, Redis and emulator.

The contacts, salesforce and slack services run as nameko containers; Slack
is played by the local stand-in: commands are signed and posted as Slack
posts them, and notices land in the stand-in's recorded chat.postMessage
calls.
"""

import logging
import time

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.utils import get_container

from sfsync.services.contacts import ContactsService
from sfsync.services.salesforce_sync import SalesforceSyncService
from sfsync.services.slack_commands import SlackCommandsService
from sfsync.testing.fixtures import wait_for, wait_until_streaming
from sfsync.testing.slack import (
    TEST_SIGNING_SECRET,
    SlackStandIn,
    command_url,
    post_slash_command,
    slack_section,
    web_server_url,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def stand_in():
    with SlackStandIn() as running:
        yield running


@pytest.fixture
def config(service_config, stand_in):
    return {
        **service_config,
        "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "SLACK": slack_section(stand_in),
    }


@pytest.fixture
def url(runner_factory, config, redis_uri):
    runner = runner_factory(
        config, ContactsService, SalesforceSyncService, SlackCommandsService
    )
    runner.start()
    wait_until_streaming(redis_uri)
    container = get_container(runner, SlackCommandsService)
    return command_url(web_server_url(container), "/contact")


@pytest.fixture
def contacts(url, config):
    with ServiceRpcProxy("contacts", config) as proxy:
        yield proxy


def contact_command(url, text, **options):
    response = post_slash_command(url, TEST_SIGNING_SECRET, "/contact", text, **options)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["response_type"] == "ephemeral"
    return reply["text"]


def linked_contact(contacts, **fields):
    created = contacts.create({"last_name": "Turner", **fields})
    wait_for(lambda: contacts.get(created["id"])["salesforce_id"], what="the link")
    return contacts.get(created["id"])


def test_create_makes_a_platform_contact_and_replies_with_its_id(url, contacts):
    text = contact_command(url, "create Turner, Sara, sara@turner.uk")

    assert text.startswith("Created contact ")
    contact_id = int(text.split()[2])
    contact = contacts.get(contact_id)
    assert (contact["last_name"], contact["first_name"], contact["email"]) == (
        "Turner",
        "Sara",
        "sara@turner.uk",
    )


def test_create_refused_by_contacts_replies_why(url, contacts):
    text = contact_command(url, "create Turner, Sara, " + "x" * 80 + "@long.example")

    assert text.startswith("/contact failed: the new contact is invalid")
    assert contacts.count() == 0


def test_show_by_platform_id_reports_the_salesforce_link(url, contacts):
    contact = linked_contact(contacts)

    text = contact_command(url, f"show {contact['id']}")

    assert f"*Contact {contact['id']}*: Turner" in text
    assert f"`{contact['salesforce_id']}` (linked)" in text
    assert "\nSync: " in text


def test_show_by_salesforce_id_finds_the_contact(url, contacts):
    contact = linked_contact(contacts)

    text = contact_command(url, f"show {contact['salesforce_id']}")

    assert text.startswith(f"*Contact {contact['id']}*")


def test_resync_replies_at_once_then_posts_done(url, contacts, stand_in):
    contact = linked_contact(contacts)

    text = contact_command(url, f"resync {contact['id']}", channel_id="C0SALES")

    assert text.startswith(f"Resync of contact {contact['id']} started")
    [notice] = wait_for(stand_in.messages, what="the resync notice")
    assert notice == {
        "channel": "C0SALES",
        "text": (
            f"Resync done: contact {contact['id']}, "
            f"Salesforce `{contact['salesforce_id']}`."
        ),
    }


def test_resync_notice_refused_by_slack_does_not_break_the_resync(
    url, contacts, stand_in, emulator
):
    contact = linked_contact(contacts)
    stand_in.fail_next("channel_not_found")
    updates_before = integration_updates(emulator)

    contact_command(url, f"resync {contact['id']}")

    wait_for(stand_in.messages, what="the notice attempt")
    assert integration_updates(emulator) == updates_before + 1


def integration_updates(emulator):
    username = emulator.users["integration"]["username"]
    by_object = emulator.stats()["dml_by_object"].get(username, {})
    return by_object.get("Contact", {}).get("update", 0)


@pytest.mark.parametrize(
    "options",
    [
        {"signature": "v0=" + "0" * 64},
        {"timestamp": int(time.time()) - 6 * 60},
        {"headers": {}},
    ],
    ids=["bad signature", "old timestamp", "no signature headers"],
)
def test_unsigned_or_stale_command_is_refused_before_any_work(
    url, contacts, options, caplog
):
    with caplog.at_level(logging.WARNING, "sfsync.extensions.slack"):
        response = post_slash_command(
            url, TEST_SIGNING_SECRET, "/contact", "create Mallory", **options
        )

    assert response.status_code == 401
    assert "/contact request from 127.0.0.1 refused" in caplog.text
    assert TEST_SIGNING_SECRET not in caplog.text
    assert contacts.count() == 0


def test_command_signed_with_another_secret_is_refused(url, contacts):
    response = post_slash_command(url, "not the secret", "/contact", "create Mallory")

    assert response.status_code == 401
    assert contacts.count() == 0


def test_other_command_at_this_url_is_refused(url):
    response = post_slash_command(url, TEST_SIGNING_SECRET, "/deal", "show 1")

    assert response.status_code == 400
