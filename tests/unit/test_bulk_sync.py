"""Bulk tasks of the sync service (batching on), with their dependencies
mocked: what goes out in one call, and what is handed on to one-record tasks."""

from contextlib import contextmanager
from unittest.mock import call

import pytest
from nameko.testing.services import worker_factory
from nameko_amqp_retry import Backoff

from sfsync.extensions.source import SOURCE_KEY, Source
from sfsync.salesforce.client import UpsertResult
from sfsync.salesforce.errors import (
    RecordLocked,
    RecordNotFound,
    ServerUnavailable,
)
from sfsync.services.salesforce_sync import BULK_SIZE, SalesforceSyncService


class FakeWorkerContext:
    def __init__(self, data=None):
        self.data = data if data is not None else {}


class RunAtOnce:
    """Stands in for the Debounce dependency: runs every call, in bulk."""

    def __init__(self):
        self.runs = []

    def run_many(self, method, calls, call):
        self.runs.append((method, sorted(calls)))
        call(list(calls.values()))


class Locks:
    """Stands in for RecordLock: every name is free but ``busy`` ones."""

    def __init__(self, busy=()):
        self.busy = set(busy)

    @contextmanager
    def hold_free(self, names):
        yield [name for name in names if name not in self.busy]


class DirectBatch:
    """Stands in for Batches: each submit_many is one flush."""

    enabled = True

    def __init__(self):
        self.sent = []

    def submit_many(self, name, items, flush):
        self.sent.append((name, len(items)))
        try:
            return flush(items)
        except Exception as exc:
            return [exc] * len(items)


def make_service(context_data=None, busy=()):
    ctx = FakeWorkerContext(context_data)
    service = worker_factory(
        SalesforceSyncService,
        source=Source(ctx),
        debounce=RunAtOnce(),
        locks=Locks(busy),
        batch=DirectBatch(),
    )
    return service, ctx


def contact(record_id, salesforce_id=None, account_id=None):
    return {
        "id": record_id,
        "salesforce_id": salesforce_id,
        "account_id": account_id,
        "last_name": f"Name {record_id}",
    }


def scheduled(service):
    return service.tasks.schedule.call_args_list


# -- triggers -------------------------------------------------------------------


def test_a_platform_batch_becomes_one_task_per_bulk_size():
    service, _ = make_service()
    records = [{"id": n, "salesforce_id": None} for n in range(BULK_SIZE + 5)]

    service.on_contact_batch({"action": "created", "records": records})

    assert scheduled(service) == [
        call("sync_contacts_up", list(range(BULK_SIZE))),
        call("sync_contacts_up", list(range(BULK_SIZE, BULK_SIZE + 5))),
    ]


def test_a_platform_batch_made_by_the_sync_is_dropped():
    service, _ = make_service({SOURCE_KEY: True})

    service.on_contact_batch({"action": "updated", "records": [{"id": 1}, {"id": 2}]})

    service.tasks.schedule.assert_not_called()


def test_change_events_become_one_down_task_of_their_record_ids():
    service, _ = make_service()
    changes = [
        {"change_type": "CREATE", "record_ids": ["003A"], "payload": {}},
        {"change_type": "UPDATE", "record_ids": ["003B", "003C"], "payload": {}},
    ]

    service.on_contact_change_events("Contact", changes)

    assert scheduled(service) == [call("sync_contacts_down", ["003A", "003B", "003C"])]


def test_a_single_notification_gets_a_one_record_task():
    service, _ = make_service()

    service.on_salesforce_accounts("Account", None, [{"sobject": {"Id": "001A"}}])

    assert scheduled(service) == [call("sync_account_down", "001A")]


# -- up ---------------------------------------------------------------------------


def test_bulk_up_upserts_new_updates_linked_and_links_in_one_call_each():
    service, ctx = make_service()
    service.contacts.get_many.return_value = [
        contact(1),
        contact(2, "003B"),
        None,
        contact(4),
    ]
    service.salesforce.upsert_many.return_value = [
        UpsertResult("003A", created=True),
        UpsertResult("003D", created=True),
    ]
    service.salesforce.update_many.return_value = [None]
    flags = []
    service.contacts.link_many.side_effect = lambda links: flags.append(
        ctx.data.get(SOURCE_KEY)
    )

    service.sync_contacts_up([1, 2, 3, 4])

    assert service.debounce.runs == [
        ("sync_contact_up", ["contact:up:1", "contact:up:2", "contact:up:3",
                             "contact:up:4"])
    ]  # fmt: skip
    sobject, field, rows = service.salesforce.upsert_many.call_args.args
    assert (sobject, field) == ("Contact", "Platform_Id__c")
    assert [row["Platform_Id__c"] for row in rows] == ["1", "4"]
    assert [row["AccountId"] for row in rows] == [None, None]
    updated = service.salesforce.update_many.call_args.args[1]
    assert [(row["Id"], row["LastName"]) for row in updated] == [("003B", "Name 2")]
    service.contacts.link_many.assert_called_once_with([[1, "003A"], [4, "003D"]])
    assert flags == [True]
    # Record 3 is gone: its own task deletes it in Salesforce.
    assert scheduled(service) == [call("sync_contact_up", 3)]


def test_bulk_up_hands_on_contacts_whose_account_is_not_in_salesforce():
    service, _ = make_service()
    service.contacts.get_many.return_value = [
        contact(1, account_id=10),
        contact(2, account_id=11),
        contact(3, account_id=12),
    ]
    service.accounts.get_many.return_value = [
        {"id": 10, "salesforce_id": "001X"},
        {"id": 11, "salesforce_id": None},
        None,
    ]
    service.salesforce.upsert_many.return_value = [UpsertResult("003A", True)]

    service.sync_contacts_up([1, 2, 3])

    service.accounts.get_many.assert_called_once_with([10, 11, 12])
    rows = service.salesforce.upsert_many.call_args.args[2]
    assert [(row["Platform_Id__c"], row["AccountId"]) for row in rows] == [
        ("1", "001X")
    ]
    assert scheduled(service) == [
        call("sync_contact_up", 2),
        call("sync_contact_up", 3),
    ]


def test_bulk_up_hands_on_rows_that_fail_alone_and_locked_records():
    service, _ = make_service(busy={"contact:3"})
    service.contacts.get_many.return_value = [contact(1), contact(2, "003B")]
    service.salesforce.upsert_many.return_value = [RecordLocked("row locked")]
    service.salesforce.update_many.return_value = [RecordNotFound("deleted")]

    service.sync_contacts_up([1, 2, 3])

    service.contacts.get_many.assert_called_once_with([1, 2])
    service.contacts.link_many.assert_not_called()
    # 1 failed alone, 3 is being synced elsewhere; 2 was deleted in Salesforce
    # (its notification brings the delete down), so nothing more for it.
    assert sorted(scheduled(service)) == [
        call("sync_contact_up", 1),
        call("sync_contact_up", 3),
    ]


def test_bulk_up_retries_itself_when_salesforce_is_down_and_links_what_landed():
    service, _ = make_service()
    service.contacts.get_many.return_value = [contact(1), contact(2, "003B")]
    service.salesforce.upsert_many.return_value = [UpsertResult("003A", True)]
    service.salesforce.update_many.side_effect = ServerUnavailable("503")

    with pytest.raises(Backoff) as retried:
        service.sync_contacts_up([1, 2])

    assert isinstance(retried.value.__cause__, ServerUnavailable)
    service.contacts.link_many.assert_called_once_with([[1, "003A"]])
    service.tasks.schedule.assert_not_called()


# -- down -------------------------------------------------------------------------


def sf_contact(salesforce_id, platform_id=None, account=None, name="Turner"):
    return {
        "Id": salesforce_id,
        "Platform_Id__c": platform_id,
        "AccountId": account,
        "LastName": name,
    }


def test_bulk_down_reads_writes_and_links_in_one_call_each():
    service, ctx = make_service()
    service.contacts.find_many_by_salesforce_id.return_value = [None, 8, None]
    service.salesforce.retrieve_many.return_value = [
        sf_contact("003A"),
        sf_contact("003B", "8"),
        None,
    ]
    flags = []

    def upsert_many(rows):
        flags.append(ctx.data.get(SOURCE_KEY))
        return [
            {"id": 21, "created": True, "deleted": False},
            {"id": 8, "created": False, "deleted": False},
        ]

    service.contacts.upsert_many_from_salesforce.side_effect = upsert_many
    service.salesforce.update_many.return_value = [None]

    service.sync_contacts_down(["003A", "003B", "003C"])

    assert service.salesforce.retrieve_many.call_args.args[:2] == (
        "Contact",
        ["003A", "003B", "003C"],
    )
    rows = service.contacts.upsert_many_from_salesforce.call_args.args[0]
    assert [(r["salesforce_id"], r["platform_id"]) for r in rows] == [
        ("003A", None),
        ("003B", 8),
    ]
    assert rows[0]["data"]["last_name"] == "Turner"
    assert rows[0]["data"]["account_id"] is None
    assert flags == [True]
    assert service.salesforce.update_many.call_args.args == (
        "Contact",
        [{"Id": "003A", "Platform_Id__c": "21"}],
    )
    # 003C is gone from Salesforce: its own task deletes it on the platform.
    assert scheduled(service) == [call("sync_contact_down", "003C")]


def test_bulk_down_locks_known_records_by_platform_id():
    service, _ = make_service(busy={"contact:8", "contact:sf:003A"})
    service.contacts.find_many_by_salesforce_id.return_value = [None, 8, None]
    service.salesforce.retrieve_many.return_value = [sf_contact("003C", "30")]
    service.contacts.upsert_many_from_salesforce.return_value = [
        {"id": 30, "created": False, "deleted": False}
    ]

    service.sync_contacts_down(["003A", "003B", "003C"])

    assert service.salesforce.retrieve_many.call_args.args[1] == ["003C"]
    service.salesforce.update_many.assert_not_called()  # already linked
    assert sorted(scheduled(service)) == [
        call("sync_contact_down", "003A"),
        call("sync_contact_down", "003B"),
    ]


def test_bulk_down_hands_on_refused_deleted_and_account_waiting_rows():
    service, _ = make_service()
    service.contacts.find_many_by_salesforce_id.return_value = [None] * 5
    service.salesforce.retrieve_many.return_value = [
        sf_contact("003A", account="001X"),
        sf_contact("003B", account="001Y"),
        sf_contact("003C"),  # the platform refuses it (below)
        sf_contact("003E", name=""),  # no last name: refused by the mapping
        sf_contact("003D", "44"),
    ]
    service.accounts.find_many_by_salesforce_id.return_value = [5, None]
    service.contacts.upsert_many_from_salesforce.return_value = [
        {"id": 40, "created": True, "deleted": False},
        {"error": "Salesforce contact 003C is invalid", "error_type": "InvalidRecord"},
        {"id": None, "created": False, "deleted": True},
    ]
    service.salesforce.update_many.return_value = [None]

    service.sync_contacts_down(["003A", "003B", "003C", "003D", "003E"])

    service.accounts.find_many_by_salesforce_id.assert_called_once_with(
        ["001X", "001Y"]
    )
    rows = service.contacts.upsert_many_from_salesforce.call_args.args[0]
    assert [(r["salesforce_id"], r["data"]["account_id"]) for r in rows] == [
        ("003A", 5),
        ("003C", None),
        ("003D", None),
    ]
    assert scheduled(service) == [
        call("sync_contact_down", "003B"),
        call("sync_contact_down", "003E"),
        call("sync_contact_down", "003C"),
        call("sync_contact_down", "003D"),
    ]


def test_bulk_down_retries_itself_when_salesforce_is_down():
    service, _ = make_service()
    service.contacts.find_many_by_salesforce_id.return_value = [None, None]
    service.salesforce.retrieve_many.side_effect = ServerUnavailable("503")

    with pytest.raises(Backoff) as retried:
        service.sync_contacts_down(["003A", "003B"])

    assert isinstance(retried.value.__cause__, ServerUnavailable)
    service.contacts.upsert_many_from_salesforce.assert_not_called()
    service.tasks.schedule.assert_not_called()
