"""The ``salesforce`` sync service: contacts both ways, platform ⇄ Salesforce.

Up: every ``contacts`` event not sourced from Salesforce makes the record's
current platform state land in Salesforce (upsert by ``Platform_Id__c``, or
update by its known Salesforce id), or removes it there when it is gone.

Down: every PushTopic notification not caused by the integration user makes
the record's current Salesforce state land on the platform through the
``contacts`` RPC, inside a ``sourced_from_salesforce`` context so its platform
event is not sent back up.

Both ways, the trigger only schedules a task (over AMQP, keyed by the record
id); the task is debounced per record, retried later per error kind, and
dead-lettered when it cannot succeed. Each task fetches the current record
from its source of truth; the trigger only says which record to look at. So a
task is idempotent, and out-of-order or repeated triggers converge. The sync
calls take lists of ids so that batching can slot in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from nameko.events import SERVICE_POOL, event_handler
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer
from nameko_amqp_retry import entrypoint_retry

from sfsync.extensions.debounce import Debounce, debounced
from sfsync.extensions.salesforce import SalesforceAPI
from sfsync.extensions.slack import SlackFailureNotices
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.streaming import (
    handle_change_event,
    handle_sobject_notification,
)
from sfsync.extensions.tasks import TaskScheduler, task
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import EXTERNAL_ID_FIELD, to_platform, to_salesforce
from sfsync.salesforce.client import soql_quote
from sfsync.salesforce.errors import (
    RecordLocked,
    RecordNotFound,
    RequestRefused,
    ServerUnavailable,
    SessionExpired,
)

log = logging.getLogger(__name__)

SOBJECT = "Contact"
REDIS_KEY = "sync"
DEBOUNCE_SWEEP_SECONDS = 10


def streaming_mode(mode: str) -> Callable[[dict], bool]:
    """Config test: is ``SALESFORCE.STREAMING`` (pushtopic or cdc) ``mode``?"""

    def chosen(config: dict) -> bool:
        return config["SALESFORCE"].get("STREAMING", "pushtopic") == mode

    return chosen


class PlatformUnavailable(Exception):
    """The ``contacts`` service did not answer; try again later."""


# Retry schedules per error kind, in milliseconds (nameko-amqp-retry: the
# wait happens in RabbitMQ). Each kind counts its own tries.
SALESFORCE_DOWN: dict[str, Any] = {
    "retry_for": (ServerUnavailable, SessionExpired),
    "limit": 40,
    "schedule": (1000, 2000, 5000, 10000, 30000, 60000),
    "random_sigma": 50,
}
RATE_LIMITED: dict[str, Any] = {
    "retry_for": RequestRefused,
    "limit": 24,
    "schedule": (60000, 300000, 900000),
    "random_sigma": 1000,
}
ROW_LOCKED: dict[str, Any] = {
    "retry_for": RecordLocked,
    "limit": 10,
    "schedule": (200, 500, 1000, 2000, 5000),
    "random_sigma": 50,
}
PLATFORM_DOWN: dict[str, Any] = {
    "retry_for": PlatformUnavailable,
    "limit": 40,
    "schedule": (500, 1000, 2000, 5000, 10000, 30000),
    "random_sigma": 50,
}


@contextmanager
def platform_call() -> Iterator[None]:
    """Turn the ways the ``contacts`` RPC can be unreachable into one error."""
    try:
        yield
    except (UnknownService, RpcTimeout, ConnectionError) as exc:
        raise PlatformUnavailable(f"contacts service: {exc}") from exc
    except RemoteError as exc:
        if exc.exc_type != "OperationalError":  # its database busy or gone
            raise
        raise PlatformUnavailable(f"contacts service: {exc}") from exc


class SalesforceSyncService:
    """Keeps platform contacts and Salesforce Contacts in step."""

    name = "salesforce"

    contacts = RpcProxy("contacts")
    salesforce = SalesforceAPI()
    source = SourceTracker()
    tasks = TaskScheduler()
    debounce = Debounce(REDIS_KEY)
    failure_notices = SlackFailureNotices(
        {"sync_contact_up": "up", "sync_contact_down": "down"}
    )
    tracer = Tracer()

    # -- up: platform -> Salesforce ----------------------------------------

    @event_handler("contacts", "contact_created", handler_type=SERVICE_POOL)
    def on_contact_created(self, payload: dict[str, Any]) -> None:
        self._platform_changed(payload)

    @event_handler("contacts", "contact_updated", handler_type=SERVICE_POOL)
    def on_contact_updated(self, payload: dict[str, Any]) -> None:
        self._platform_changed(payload)

    @event_handler("contacts", "contact_deleted", handler_type=SERVICE_POOL)
    def on_contact_deleted(self, payload: dict[str, Any]) -> None:
        self._platform_changed(payload)

    def _platform_changed(self, payload: dict[str, Any]) -> None:
        if self.source.from_salesforce:
            log.debug("up: contact %s changed by the sync, dropped", payload["id"])
            return
        self.tasks.schedule("sync_contact_up", payload["id"])

    @task
    @entrypoint_retry(**SALESFORCE_DOWN)
    @entrypoint_retry(**RATE_LIMITED)
    @entrypoint_retry(**ROW_LOCKED)
    @entrypoint_retry(**PLATFORM_DOWN)
    @debounced("contact:up:{0}")
    def sync_contact_up(self, contact_id: int) -> None:
        """Task: one contact up; debounced, retried per error kind."""
        self.sync_up([contact_id])

    @rpc
    def sync_up(self, contact_ids: list[int]) -> list[str | None]:
        """Make Salesforce match the platform for these contacts.

        Returns, per contact, its Salesforce id (None when it was deleted).
        """
        return [self._sync_one_up(contact_id) for contact_id in contact_ids]

    def _sync_one_up(self, contact_id: int) -> str | None:
        with platform_call():
            contact = self.contacts.get(contact_id)
        if contact is None:
            self._delete_in_salesforce(contact_id)
            return None
        record = to_salesforce(contact)
        salesforce_id = contact["salesforce_id"]
        if salesforce_id:
            try:
                self.salesforce.update(SOBJECT, salesforce_id, record)
            except RecordNotFound:
                # Deleted in Salesforce meanwhile; its notification brings
                # the delete down, so recreating it here would resurrect it.
                log.info(
                    "up: contact %s skipped, %s is deleted", contact_id, salesforce_id
                )
                return salesforce_id
            log.info("up: contact %s updated %s", contact_id, salesforce_id)
            return salesforce_id
        result = self.salesforce.upsert(
            SOBJECT, EXTERNAL_ID_FIELD, str(contact_id), record
        )
        with self.source.salesforce_change(), platform_call():
            self.contacts.link_salesforce_id(contact_id, result.id)
        log.info(
            "up: contact %s %s %s",
            contact_id,
            "created" if result.created else "updated",
            result.id,
        )
        return result.id

    def _delete_in_salesforce(self, contact_id: int) -> None:
        found = self.salesforce.query(
            f"SELECT Id FROM {SOBJECT} "
            f"WHERE {EXTERNAL_ID_FIELD} = '{soql_quote(str(contact_id))}'"
        )
        for record in found:
            self.salesforce.delete(SOBJECT, record["Id"])
            log.info("up: contact %s deleted %s", contact_id, record["Id"])

    # -- down: Salesforce -> platform --------------------------------------

    @handle_sobject_notification(SOBJECT, enabled_by=streaming_mode("pushtopic"))
    def on_salesforce_contact(
        self, sobject_type: str, record_type: str | None, notification: dict
    ) -> None:
        self.tasks.schedule("sync_contact_down", notification["sobject"]["Id"])

    @handle_change_event(SOBJECT, enabled_by=streaming_mode("cdc"))
    def on_contact_change_event(
        self, sobject_type: str, change_type: str, record_ids: list, payload: dict
    ) -> None:
        for salesforce_id in record_ids:
            self.tasks.schedule("sync_contact_down", salesforce_id)

    @task
    @entrypoint_retry(**SALESFORCE_DOWN)
    @entrypoint_retry(**RATE_LIMITED)
    @entrypoint_retry(**ROW_LOCKED)
    @entrypoint_retry(**PLATFORM_DOWN)
    @debounced("contact:down:{0}")
    def sync_contact_down(self, salesforce_id: str) -> None:
        """Task: one Contact down; debounced, retried per error kind."""
        self.sync_down([salesforce_id])

    @timer(interval=DEBOUNCE_SWEEP_SECONDS)
    def resume_debounced(self) -> None:
        """Reschedule debounced calls whose runner died before running them."""
        for method, args in self.debounce.stale():
            log.info("debounce: resuming %s%s", method, tuple(args))
            self.tasks.schedule(method, *args)

    @rpc
    def sync_down(self, salesforce_ids: Iterable[str]) -> list[int | None]:
        """Make the platform match Salesforce for these Contacts.

        Returns, per Contact, its platform id (None when it was deleted).
        """
        return [self._sync_one_down(sf_id) for sf_id in salesforce_ids]

    def _sync_one_down(self, salesforce_id: str) -> int | None:
        record = self.salesforce.get(SOBJECT, salesforce_id)
        with self.source.salesforce_change(), platform_call():
            if record is None or record.get("IsDeleted"):
                contact_id = self.contacts.delete_by_salesforce_id(salesforce_id)
                log.info(
                    "down: %s deleted, contact %s removed", salesforce_id, contact_id
                )
                return None
            platform_id = _as_platform_id(record.get(EXTERNAL_ID_FIELD))
            result = self.contacts.upsert_from_salesforce(
                salesforce_id, platform_id, to_platform(record)
            )
        if record.get(EXTERNAL_ID_FIELD) != str(result["id"]):
            self.salesforce.update(
                SOBJECT, salesforce_id, {EXTERNAL_ID_FIELD: str(result["id"])}
            )
        log.info(
            "down: %s %s contact %s",
            salesforce_id,
            "created" if result["created"] else "updated",
            result["id"],
        )
        return result["id"]


def _as_platform_id(value: Any) -> int | None:
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None
