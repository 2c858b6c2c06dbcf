"""The ``salesforce`` sync service: contacts both ways, platform ⇄ Salesforce.

Up: every ``contacts`` event not sourced from Salesforce makes the record's
current platform state land in Salesforce (upsert by ``Platform_Id__c``, or
update by its known Salesforce id), or removes it there when it is gone.

Down: every PushTopic notification not caused by the integration user makes
the record's current Salesforce state land on the platform through the
``contacts`` RPC, inside a ``sourced_from_salesforce`` context so its platform
event is not sent back up.

Each task fetches the current record from its source of truth; the event only
says which record to look at. So a task is idempotent, and out-of-order or
repeated events converge. Tasks take lists of ids so that batching can slot in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from nameko.events import SERVICE_POOL, event_handler
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy, rpc
from nameko_redis import Redis

from sfsync.extensions.lock import LockTimeout, RecordLock
from sfsync.extensions.salesforce import SalesforceAPI
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.streaming import handle_sobject_notification
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import EXTERNAL_ID_FIELD, to_platform, to_salesforce
from sfsync.salesforce.client import soql_quote
from sfsync.salesforce.errors import (
    InvalidRequest,
    RecordNotFound,
    RequestRefused,
    ServerUnavailable,
    SessionExpired,
)

log = logging.getLogger(__name__)

SOBJECT = "Contact"
REDIS_KEY = "sync"
FAILURES_KEY = "sfsync:failed"
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 16)  # seconds; ~30 s in all
_TRANSIENT = (
    ServerUnavailable,
    RequestRefused,
    SessionExpired,
    LockTimeout,
    UnknownService,
    ConnectionError,
)


def is_transient(exc: Exception) -> bool:
    """Worth another try: the other side is down, busy or not there yet."""
    if isinstance(exc, InvalidRequest):
        return exc.error_code == "UNABLE_TO_LOCK_ROW"
    if isinstance(exc, RemoteError):
        return exc.exc_type in ("OperationalError", "LockTimeout")
    return isinstance(exc, _TRANSIENT)


class SalesforceSyncService:
    """Keeps platform contacts and Salesforce Contacts in step."""

    name = "salesforce"

    contacts = RpcProxy("contacts")
    salesforce = SalesforceAPI()
    source = SourceTracker()
    locks = RecordLock(REDIS_KEY)
    redis = Redis(REDIS_KEY)
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
            log.debug(
                "up: contact %s changed by the sync itself, dropped", payload["id"]
            )
            return
        self._retrying("up", self.sync_up, [payload["id"]])

    @rpc
    def sync_up(self, contact_ids: list[int]) -> list[str | None]:
        """Make Salesforce match the platform for these contacts.

        Returns, per contact, its Salesforce id (None when it was deleted).
        """
        results = []
        for contact_id in contact_ids:
            with self.locks.hold(f"contact:up:{contact_id}"):
                results.append(self._sync_one_up(contact_id))
        return results

    def _sync_one_up(self, contact_id: int) -> str | None:
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
        with self.source.salesforce_change():
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

    @handle_sobject_notification(SOBJECT)
    def on_salesforce_contact(
        self, sobject_type: str, record_type: str | None, notification: dict
    ) -> None:
        self._retrying("down", self.sync_down, [notification["sobject"]["Id"]])

    # -- failures ----------------------------------------------------------

    def _retrying(self, direction: str, task: Callable, ids: list) -> None:
        """Run ``task(ids)``, trying again on transient errors, then keep it.

        The wait is a sleeping worker for now; waiting in RabbitMQ instead,
        with schedules per error kind, is issue #3. A task out of tries is
        logged and kept in Redis (``failures`` lists them, ``sync_up`` and
        ``sync_down`` replay them) rather than lost.
        """
        for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
            try:
                task(ids)
                return
            except Exception as exc:
                if delay is None or not is_transient(exc):
                    self._keep_failure(direction, ids, exc, attempt)
                    return
                log.warning(
                    "%s: %s failed (%s), try %s again in %s s",
                    direction, ids, exc, attempt + 1, delay,
                )  # fmt: skip
                time.sleep(delay)

    def _keep_failure(
        self, direction: str, ids: list, exc: Exception, attempts: int
    ) -> None:
        log.error(
            "%s: %s failed after %s tries: %s", direction, ids, attempts, exc,
            exc_info=not is_transient(exc),
        )  # fmt: skip
        entry = {
            "direction": direction,
            "ids": ids,
            "error": f"{type(exc).__name__}: {exc}"[:1000],
            "tries": attempts,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.redis.rpush(FAILURES_KEY, json.dumps(entry))

    @rpc
    def failures(self) -> list[dict[str, Any]]:
        """Sync tasks that ran out of tries, oldest first."""
        return [json.loads(item) for item in self.redis.lrange(FAILURES_KEY, 0, -1)]

    @rpc
    def sync_down(self, salesforce_ids: Iterable[str]) -> list[int | None]:
        """Make the platform match Salesforce for these Contacts.

        Returns, per Contact, its platform id (None when it was deleted).
        """
        results = []
        for salesforce_id in salesforce_ids:
            with self.locks.hold(f"contact:down:{salesforce_id}"):
                results.append(self._sync_one_down(salesforce_id))
        return results

    def _sync_one_down(self, salesforce_id: str) -> int | None:
        record = self.salesforce.get(SOBJECT, salesforce_id)
        with self.source.salesforce_change():
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
