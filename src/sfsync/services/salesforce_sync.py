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
task is idempotent, and out-of-order or repeated triggers converge. The sync
calls take lists of ids so that batching can slot in.
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


def sync_task(
    debounce_key: str, waits_for_related: bool = False
) -> Callable[[Callable], Callable]:
    """A ``@task`` debounced per record and retried on each error kind's own
    schedule (and, for a record with a related record, while it waits)."""
    policies = [SALESFORCE_DOWN, RATE_LIMITED, ROW_LOCKED, PLATFORM_DOWN]
    if waits_for_related:
        policies.append(RELATED_MISSING)

    def decorate(method: Callable) -> Callable:
        wrapped = debounced(debounce_key)(method)
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

    def _platform_changed(self, kind: Synced, payload: dict[str, Any]) -> None:
        if self.source.from_salesforce:
            log.debug(
                "up: %s %s changed by the sync, dropped", kind.record, payload["id"]
            )
            return
        self.tasks.schedule(f"sync_{kind.record}_up", payload["id"])

    # -- triggers: Salesforce streaming ----------------------------------------

    @handle_sobject_notification("Contact", enabled_by=streaming_mode("pushtopic"))
    def on_salesforce_contact(
        self, sobject_type: str, record_type: str | None, notification: dict
    ) -> None:
        self.tasks.schedule("sync_contact_down", notification["sobject"]["Id"])

    @handle_sobject_notification("Account", enabled_by=streaming_mode("pushtopic"))
    def on_salesforce_account(
        self, sobject_type: str, record_type: str | None, notification: dict
    ) -> None:
        self.tasks.schedule("sync_account_down", notification["sobject"]["Id"])

    @handle_change_event("Contact", enabled_by=streaming_mode("cdc"))
    def on_contact_change_event(
        self, sobject_type: str, change_type: str, record_ids: list, payload: dict
    ) -> None:
        for salesforce_id in record_ids:
            self.tasks.schedule("sync_contact_down", salesforce_id)

    @handle_change_event("Account", enabled_by=streaming_mode("cdc"))
    def on_account_change_event(
        self, sobject_type: str, change_type: str, record_ids: list, payload: dict
    ) -> None:
        for salesforce_id in record_ids:
            self.tasks.schedule("sync_account_down", salesforce_id)

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

    @timer(interval=DEBOUNCE_SWEEP_SECONDS)
    def resume_debounced(self) -> None:
        """Reschedule debounced calls whose runner died before running them."""
        for method, args in self.debounce.stale():
            log.info("debounce: resuming %s%s", method, tuple(args))
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
        fields = kind.read_fields
        if not self.batch.enabled:
            return self.salesforce.get(kind.sobject, salesforce_id, fields)

        def retrieve(ids: list[str]) -> list:
            return self.salesforce.retrieve_many(kind.sobject, ids, fields)

        return self.batch.submit(f"{kind.sobject}.get", salesforce_id, retrieve)

    def _salesforce_update(
        self, kind: Synced, salesforce_id: str, fields: dict
    ) -> None:
        if not self.batch.enabled:
            self.salesforce.update(kind.sobject, salesforce_id, fields)
            return

        def update(records: list[dict]) -> list:
            return self.salesforce.update_many(kind.sobject, records)

        record = {**fields, "Id": salesforce_id}
        self.batch.submit(f"{kind.sobject}.update", record, update)

    def _salesforce_upsert(self, kind: Synced, fields: dict) -> UpsertResult:
        if not self.batch.enabled:
            value = fields[EXTERNAL_ID_FIELD]
            return self.salesforce.upsert(
                kind.sobject, EXTERNAL_ID_FIELD, value, fields
            )

        def upsert(records: list[dict]) -> list:
            return self.salesforce.upsert_many(kind.sobject, EXTERNAL_ID_FIELD, records)

        return self.batch.submit(f"{kind.sobject}.upsert", fields, upsert)

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
        found = self.salesforce.query(
            f"SELECT Id FROM {kind.sobject} "
            f"WHERE {EXTERNAL_ID_FIELD} = '{soql_quote(str(record_id))}'"
        )
        for record in found:
            self.salesforce.delete(kind.sobject, record["Id"])
            log.info("up: %s %s deleted %s", kind.record, record_id, record["Id"])

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
            data = to_platform(record, kind.fields)
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


def as_platform_id(value: Any) -> int | None:
    """A Platform_Id__c as a platform id, if it is one written as we write
    them (no sign, no leading zero, within range); otherwise None."""
    text = str(value) if value is not None else ""
    if not text.isdigit() or text != str(int(text)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_PLATFORM_ID else None
