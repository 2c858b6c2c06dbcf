"""The ``salesforce`` sync service: contacts and accounts both ways,
platform ⇄ Salesforce.

Up: every ``contacts`` or ``accounts`` event not sourced from Salesforce
makes the record's current platform state land in Salesforce (upsert by
``Platform_Id__c``, or update by its known Salesforce id), or removes it
there when it is gone.

Down: every PushTopic notification (or Change Data Capture event) not caused
by the integration user makes the record's current Salesforce state land on
the platform through the platform service's RPC, inside a
``sourced_from_salesforce`` context so its platform event is not sent back up.

A contact goes across with its account set, never without it: when its
account is not yet in the other system, the task raises RelatedRecordMissing
and is retried on that error's own schedule until the account is there.
Up and down tasks of one record hold one lock, so a change made on both sides
at once ends the same on both sides.

Both ways, the trigger only schedules a task (over AMQP, keyed by the record
id); the task is debounced per record, retried later per error kind, and
dead-lettered when it cannot succeed. Each task fetches the current record
from its source of truth; the trigger only says which record to look at. So a
task is idempotent, and out-of-order or repeated triggers converge.

In bulk (``BATCHING.ENABLED``): a platform batch event (``create_many``) or a
batch of Salesforce notifications schedules one task per 200 records; that
task reads, writes and links them with one call each way (sObject
Collections, ``get_many``, ``upsert_many_from_salesforce``, ``link_many``),
and hands any record it cannot finish on to that record's own task. The
one-record tasks' Salesforce calls are joined into Collections calls too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nameko.events import SERVICE_POOL, event_handler
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer
from nameko_amqp_retry import entrypoint_retry

from sfsync.extensions.batching import Batches
from sfsync.extensions.debounce import Debounce, debounced
from sfsync.extensions.lock import LockTimeout, RecordLock
from sfsync.extensions.salesforce import SalesforceAPI
from sfsync.extensions.slack import SlackFailureNotices
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.streaming import (
    handle_change_event,
    handle_sobject_notification,
)
from sfsync.extensions.tasks import TaskScheduler, task
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import (
    ACCOUNT_FIELDS,
    CONTACT_FIELDS,
    EXTERNAL_ID_FIELD,
    Field,
    InvalidFields,
    to_platform,
    to_salesforce,
)
from sfsync.salesforce.client import UpsertResult, soql_quote
from sfsync.salesforce.errors import (
    RecordLocked,
    RecordNotFound,
    RequestRefused,
    ServerUnavailable,
    SessionExpired,
)

log = logging.getLogger(__name__)

REDIS_KEY = "sync"
MAX_PLATFORM_ID = 2**63 - 1
BULK_SIZE = 200  # records per bulk task: one sObject Collections call
DEBOUNCE_SWEEP_SECONDS = 10


def streaming_mode(mode: str) -> Callable[[dict], bool]:
    """Config test: is ``SALESFORCE.STREAMING`` (pushtopic or cdc) ``mode``?"""

    def chosen(config: dict) -> bool:
        return config["SALESFORCE"].get("STREAMING", "pushtopic") == mode

    return chosen


class PlatformUnavailable(Exception):
    """A platform service did not answer; try again later."""


class RelatedRecordGone(Exception):
    """A record names a related record that does not exist: no retry helps."""


class RecordRefused(ValueError):
    """A Salesforce record holds values the platform cannot take: no retry
    helps; it waits in dead letters, named, until fixed and replayed."""


class RelatedRecordMissing(Exception):
    """A record's related record (a contact's account) is not yet in the
    system it is going to; try again once it has gone across."""


@dataclass(frozen=True)
class Synced:
    """One kind of record the sync keeps in step."""

    sobject: str  # Salesforce's name: Contact
    record: str  # the platform's name: contact
    service: str  # the platform service, and the sync's RpcProxy to it
    fields: tuple[Field, ...]
    relations: tuple[str, ...] = ()  # Salesforce reference fields it reads

    @property
    def read_fields(self) -> list[str]:
        names = [field.salesforce for field in self.fields]
        return ["Id", EXTERNAL_ID_FIELD, *names, *self.relations]


CONTACT = Synced("Contact", "contact", "contacts", CONTACT_FIELDS, ("AccountId",))
ACCOUNT = Synced("Account", "account", "accounts", ACCOUNT_FIELDS)
KINDS = {kind.record: kind for kind in (CONTACT, ACCOUNT)}


# Retry schedules per error kind, in milliseconds (nameko-amqp-retry: the
# wait happens in RabbitMQ). Each kind counts its own tries. The schedules are
# fixed when this module is imported; SFSYNC_RETRY_SCALE shrinks them all (the
# tests run rate-limit retries in seconds, not minutes).
RETRY_SCALE = float(os.environ.get("SFSYNC_RETRY_SCALE", "1"))


def _scaled(*milliseconds: int) -> tuple[int, ...]:
    return tuple(max(10, int(ms * RETRY_SCALE)) for ms in milliseconds)


SALESFORCE_DOWN: dict[str, Any] = {
    "retry_for": (ServerUnavailable, SessionExpired),
    "limit": 40,
    "schedule": _scaled(1000, 2000, 5000, 10000, 30000, 60000),
    "random_sigma": 50,
}
RATE_LIMITED: dict[str, Any] = {
    "retry_for": RequestRefused,
    "limit": 24,
    "schedule": _scaled(60000, 300000, 900000),
    "random_sigma": 1000,
}
ROW_LOCKED: dict[str, Any] = {
    "retry_for": (RecordLocked, LockTimeout),
    "limit": 10,
    "schedule": _scaled(200, 500, 1000, 2000, 5000),
    "random_sigma": 50,
}
RELATED_MISSING: dict[str, Any] = {
    "retry_for": RelatedRecordMissing,
    "limit": 30,
    "schedule": _scaled(500, 1000, 2000, 5000, 10000, 30000),
    "random_sigma": 50,
}
PLATFORM_DOWN: dict[str, Any] = {
    "retry_for": PlatformUnavailable,
    "limit": 40,
    "schedule": _scaled(500, 1000, 2000, 5000, 10000, 30000),
    "random_sigma": 50,
}


# What fails a whole call, not one row: a bulk task retries itself for these
# and hands any other row's error on to that row's own task.
WHOLE_CALL_ERRORS = (ServerUnavailable, SessionExpired, RequestRefused)


def sync_task(
    debounce_key: str | None = None, waits_for_related: bool = False
) -> Callable[[Callable], Callable]:
    """A ``@task`` retried on each error kind's own schedule (and, for a
    record with a related record, while it waits); debounced per record when
    given ``debounce_key`` (bulk tasks debounce each of their records)."""
    policies = [SALESFORCE_DOWN, RATE_LIMITED, ROW_LOCKED, PLATFORM_DOWN]
    if waits_for_related:
        policies.append(RELATED_MISSING)

    def decorate(method: Callable) -> Callable:
        wrapped = debounced(debounce_key)(method) if debounce_key else method
        for policy in reversed(policies):
            wrapped = entrypoint_retry(**policy)(wrapped)
        return task(wrapped)

    return decorate


@contextmanager
def platform_call() -> Iterator[None]:
    """Turn the ways a platform RPC can be unreachable into one error."""
    try:
        yield
    except (UnknownService, RpcTimeout, ConnectionError) as exc:
        raise PlatformUnavailable(f"platform service: {exc}") from exc
    except RemoteError as exc:
        if exc.exc_type != "OperationalError":  # its database busy or gone
            raise
        raise PlatformUnavailable(f"platform service: {exc}") from exc


class SalesforceSyncService:
    """Keeps platform contacts and accounts and their Salesforce records in step."""

    name = "salesforce"

    contacts = RpcProxy("contacts")
    accounts = RpcProxy("accounts")
    salesforce = SalesforceAPI()
    source = SourceTracker()
    tasks = TaskScheduler()
    debounce = Debounce(REDIS_KEY)
    locks = RecordLock(REDIS_KEY)
    batch = Batches()
    failure_notices = SlackFailureNotices(
        {
            "sync_contact_up": "up",
            "sync_contact_down": "down",
            "sync_account_up": "up",
            "sync_account_down": "down",
            "sync_contacts_up": "up",
            "sync_contacts_down": "down",
            "sync_accounts_up": "up",
            "sync_accounts_down": "down",
        }
    )
    tracer = Tracer()

    # -- triggers: platform events -------------------------------------------

    @event_handler("contacts", "contact_created", handler_type=SERVICE_POOL)
    def on_contact_created(self, payload: dict[str, Any]) -> None:
        self._platform_changed(CONTACT, payload)

    @event_handler("contacts", "contact_updated", handler_type=SERVICE_POOL)
    def on_contact_updated(self, payload: dict[str, Any]) -> None:
        self._platform_changed(CONTACT, payload)

    @event_handler("contacts", "contact_deleted", handler_type=SERVICE_POOL)
    def on_contact_deleted(self, payload: dict[str, Any]) -> None:
        self._platform_changed(CONTACT, payload)

    @event_handler("accounts", "account_created", handler_type=SERVICE_POOL)
    def on_account_created(self, payload: dict[str, Any]) -> None:
        self._platform_changed(ACCOUNT, payload)

    @event_handler("accounts", "account_updated", handler_type=SERVICE_POOL)
    def on_account_updated(self, payload: dict[str, Any]) -> None:
        self._platform_changed(ACCOUNT, payload)

    @event_handler("accounts", "account_deleted", handler_type=SERVICE_POOL)
    def on_account_deleted(self, payload: dict[str, Any]) -> None:
        self._platform_changed(ACCOUNT, payload)

    @event_handler("contacts", "contact_batch", handler_type=SERVICE_POOL)
    def on_contact_batch(self, payload: dict[str, Any]) -> None:
        self._platform_batch(CONTACT, payload)

    @event_handler("accounts", "account_batch", handler_type=SERVICE_POOL)
    def on_account_batch(self, payload: dict[str, Any]) -> None:
        self._platform_batch(ACCOUNT, payload)

    def _platform_changed(self, kind: Synced, payload: dict[str, Any]) -> None:
        if self.source.from_salesforce:
            log.debug(
                "up: %s %s changed by the sync, dropped", kind.record, payload["id"]
            )
            return
        self.tasks.schedule(f"sync_{kind.record}_up", payload["id"])

    def _platform_batch(self, kind: Synced, payload: dict[str, Any]) -> None:
        records = payload["records"]
        if self.source.from_salesforce:
            log.debug(
                "up: %s %ss changed by the sync, dropped", len(records), kind.record
            )
            return
        self._schedule(kind, "up", [record["id"] for record in records])

    def _schedule(self, kind: Synced, direction: str, record_ids: list) -> None:
        """Tasks for these records: one per record, or with batching on, one
        per ``BULK_SIZE`` records."""
        record_ids = list(dict.fromkeys(record_ids))
        if not self.batch.enabled or len(record_ids) == 1:
            for record_id in record_ids:
                self.tasks.schedule(f"sync_{kind.record}_{direction}", record_id)
            return
        for start in range(0, len(record_ids), BULK_SIZE):
            chunk = record_ids[start : start + BULK_SIZE]
            self.tasks.schedule(f"sync_{kind.service}_{direction}", chunk)

    # -- triggers: Salesforce streaming ----------------------------------------

    # Notifications come in the batches Salesforce delivers them in.

    @handle_sobject_notification(
        "Contact", batch=True, enabled_by=streaming_mode("pushtopic")
    )
    def on_salesforce_contacts(
        self, sobject_type: str, record_type: str | None, notifications: list
    ) -> None:
        ids = [notification["sobject"]["Id"] for notification in notifications]
        self._schedule(CONTACT, "down", ids)

    @handle_sobject_notification(
        "Account", batch=True, enabled_by=streaming_mode("pushtopic")
    )
    def on_salesforce_accounts(
        self, sobject_type: str, record_type: str | None, notifications: list
    ) -> None:
        ids = [notification["sobject"]["Id"] for notification in notifications]
        self._schedule(ACCOUNT, "down", ids)

    @handle_change_event("Contact", batch=True, enabled_by=streaming_mode("cdc"))
    def on_contact_change_events(self, sobject_type: str, changes: list) -> None:
        ids = [record_id for change in changes for record_id in change["record_ids"]]
        self._schedule(CONTACT, "down", ids)

    @handle_change_event("Account", batch=True, enabled_by=streaming_mode("cdc"))
    def on_account_change_events(self, sobject_type: str, changes: list) -> None:
        ids = [record_id for change in changes for record_id in change["record_ids"]]
        self._schedule(ACCOUNT, "down", ids)

    # -- tasks: debounced per record, retried per error kind -------------------

    @sync_task("contact:up:{0}", waits_for_related=True)
    def sync_contact_up(self, contact_id: int) -> None:
        """Task: one contact up."""
        self._sync_one_up(CONTACT, contact_id)

    @sync_task("contact:down:{0}", waits_for_related=True)
    def sync_contact_down(self, salesforce_id: str) -> None:
        """Task: one Contact down."""
        self._sync_one_down(CONTACT, salesforce_id)

    @sync_task("account:up:{0}")
    def sync_account_up(self, account_id: int) -> None:
        """Task: one account up."""
        self._sync_one_up(ACCOUNT, account_id)

    @sync_task("account:down:{0}")
    def sync_account_down(self, salesforce_id: str) -> None:
        """Task: one Account down."""
        self._sync_one_down(ACCOUNT, salesforce_id)

    # -- bulk tasks (batching on): many records, each debounced and locked ----

    @sync_task()
    def sync_contacts_up(self, contact_ids: list[int]) -> None:
        """Task: many contacts up at once."""
        self._sync_many(CONTACT, "up", contact_ids)

    @sync_task()
    def sync_contacts_down(self, salesforce_ids: list[str]) -> None:
        """Task: many Contacts down at once."""
        self._sync_many(CONTACT, "down", salesforce_ids)

    @sync_task()
    def sync_accounts_up(self, account_ids: list[int]) -> None:
        """Task: many accounts up at once."""
        self._sync_many(ACCOUNT, "up", account_ids)

    @sync_task()
    def sync_accounts_down(self, salesforce_ids: list[str]) -> None:
        """Task: many Accounts down at once."""
        self._sync_many(ACCOUNT, "down", salesforce_ids)

    @timer(interval=DEBOUNCE_SWEEP_SECONDS)
    def resume_debounced(self) -> None:
        """Reschedule debounced calls whose runner died before running them
        (in bulk tasks where there are many of one kind)."""
        stale: dict[str, list] = {}
        for method, args in self.debounce.stale():
            stale.setdefault(method, []).append(args)
        for method, calls in stale.items():
            log.info("debounce: resuming %s calls of %s", len(calls), method)
            kind, _, direction = method.removeprefix("sync_").partition("_")
            if kind in KINDS and all(len(args) == 1 for args in calls):
                self._schedule(KINDS[kind], direction, [args[0] for args in calls])
                continue
            for args in calls:
                self.tasks.schedule(method, *args)

    # -- by hand (an operator, Slack, a replay) --------------------------------

    @rpc
    def sync_up(self, record_ids: list[int], record: str = "contact") -> list:
        """Make Salesforce match the platform for these records now.

        Returns, per record, its Salesforce id (None when it was deleted).
        """
        kind = KINDS[record]
        return [self._sync_one_up(kind, record_id) for record_id in record_ids]

    @rpc
    def sync_down(self, salesforce_ids: Iterable[str], record: str = "contact") -> list:
        """Make the platform match Salesforce for these records now.

        Returns, per record, its platform id (None when it was deleted).
        """
        kind = KINDS[record]
        return [self._sync_one_down(kind, sf_id) for sf_id in salesforce_ids]

    # -- up ----------------------------------------------------------------------

    def _platform(self, kind: Synced) -> Any:
        return getattr(self, kind.service)

    # One call per record, or (with BATCHING.ENABLED) the calls of many
    # workers joined into one: ``get_many`` on the platform, sObject
    # Collections in Salesforce. Each worker still gets its own row's
    # result or error.

    def _platform_get(self, kind: Synced, record_id: int) -> dict | None:
        proxy = self._platform(kind)
        if not self.batch.enabled:
            return proxy.get(record_id)
        return self.batch.submit(f"{kind.service}.get", record_id, proxy.get_many)

    def _salesforce_get(self, kind: Synced, salesforce_id: str) -> dict | None:
        if not self.batch.enabled:
            return self.salesforce.get(kind.sobject, salesforce_id, kind.read_fields)
        return self.batch.submit(*self._collection(kind, "get", salesforce_id))

    def _salesforce_update(
        self, kind: Synced, salesforce_id: str, fields: dict
    ) -> None:
        if not self.batch.enabled:
            self.salesforce.update(kind.sobject, salesforce_id, fields)
            return
        record = {**fields, "Id": salesforce_id}
        self.batch.submit(*self._collection(kind, "update", record))

    def _salesforce_upsert(self, kind: Synced, fields: dict) -> UpsertResult:
        if not self.batch.enabled:
            value = fields[EXTERNAL_ID_FIELD]
            return self.salesforce.upsert(
                kind.sobject, EXTERNAL_ID_FIELD, value, fields
            )
        return self.batch.submit(*self._collection(kind, "upsert", fields))

    def _salesforce_rows(self, kind: Synced, operation: str, items: list) -> list:
        """Many rows of one operation through the batch: a result or an
        error for each, in order."""
        if not items:
            return []
        return self.batch.submit_many(*self._collection(kind, operation, items))

    def _collection(self, kind: Synced, operation: str, item: Any) -> tuple:
        """(batch name, item, flush) for a ``get``, ``update`` or ``upsert``
        of ``kind`` through sObject Collections."""
        salesforce = self.salesforce
        flushes: dict[str, Callable[[list], list]] = {
            "get": lambda ids: salesforce.retrieve_many(
                kind.sobject, ids, kind.read_fields
            ),
            "update": lambda records: salesforce.update_many(kind.sobject, records),
            "upsert": lambda records: salesforce.upsert_many(
                kind.sobject, EXTERNAL_ID_FIELD, records
            ),
        }
        return f"{kind.sobject}.{operation}", item, flushes[operation]

    def _sync_one_up(self, kind: Synced, record_id: int) -> str | None:
        with self.locks.hold(f"{kind.record}:{record_id}"):
            with platform_call():
                current = self._platform_get(kind, record_id)
            if current is None:
                self._delete_in_salesforce(kind, record_id)
                return None
            fields = to_salesforce(current, kind.fields)
            if kind is CONTACT:
                fields["AccountId"] = self._salesforce_account(current)
            return self._write_up(kind, current, fields)

    def _write_up(self, kind: Synced, current: dict, fields: dict) -> str | None:
        record_id, salesforce_id = current["id"], current["salesforce_id"]
        if salesforce_id:
            try:
                self._salesforce_update(kind, salesforce_id, fields)
            except RecordNotFound:
                # Deleted in Salesforce meanwhile; its notification brings
                # the delete down, so recreating it here would resurrect it.
                log.info(
                    "up: %s %s skipped, %s is deleted",
                    kind.record,
                    record_id,
                    salesforce_id,
                )
                return salesforce_id
            log.info("up: %s %s updated %s", kind.record, record_id, salesforce_id)
            return salesforce_id
        result = self._salesforce_upsert(kind, fields)
        with self.source.salesforce_change(), platform_call():
            self._platform(kind).link_salesforce_id(record_id, result.id)
        log.info(
            "up: %s %s %s %s",
            kind.record,
            record_id,
            "created" if result.created else "updated",
            result.id,
        )
        return result.id

    def _salesforce_account(self, contact: dict) -> str | None:
        account_id = contact.get("account_id")
        if account_id is None:
            return None
        with platform_call():
            account = self._platform_get(ACCOUNT, account_id)
        if account is None:
            raise RelatedRecordGone(
                f"contact {contact['id']} names account {account_id}, "
                "which does not exist; set its account_id and resync it"
            )
        if not account["salesforce_id"]:
            raise RelatedRecordMissing(
                f"contact {contact['id']} waits for account {account_id} "
                "to reach Salesforce"
            )
        return account["salesforce_id"]

    def _delete_in_salesforce(self, kind: Synced, record_id: int) -> None:
        """Delete what stands for a deleted platform record in Salesforce: the
        record its tombstone names, and any carrying its Platform_Id__c (one
        created from the platform may not have been linked yet; one created
        in Salesforce may not carry the platform id yet)."""
        with platform_call():
            buried = self._platform(kind).deleted_salesforce_id(record_id)
        found = self.salesforce.query(
            f"SELECT Id FROM {kind.sobject} "
            f"WHERE {EXTERNAL_ID_FIELD} = '{soql_quote(str(record_id))}'"
        )
        targets = dict.fromkeys([buried] if buried else [])
        targets.update(dict.fromkeys(record["Id"] for record in found))
        for salesforce_id in targets:
            if self.salesforce.delete(kind.sobject, salesforce_id):
                log.info("up: %s %s deleted %s", kind.record, record_id, salesforce_id)

    # -- down --------------------------------------------------------------------

    def _sync_one_down(self, kind: Synced, salesforce_id: str) -> int | None:
        with platform_call():
            known = self._platform(kind).find_by_salesforce_id(salesforce_id)
        lock = (
            f"{kind.record}:{known}" if known else f"{kind.record}:sf:{salesforce_id}"
        )
        with self.locks.hold(lock):
            record = self._salesforce_get(kind, salesforce_id)
            if record is None or record.get("IsDeleted"):
                with self.source.salesforce_change(), platform_call():
                    gone = self._platform(kind).delete_by_salesforce_id(salesforce_id)
                log.info(
                    "down: %s deleted, %s %s removed", salesforce_id, kind.record, gone
                )
                return None
            try:
                data = to_platform(record, kind.fields)
            except InvalidFields as exc:
                raise RecordRefused(
                    f"Salesforce {kind.sobject} {salesforce_id} cannot go to "
                    f"the platform: {exc}"
                ) from exc
            if kind is CONTACT:
                data["account_id"] = self._platform_account(salesforce_id, record)
            return self._write_down(kind, salesforce_id, record, data)

    def _write_down(
        self, kind: Synced, salesforce_id: str, record: dict, data: dict
    ) -> int | None:
        platform_id = as_platform_id(record.get(EXTERNAL_ID_FIELD))
        with self.source.salesforce_change(), platform_call():
            result = self._platform(kind).upsert_from_salesforce(
                salesforce_id, platform_id, data
            )
        if result["deleted"]:
            # Deleted on the platform while this change was on its way: the
            # platform's delete wins, here too.
            self.salesforce.delete(kind.sobject, salesforce_id)
            log.info("down: %s was deleted on the platform; deleted", salesforce_id)
            return None
        if record.get(EXTERNAL_ID_FIELD) != str(result["id"]):
            link = {EXTERNAL_ID_FIELD: str(result["id"])}
            self._salesforce_update(kind, salesforce_id, link)
        log.info(
            "down: %s %s %s %s",
            salesforce_id,
            "created" if result["created"] else "updated",
            kind.record,
            result["id"],
        )
        return result["id"]

    def _platform_account(self, salesforce_id: str, record: dict) -> int | None:
        account = record.get("AccountId")
        if not account:
            return None
        with platform_call():
            account_id = self.accounts.find_by_salesforce_id(account)
        if account_id is None:
            raise RelatedRecordMissing(
                f"Contact {salesforce_id} waits for Account {account} "
                "to reach the platform"
            )
        return account_id

    # -- many at once ------------------------------------------------------------
    #
    # A bulk task does in bulk what the one-record tasks do, for the records
    # it can debounce and lock without waiting. Every record it cannot finish
    # (locked elsewhere, deleted, waiting for its account, refused by either
    # side) is handed on to its own one-record task, which has the full retry
    # and dead-letter path; an error that fails a whole call makes the bulk
    # task retry itself.

    def _sync_many(self, kind: Synced, direction: str, record_ids: list) -> None:
        handed_on: list = []
        calls = {f"{kind.record}:{direction}:{i}": i for i in record_ids}
        try:
            self.debounce.run_many(
                f"sync_{kind.record}_{direction}",
                calls,
                lambda ids: self._locked_many(kind, direction, ids, handed_on),
            )
        finally:
            for record_id in dict.fromkeys(handed_on):
                self.tasks.schedule(f"sync_{kind.record}_{direction}", record_id)
        log.info(
            "%s: %s %ss synced in bulk, %s handed on to their own task",
            direction,
            len(record_ids) - len(set(handed_on)),
            kind.record,
            len(set(handed_on)),
        )

    def _locked_many(
        self, kind: Synced, direction: str, record_ids: list, handed_on: list
    ) -> None:
        write: Callable[[Synced, list, list], None]
        if direction == "up":
            write = self._write_many_up
            names = {f"{kind.record}:{i}": i for i in record_ids}
        else:
            write = self._write_many_down
            with platform_call():
                known = self._platform(kind).find_many_by_salesforce_id(record_ids)
            names = {
                f"{kind.record}:{platform_id}"
                if platform_id
                else f"{kind.record}:sf:{salesforce_id}": salesforce_id
                for salesforce_id, platform_id in zip(record_ids, known, strict=True)
            }
        with self.locks.hold_free(names) as held:
            mine = [names[name] for name in held]
            handed_on.extend(set(record_ids) - set(mine))
            if mine:
                write(kind, mine, handed_on)

    def _write_many_up(self, kind: Synced, record_ids: list, handed_on: list) -> None:
        with platform_call():
            records = self._platform(kind).get_many(record_ids)
        present = [record for record in records if record is not None]
        handed_on.extend(  # gone: their own task deletes them in Salesforce
            i for i, record in zip(record_ids, records, strict=True) if record is None
        )
        accounts = self._accounts_in_salesforce(present) if kind is CONTACT else {}
        updates: list[tuple[dict, dict]] = []
        upserts: list[tuple[dict, dict]] = []
        for current in present:
            fields = to_salesforce(current, kind.fields)
            if kind is CONTACT:
                account = current.get("account_id")
                if account is not None and not accounts.get(account):
                    handed_on.append(current["id"])  # waits for its account
                    continue
                fields["AccountId"] = accounts.get(account)
            if current["salesforce_id"]:
                updates.append((current, {**fields, "Id": current["salesforce_id"]}))
            else:
                upserts.append((current, fields))
        failures: list[tuple[Any, Exception]] = []
        updated = self._salesforce_rows(kind, "update", [row for _, row in updates])
        for (current, _), outcome in zip(updates, updated, strict=True):
            # Not found: deleted in Salesforce meanwhile; its notification
            # brings the delete down (as in the one-record task).
            if isinstance(outcome, Exception) and not isinstance(
                outcome, RecordNotFound
            ):
                failures.append((current["id"], outcome))
            elif outcome is None:
                log.debug(
                    "up: %s %s updated %s",
                    kind.record,
                    current["id"],
                    current["salesforce_id"],
                )
        links = []
        upserted = self._salesforce_rows(kind, "upsert", [row for _, row in upserts])
        for (current, _), outcome in zip(upserts, upserted, strict=True):
            if isinstance(outcome, Exception):
                failures.append((current["id"], outcome))
            else:
                links.append([current["id"], outcome.id])
                log.debug(
                    "up: %s %s %s %s",
                    kind.record,
                    current["id"],
                    "created" if outcome.created else "updated",
                    outcome.id,
                )
        if links:
            with self.source.salesforce_change(), platform_call():
                self._platform(kind).link_many(links)
        self._hand_on(failures, handed_on)

    def _accounts_in_salesforce(self, contacts: list[dict]) -> dict[int, str | None]:
        """The Salesforce id of each account these contacts name (None when
        the account is gone or not across yet)."""
        wanted = list(
            dict.fromkeys(c["account_id"] for c in contacts if c.get("account_id"))
        )
        if not wanted:
            return {}
        with platform_call():
            accounts = self.accounts.get_many(wanted)
        return {
            account_id: account["salesforce_id"] if account else None
            for account_id, account in zip(wanted, accounts, strict=True)
        }

    def _write_many_down(
        self, kind: Synced, salesforce_ids: list, handed_on: list
    ) -> None:
        failures: list[tuple[Any, Exception]] = []
        present = []
        fetched = self._salesforce_rows(kind, "get", salesforce_ids)
        for salesforce_id, outcome in zip(salesforce_ids, fetched, strict=True):
            if isinstance(outcome, Exception):
                failures.append((salesforce_id, outcome))
            elif outcome is None or outcome.get("IsDeleted"):
                handed_on.append(salesforce_id)  # its own task deletes it
            else:
                present.append(outcome)
        accounts = self._accounts_on_platform(present) if kind is CONTACT else {}
        rows, sent = [], []
        for record in present:
            try:
                data = to_platform(record, kind.fields)
            except InvalidFields:
                handed_on.append(record["Id"])  # its own task dead-letters it
                continue
            if kind is CONTACT:
                account = record.get("AccountId")
                if account and accounts.get(account) is None:
                    handed_on.append(record["Id"])  # waits for its Account
                    continue
                data["account_id"] = accounts.get(account) if account else None
            platform_id = as_platform_id(record.get(EXTERNAL_ID_FIELD))
            rows.append(
                {
                    "salesforce_id": record["Id"],
                    "platform_id": platform_id,
                    "data": data,
                }
            )
            sent.append(record)
        results = []
        if rows:
            with self.source.salesforce_change(), platform_call():
                results = self._platform(kind).upsert_many_from_salesforce(rows)
        links = []
        for record, result in zip(sent, results, strict=True):
            if "error" in result or result["deleted"]:
                # Refused (its own task dead-letters it with the reason), or
                # deleted on the platform (its own task deletes it here).
                handed_on.append(record["Id"])
                continue
            log.debug(
                "down: %s %s %s %s",
                record["Id"],
                "created" if result["created"] else "updated",
                kind.record,
                result["id"],
            )
            if record.get(EXTERNAL_ID_FIELD) != str(result["id"]):
                links.append({"Id": record["Id"], EXTERNAL_ID_FIELD: str(result["id"])})
        linked = self._salesforce_rows(kind, "update", links)
        for link, outcome in zip(links, linked, strict=True):
            if isinstance(outcome, Exception) and not isinstance(
                outcome, RecordNotFound
            ):
                failures.append((link["Id"], outcome))
        self._hand_on(failures, handed_on)

    def _accounts_on_platform(self, records: list[dict]) -> dict[str, int | None]:
        """The platform id of each Account these Contacts name (None when it
        is not on the platform yet)."""
        wanted = list(
            dict.fromkeys(r["AccountId"] for r in records if r.get("AccountId"))
        )
        if not wanted:
            return {}
        with platform_call():
            found = self.accounts.find_many_by_salesforce_id(wanted)
        return dict(zip(wanted, found, strict=True))

    @staticmethod
    def _hand_on(failures: list[tuple[Any, Exception]], handed_on: list) -> None:
        """Rows that failed alone go to their own task; an error that failed
        a whole call is raised, so the bulk task retries on its schedule."""
        whole = [exc for _, exc in failures if isinstance(exc, WHOLE_CALL_ERRORS)]
        handed_on.extend(
            record_id
            for record_id, exc in failures
            if not isinstance(exc, WHOLE_CALL_ERRORS)
        )
        if whole:
            raise whole[0]


def as_platform_id(value: Any) -> int | None:
    """A Platform_Id__c as a platform id, if it is one written as we write
    them (no sign, no leading zero, within range); otherwise None."""
    text = str(value) if value is not None else ""
    if not text.isdigit() or text != str(int(text)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_PLATFORM_ID else None
