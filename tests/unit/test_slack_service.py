"""The slack service's /contact command with its RPC dependencies mocked."""

import pytest
from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.testing.services import worker_factory

from sfsync.extensions.slack import SlashCommand
from sfsync.services.slack_commands import (
    CommandError,
    SlackCommandsService,
    parse_create,
)

CONTACT = {
    "id": 7,
    "salesforce_id": "003000000000001AAA",
    "last_name": "Turner",
    "first_name": "Sara",
    "email": "sara@turner.uk",
}


def service_without_sync_state():
    service = worker_factory(SlackCommandsService)
    service.salesforce.sync_state.side_effect = MethodNotFound("sync_state")
    return service


def run(service, text):
    return service.contact(SlashCommand(command="/contact", text=text, channel_id="C1"))


@pytest.mark.parametrize(
    ("argument", "fields"),
    [
        ("Turner", {"last_name": "Turner"}),
        ("Turner, Sara", {"last_name": "Turner", "first_name": "Sara"}),
        (
            " Turner ,Sara, sara@turner.uk ",
            {"last_name": "Turner", "first_name": "Sara", "email": "sara@turner.uk"},
        ),
        (
            "Turner, , sara@turner.uk",
            {"last_name": "Turner", "email": "sara@turner.uk"},
        ),
    ],
)
def test_create_argument_becomes_contact_fields(argument, fields):
    assert parse_create(argument) == fields


@pytest.mark.parametrize("argument", ["", " , Sara", "a, b, c, d"])
def test_create_argument_without_last_name_or_too_long_is_refused(argument):
    with pytest.raises(CommandError):
        parse_create(argument)


def test_unknown_subcommand_replies_with_usage():
    service = worker_factory(SlackCommandsService)

    reply = run(service, "frobnicate 1")

    assert reply.text.startswith("Usage:")


def test_create_replies_with_the_new_id():
    service = worker_factory(SlackCommandsService)
    service.contacts.create.return_value = CONTACT

    reply = run(service, "create Turner, Sara, sara@turner.uk")

    service.contacts.create.assert_called_once_with(
        {"last_name": "Turner", "first_name": "Sara", "email": "sara@turner.uk"}
    )
    assert "Created contact 7 (Turner, Sara)" in reply.text


def test_create_refused_by_contacts_is_a_command_error():
    service = worker_factory(SlackCommandsService)
    service.contacts.create.side_effect = RemoteError(
        "InvalidContact", "the new contact is invalid: email too long"
    )

    with pytest.raises(CommandError, match="email too long"):
        run(service, "create Turner, Sara, x@y")


def test_show_by_platform_id_reports_link_and_no_failures():
    service = service_without_sync_state()
    service.contacts.get.return_value = CONTACT
    service.salesforce.failures.return_value = []

    reply = run(service, "show 7")

    service.contacts.get.assert_called_once_with(7)
    assert "`003000000000001AAA` (linked)" in reply.text
    assert "no failed task" in reply.text


def test_show_by_salesforce_id_finds_the_linked_contact():
    service = service_without_sync_state()
    service.contacts.list.return_value = [
        {**CONTACT, "id": 6, "salesforce_id": None},
        CONTACT,
    ]
    service.salesforce.failures.return_value = []

    reply = run(service, "show 003000000000001AAA")

    assert reply.text.startswith("*Contact 7*")


def test_show_reports_a_kept_failure_for_the_contact():
    service = service_without_sync_state()
    service.contacts.get.return_value = CONTACT
    service.salesforce.failures.return_value = [
        {"direction": "up", "ids": [7], "error": "InvalidRequest: bad", "at": "T1"},
        {"direction": "up", "ids": [8], "error": "other", "at": "T2"},
    ]

    reply = run(service, "show 7")

    assert "1 failed task(s) kept; last up at T1: InvalidRequest: bad" in reply.text


def test_show_reports_the_sync_state_when_the_sync_offers_it():
    service = worker_factory(SlackCommandsService)
    service.contacts.get.return_value = CONTACT
    service.salesforce.sync_state.return_value = {"pending": 0, "last_up": "T1"}

    reply = run(service, "show 7")

    service.salesforce.sync_state.assert_called_once_with(7)
    assert reply.text.endswith("Sync: last_up: T1, pending: 0")


def test_show_when_the_sync_has_neither_state_nor_failures():
    service = service_without_sync_state()
    service.contacts.get.return_value = CONTACT
    service.salesforce.failures.side_effect = MethodNotFound("failures")

    reply = run(service, "show 7")

    assert reply.text.endswith("Sync: the sync service reports no per-record state")


def test_show_without_the_sync_service_says_so():
    service = worker_factory(SlackCommandsService)
    service.contacts.get.return_value = CONTACT
    service.salesforce.sync_state.side_effect = UnknownService("salesforce")

    reply = run(service, "show 7")

    assert "not reachable" in reply.text


def test_show_of_a_missing_contact():
    service = worker_factory(SlackCommandsService)
    service.contacts.get.return_value = None

    reply = run(service, "show 99")

    assert reply.text == "There is no platform contact 99."


@pytest.mark.parametrize("text", ["show", "show x1", "resync -3", "resync"])
def test_bad_id_is_a_command_error(text):
    service = worker_factory(SlackCommandsService)

    with pytest.raises(CommandError):
        run(service, text)


def test_resync_answers_at_once_and_queues_the_work():
    service = worker_factory(SlackCommandsService)

    reply = run(service, "resync 7")

    service.tasks.resync.call_async.assert_called_once_with(7, "C1")
    service.salesforce.sync_up.assert_not_called()
    assert "started" in reply.text


def test_resync_rpc_syncs_up_and_posts_done():
    service = worker_factory(SlackCommandsService)
    service.salesforce.sync_up.return_value = ["003000000000001AAA"]

    result = service.resync(7, "C1")

    assert result == "003000000000001AAA"
    service.notifier.post.assert_called_once_with(
        "Resync done: contact 7, Salesforce `003000000000001AAA`.", channel="C1"
    )


def test_resync_rpc_posts_the_failure_instead_of_raising():
    service = worker_factory(SlackCommandsService)
    service.salesforce.sync_up.side_effect = RemoteError("LockTimeout", "held")

    result = service.resync(7, "C1")

    assert result is None
    text = service.notifier.post.call_args.args[0]
    assert text.startswith("Resync of contact 7 failed: RemoteError")
