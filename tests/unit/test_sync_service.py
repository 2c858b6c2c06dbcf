import json
from unittest.mock import call

from nameko.exceptions import UnknownService
from nameko.testing.services import worker_factory

from sfsync.extensions.source import SOURCE_KEY, Source
from sfsync.salesforce.client import UpsertResult
from sfsync.salesforce.errors import RecordNotFound, ServerUnavailable
from sfsync.services.salesforce_sync import SalesforceSyncService


class FakeWorkerContext:
    def __init__(self, data=None):
        self.data = data if data is not None else {}


class NoLock:
    def hold(self, name):
        from contextlib import nullcontext

        return nullcontext()


def make_service(context_data=None):
    ctx = FakeWorkerContext(context_data)
    service = worker_factory(SalesforceSyncService, source=Source(ctx), locks=NoLock())
    return service, ctx


CONTACT = {"id": 7, "salesforce_id": None, "last_name": "Ng", "email": None}


def test_platform_event_from_salesforce_is_dropped():
    service, _ = make_service({SOURCE_KEY: True})

    service.on_contact_updated({"id": 7, "salesforce_id": "003X"})

    service.contacts.get.assert_not_called()
    service.salesforce.update.assert_not_called()


def test_new_platform_contact_is_upserted_and_linked_as_a_salesforce_change():
    service, ctx = make_service()
    service.contacts.get.return_value = CONTACT
    service.salesforce.upsert.return_value = UpsertResult("003NEW", created=True)
    seen_flags = []
    service.contacts.link_salesforce_id.side_effect = lambda *args: seen_flags.append(
        ctx.data.get(SOURCE_KEY)
    )

    service.on_contact_created({"id": 7, "salesforce_id": None})

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
    service.salesforce.query.return_value = iter([{"Id": "003A"}])

    service.on_contact_deleted({"id": 7, "salesforce_id": "003A"})

    service.salesforce.delete.assert_called_once_with("Contact", "003A")


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
        return {"id": 12, "created": True}

    service.contacts.upsert_from_salesforce.side_effect = upsert

    service.on_salesforce_contact("Contact", None, {"sobject": {"Id": "003A"}})

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


def test_transient_failure_is_tried_again(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    service, _ = make_service()
    service.contacts.get.side_effect = [UnknownService("contacts"), CONTACT]
    service.salesforce.upsert.return_value = UpsertResult("003NEW", created=True)

    service.on_contact_created({"id": 7, "salesforce_id": None})

    assert service.contacts.get.call_count == 2
    service.redis.rpush.assert_not_called()


def test_permanent_failure_is_kept_for_an_operator_after_one_try(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    service, _ = make_service()
    service.salesforce.get.return_value = {"Id": "003A", "LastName": "x" * 81}

    service.on_salesforce_contact("Contact", None, {"sobject": {"Id": "003A"}})

    key, entry = service.redis.rpush.call_args.args
    kept = json.loads(entry)
    assert key == "sfsync:failed"
    assert kept["direction"] == "down"
    assert kept["ids"] == ["003A"]
    assert kept["tries"] == 1
    assert "last_name" in kept["error"]


def test_transient_failure_that_never_clears_is_kept_after_every_try(monkeypatch):
    sleeps = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    service, _ = make_service()
    service.contacts.get.side_effect = ServerUnavailable("Salesforce is down")

    service.on_contact_updated({"id": 7, "salesforce_id": None})

    assert sleeps == [0.5, 1, 2, 4, 8, 16]
    assert json.loads(service.redis.rpush.call_args.args[1])["tries"] == 7
