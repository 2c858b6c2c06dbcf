from unittest.mock import call

import pytest
from nameko.exceptions import RemoteError, UnknownService
from nameko.testing.services import worker_factory
from nameko_amqp_retry import Backoff

from sfsync.extensions.source import SOURCE_KEY, Source
from sfsync.salesforce.client import UpsertResult
from sfsync.salesforce.errors import RecordNotFound
from sfsync.services.salesforce_sync import (
    PlatformUnavailable,
    RecordRefused,
    RelatedRecordGone,
    RelatedRecordMissing,
    SalesforceSyncService,
    as_platform_id,
)


class FakeWorkerContext:
    def __init__(self, data=None):
        self.data = data if data is not None else {}


class RunAtOnce:
    """Stands in for the Debounce dependency: runs every call."""

    def __init__(self):
        self.keys = []

    def run(self, key, method, args, call):
        self.keys.append(key)
        call()
        return True


class NoBatching:
    enabled = False


class BatchingOn:
    enabled = True


def make_service(context_data=None):
    ctx = FakeWorkerContext(context_data)
    service = worker_factory(
        SalesforceSyncService,
        source=Source(ctx),
        debounce=RunAtOnce(),
        batch=NoBatching(),
    )
    return service, ctx


CONTACT = {"id": 7, "salesforce_id": None, "last_name": "Ng", "email": None}


def test_platform_event_from_salesforce_is_dropped():
    service, _ = make_service({SOURCE_KEY: True})

    service.on_contact_updated({"id": 7, "salesforce_id": "003X"})

    service.tasks.schedule.assert_not_called()


def test_new_platform_contact_is_upserted_and_linked_as_a_salesforce_change():
    service, ctx = make_service()
    service.contacts.get.return_value = CONTACT
    service.salesforce.upsert.return_value = UpsertResult("003NEW", created=True)
    seen_flags = []
    service.contacts.link_salesforce_id.side_effect = lambda *args: seen_flags.append(
        ctx.data.get(SOURCE_KEY)
    )

    service.sync_contact_up(7)

    assert service.debounce.keys == ["contact:up:7"]
    args = service.salesforce.upsert.call_args.args
    assert args[:3] == ("Contact", "Platform_Id__c", "7")
    assert args[3]["LastName"] == "Ng"
    service.contacts.link_salesforce_id.assert_called_once_with(7, "003NEW")
    assert seen_flags == [True]
    assert SOURCE_KEY not in ctx.data


def test_linked_contact_is_updated_by_its_salesforce_id():
    service, _ = make_service()
    service.contacts.get.return_value = {**CONTACT, "salesforce_id": "003OLD"}

    service.sync_up([7])

    assert service.salesforce.update.call_args.args[:2] == ("Contact", "003OLD")
    service.salesforce.upsert.assert_not_called()


def test_update_of_a_contact_deleted_in_salesforce_does_not_recreate_it():
    service, _ = make_service()
    service.contacts.get.return_value = {**CONTACT, "salesforce_id": "003GONE"}
    service.salesforce.update.side_effect = RecordNotFound("gone")

    service.sync_up([7])

    service.salesforce.upsert.assert_not_called()
    service.salesforce.create.assert_not_called()


def test_deleted_platform_contact_is_deleted_in_salesforce():
    service, _ = make_service()
    service.contacts.get.return_value = None
    service.contacts.deleted_salesforce_id.return_value = None
    service.salesforce.query.return_value = iter([{"Id": "003A"}])

    service.sync_up([7])

    service.salesforce.delete.assert_called_once_with("Contact", "003A")


def test_a_deleted_contact_not_yet_named_in_salesforce_is_deleted_by_its_link():
    # Created in Salesforce and brought down, then deleted on the platform
    # before its Platform_Id__c was written back: the tombstone knows it.
    service, _ = make_service()
    service.contacts.get.return_value = None
    service.contacts.deleted_salesforce_id.return_value = "003NEW"
    service.salesforce.query.return_value = iter([{"Id": "003NEW"}, {"Id": "003B"}])

    service.sync_up([7])

    service.contacts.deleted_salesforce_id.assert_called_once_with(7)
    assert service.salesforce.delete.call_args_list == [
        call("Contact", "003NEW"),
        call("Contact", "003B"),
    ]


def test_stale_debounced_calls_resume_in_bulk_with_batching_on():
    service, _ = make_service()
    service.batch = BatchingOn()
    service.debounce.stale = lambda: iter(
        [("sync_contact_up", [1]), ("sync_account_down", ["001A"]),
         ("sync_contact_up", [2]), ("other_task", [3, 4])]
    )  # fmt: skip

    service.resume_debounced()

    assert service.tasks.schedule.call_args_list == [
        call("sync_contacts_up", [1, 2]),
        call("sync_account_down", "001A"),
        call("other_task", 3, 4),
    ]


def test_salesforce_change_is_written_down_flagged_and_linked_back():
    service, ctx = make_service()
    service.salesforce.get.return_value = {
        "Id": "003A",
        "LastName": "Turner",
        "Platform_Id__c": None,
    }
    flags = []

    def upsert(*args):
        flags.append(ctx.data.get(SOURCE_KEY))
        return {"id": 12, "created": True, "deleted": False}

    service.contacts.upsert_from_salesforce.side_effect = upsert

    service.sync_contact_down("003A")

    assert flags == [True]
    upsert_args = service.contacts.upsert_from_salesforce.call_args.args
    assert upsert_args[:2] == ("003A", None)
    assert upsert_args[2]["last_name"] == "Turner"
    assert service.salesforce.update.call_args == call(
        "Contact", "003A", {"Platform_Id__c": "12"}
    )


def test_salesforce_delete_removes_the_platform_contact():
    service, _ = make_service()
    service.salesforce.get.return_value = None

    assert service.sync_down(["003A"]) == [None]

    service.contacts.delete_by_salesforce_id.assert_called_once_with("003A")


@pytest.mark.parametrize(
    "handler", ["on_contact_created", "on_contact_updated", "on_contact_deleted"]
)
def test_platform_event_schedules_an_up_task(handler):
    service, _ = make_service()

    getattr(service, handler)({"id": 7, "salesforce_id": None})

    service.tasks.schedule.assert_called_once_with("sync_contact_up", 7)


def test_notifications_schedule_a_down_task_each_with_batching_off():
    service, _ = make_service()
    notifications = [{"sobject": {"Id": i}} for i in ("003A", "003B", "003A")]

    service.on_salesforce_contacts("Contact", None, notifications)

    assert service.tasks.schedule.call_args_list == [
        call("sync_contact_down", "003A"),
        call("sync_contact_down", "003B"),
    ]


def test_unreachable_platform_becomes_a_retryable_error():
    service, _ = make_service()
    service.contacts.get.side_effect = UnknownService("contacts")

    with pytest.raises(PlatformUnavailable):
        service.sync_up([7])


def test_a_platform_refusal_is_not_retried():
    service, _ = make_service()
    service.salesforce.get.return_value = {"Id": "003A", "LastName": "Ng"}
    service.contacts.upsert_from_salesforce.side_effect = RemoteError(
        "InvalidContact", "Salesforce contact 003A is invalid"
    )

    with pytest.raises(RemoteError):
        service.sync_down(["003A"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), (12, 12), ("02", None), ("-3", None), ("0", None), (None, None),
     ("", None), ("99999999999999999999", None), ("1e3", None), (" 5", None)],
)  # fmt: skip
def test_only_platform_ids_as_the_sync_writes_them_are_taken(value, expected):
    assert as_platform_id(value) == expected


def test_a_contact_waits_for_its_account_to_reach_salesforce():
    service, _ = make_service()
    service.contacts.get.return_value = {**CONTACT, "account_id": 3}
    service.accounts.get.return_value = {"id": 3, "salesforce_id": None}

    with pytest.raises(Backoff) as retried:
        service.sync_contact_up(7)

    assert isinstance(retried.value.__cause__, RelatedRecordMissing)
    assert "waits for account 3" in str(retried.value.__cause__)
    service.salesforce.upsert.assert_not_called()


def test_a_contact_goes_up_with_its_account():
    service, _ = make_service()
    service.contacts.get.return_value = {**CONTACT, "account_id": 3}
    service.accounts.get.return_value = {"id": 3, "salesforce_id": "001ACC"}
    service.salesforce.upsert.return_value = UpsertResult("003NEW", created=True)

    service.sync_contact_up(7)

    assert service.salesforce.upsert.call_args.args[3]["AccountId"] == "001ACC"


def test_a_contact_waits_for_its_account_to_reach_the_platform():
    service, _ = make_service()
    service.salesforce.get.return_value = {
        "Id": "003A", "LastName": "Ng", "AccountId": "001X", "Platform_Id__c": None
    }  # fmt: skip
    service.accounts.find_by_salesforce_id.return_value = None

    with pytest.raises(Backoff) as retried:
        service.sync_contact_down("003A")

    assert "waits for Account 001X" in str(retried.value.__cause__)
    service.contacts.upsert_from_salesforce.assert_not_called()


def test_a_change_that_crossed_a_platform_delete_deletes_in_salesforce():
    service, _ = make_service()
    service.salesforce.get.return_value = {"Id": "003A", "LastName": "Ng"}
    service.contacts.upsert_from_salesforce.return_value = {
        "id": None, "created": False, "deleted": True
    }  # fmt: skip

    assert service.sync_down(["003A"]) == [None]

    service.salesforce.delete.assert_called_once_with("Contact", "003A")


def test_account_events_schedule_account_tasks():
    service, _ = make_service()

    service.on_account_updated({"id": 3, "salesforce_id": None})
    service.on_salesforce_accounts("Account", None, [{"sobject": {"Id": "001A"}}])

    assert service.tasks.schedule.call_args_list == [
        call("sync_account_up", 3),
        call("sync_account_down", "001A"),
    ]


def test_a_contact_naming_an_account_that_does_not_exist_is_not_retried():
    service, _ = make_service()
    service.contacts.get.return_value = {**CONTACT, "account_id": 404}
    service.accounts.get.return_value = None

    with pytest.raises(RelatedRecordGone, match="account 404, which does not exist"):
        service.sync_contact_up(7)


def test_a_salesforce_record_the_platform_cannot_take_is_refused_by_name():
    service, _ = make_service()
    service.salesforce.get.return_value = {"Id": "003BAD", "LastName": "   "}

    with pytest.raises(RecordRefused) as refused:
        service.sync_contact_down("003BAD")

    assert "Salesforce Contact 003BAD" in str(refused.value)
    assert "last_name" in str(refused.value)
    service.contacts.upsert_from_salesforce.assert_not_called()
