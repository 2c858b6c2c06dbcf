"""PushTopic and Change Data Capture events, and the Bayeux session state.

The hub listens to every committed DML of the org, matches it against active
PushTopics and the CDC-enabled entities, stores each event with a replay id
(strictly increasing, with random gaps of 1-3 so clients cannot assume
contiguity) and queues it for subscribed clients. PushTopic events are kept
for 24 hours of `Clock` time, change events for 72 hours. All CDC channels
share one replay id sequence, so an event has the same id on
`/data/ChangeEvents` and on `/data/<Object>ChangeEvent`.

Emulator decisions: one change event per record (Salesforce may merge
identical changes of one transaction into one event with several recordIds);
no GAP_ or overflow events (issue #4).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sfsync.emulator.clock import CLOCK, Clock, format_event_datetime
from sfsync.emulator.errors import ApiError
from sfsync.emulator.org import Change, Org
from sfsync.emulator.schema import NAME_PARTS, PUSH_TOPIC, SYSTEM_FIELDS
from sfsync.emulator.soql import Query

logger = logging.getLogger(__name__)

RETENTION_SECONDS = 24 * 3600
CDC_RETENTION_SECONDS = 72 * 3600
CDC_ENTITIES = ("Account", "Contact")
ALL_CHANGE_EVENTS = "/data/ChangeEvents"
_CDC_REPLAY_KEY = "/data"
_CLIENT_ID_ALPHABET = string.ascii_lowercase + string.digits
_EVENT_TYPES = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "undeleted": "Undelete",
}
# Never part of a change event body.
_CDC_HIDDEN = {"Id", "IsDeleted", "SystemModstamp"}


@dataclass
class StoredEvent:
    replay_id: int
    created_ms: int
    message: dict[str, Any]


@dataclass
class BayeuxClient:
    """One handshaken CometD client and what it is waiting to receive."""

    client_id: str
    user_id: str
    subscriptions: set[str] = field(default_factory=set)
    queue: list[dict[str, Any]] = field(default_factory=list)
    fresh: bool = True
    last_seen: float = field(default_factory=time.monotonic)
    pending: asyncio.Future[str] | None = None


class StreamingHub:
    """Topic matching, event retention and replay, and client bookkeeping."""

    def __init__(
        self,
        org: Org,
        connect_timeout: float,
        clock: Clock = CLOCK,
        retention_seconds: float = RETENTION_SECONDS,
        cdc_entities: tuple[str, ...] = CDC_ENTITIES,
        cdc_retention_seconds: float = CDC_RETENTION_SECONDS,
    ) -> None:
        self.org = org
        self.store = org.store
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.retention_ms = int(retention_seconds * 1000)
        self.cdc_retention_ms = int(cdc_retention_seconds * 1000)
        self.cdc_entities = set(cdc_entities)
        self.channels: dict[str, list[StoredEvent]] = {}
        for channel, replay_id, created_ms, message in self.store.load_events():
            self.channels.setdefault(channel, []).append(
                StoredEvent(replay_id, created_ms, message)
            )
        self.last_replay: dict[str, int] = self.store.get_value("replay_counters", {})
        # Highest replay id dropped by retention, per channel.
        self.expired_upto: dict[str, int] = self.store.get_value("replay_expired", {})
        self.clients: dict[str, BayeuxClient] = {}
        self.closing = False
        org.listeners.append(self.on_change)

    @property
    def advice(self) -> dict[str, Any]:
        timeout_ms = int(self.connect_timeout * 1000)
        return {"reconnect": "retry", "interval": 0, "timeout": timeout_ms}

    # --- events -------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Publish a notification on every active PushTopic the change matches."""
        for topic in list(self.org.records["PushTopic"].values()):
            if topic["IsDeleted"] or not topic["IsActive"]:
                continue
            try:
                query = self.org.push_topic_query(topic)
            except ApiError:
                logger.warning("PushTopic %s has an unusable query", topic["Id"])
                continue
            if query.sobject != change.sotype.name:
                continue
            if not topic[f"NotifyForOperation{_EVENT_TYPES[change.kind]}"]:
                continue
            if change.kind == "updated" and not self._watched(topic, query, change):
                continue
            if not query.matches(change.after):
                continue
            sobject = {name: change.after.get(name) for name in query.fields}
            self.publish(f"/topic/{topic['Name']}", change.kind, sobject)
        if change.sotype.name in self.cdc_entities:
            self.publish_change_event(change)

    def publish_change_event(self, change: Change) -> int:
        """Store and fan out the CDC event of one change on both its channels."""
        now_ms = self.clock.now_ms()
        entity = change.sotype.name
        channels = (ALL_CHANGE_EVENTS, f"/data/{entity}ChangeEvent")
        for channel in channels:
            self._expire(channel, now_ms)
        replay_id = self.last_replay.get(_CDC_REPLAY_KEY, 0) + random.randint(1, 3)
        self.last_replay[_CDC_REPLAY_KEY] = replay_id
        data = {
            "schema": _schema_id(entity),
            "payload": change_payload(change),
            "event": {"replayId": replay_id},
        }
        for channel in channels:
            self._store_and_fan_out(
                channel, replay_id, now_ms, {"channel": channel, "data": data}
            )
        self.store.set_value("replay_counters", self.last_replay)
        return replay_id

    @staticmethod
    def _watched(topic: dict[str, Any], query: Query, change: Change) -> bool:
        # System stamps change on every update; they never count as a change.
        changed = change.changed - set(SYSTEM_FIELDS)
        mode = topic["NotifyForFields"]
        if mode == "All":
            return bool(changed)
        watched: set[str] = set()
        if mode in ("Referenced", "Select"):
            watched |= set(query.fields)
        if mode in ("Referenced", "Where"):
            watched |= query.where_fields()
        return bool(changed & watched)

    def publish(self, channel: str, kind: str, sobject: dict[str, Any]) -> int:
        """Store and fan out one event; the caller commits the store."""
        now_ms = self.clock.now_ms()
        self._expire(channel, now_ms)
        replay_id = self.last_replay.get(channel, 0) + random.randint(1, 3)
        self.last_replay[channel] = replay_id
        event = {
            "type": kind,
            "createdDate": format_event_datetime(now_ms),
            "replayId": replay_id,
        }
        message = {"channel": channel, "data": {"event": event, "sobject": sobject}}
        self._store_and_fan_out(channel, replay_id, now_ms, message)
        self.store.set_value("replay_counters", self.last_replay)
        logger.debug("published %s %s replayId=%s", channel, kind, replay_id)
        return replay_id

    def _store_and_fan_out(
        self, channel: str, replay_id: int, now_ms: int, message: dict[str, Any]
    ) -> None:
        self.channels.setdefault(channel, []).append(
            StoredEvent(replay_id, now_ms, message)
        )
        self.store.save_event(channel, replay_id, now_ms, message)
        for client in self.clients.values():
            if channel in client.subscriptions:
                copies = 2 if self.org.faults.duplicate() else 1
                self._enqueue(client, [message] * copies)

    def retention_for(self, channel: str) -> int:
        """Retention of a channel in milliseconds."""
        if channel.startswith("/data/"):
            return self.cdc_retention_ms
        return self.retention_ms

    def _expire(self, channel: str, now_ms: int) -> None:
        events = self.channels.get(channel)
        cutoff = now_ms - self.retention_for(channel)
        dropped = 0
        while events and dropped < len(events) and events[dropped].created_ms < cutoff:
            dropped += 1
        if not dropped or events is None:
            return
        last = events[dropped - 1].replay_id
        del events[:dropped]
        self.expired_upto[channel] = last
        self.store.delete_events_upto(channel, last)
        self.store.set_value("replay_expired", self.expired_upto)

    # --- clients ------------------------------------------------------------

    def handshake(self, user_id: str) -> BayeuxClient:
        client_id = "".join(secrets.choice(_CLIENT_ID_ALPHABET) for _ in range(28))
        client = BayeuxClient(client_id, user_id)
        self.clients[client_id] = client
        return client

    def touch(self, client_id: str | None) -> BayeuxClient | None:
        client = self.clients.get(client_id or "")
        if client is not None:
            client.last_seen = time.monotonic()
        return client

    def channel_exists(self, channel: str) -> bool:
        if channel == ALL_CHANGE_EVENTS:
            return bool(self.cdc_entities)
        if channel.startswith("/data/") and channel.endswith("ChangeEvent"):
            return channel[len("/data/") : -len("ChangeEvent")] in self.cdc_entities
        if not channel.startswith("/topic/"):
            return False
        return bool(self.org.find_live(PUSH_TOPIC, "Name", channel[len("/topic/") :]))

    def subscribe(self, client: BayeuxClient, channel: str, replay: Any) -> str | None:
        """Subscribe and queue replayed events; return a Bayeux error or None."""
        if not self.channel_exists(channel):
            return (
                "400::The channel you requested to subscribe to doesn't exist "
                f"{{{channel}}}"
            )
        replay_id = -1
        if isinstance(replay, dict):
            if channel not in replay:
                return (
                    f"400::The replayId for channel {channel} wasn't found using "
                    f"the provided replay ID map {replay}"
                )
            try:
                replay_id = int(replay[channel])
            except (TypeError, ValueError):
                replay_id = -3
        self._expire(channel, self.clock.now_ms())
        self.store.commit()
        events = self.channels.get(channel, [])
        if replay_id == -2:
            backlog = events
        elif replay_id >= 0 and replay_id >= self.expired_upto.get(channel, 0):
            backlog = [event for event in events if event.replay_id > replay_id]
        elif replay_id == -1:
            backlog = []
        else:
            return (
                f"400::The replayId {replay_id} you provided was invalid. Please "
                "provide a valid ID, -2 to replay all events, or -1 to replay "
                "only new events."
            )
        client.subscriptions.add(channel)
        self._enqueue(client, [event.message for event in backlog])
        return None

    def unsubscribe(self, client: BayeuxClient, channel: str) -> None:
        client.subscriptions.discard(channel)

    def forget_clients(self) -> int:
        """Drop every client, as Salesforce does after a blip; they must handshake."""
        forgotten = list(self.clients.values())
        self.clients.clear()
        for client in forgotten:
            self._release(client, "disconnected")
        logger.info("forgot %d Bayeux clients", len(forgotten))
        return len(forgotten)

    def disconnect(self, client: BayeuxClient) -> None:
        self.clients.pop(client.client_id, None)
        self._release(client, "disconnected")

    def _enqueue(self, client: BayeuxClient, messages: list[dict[str, Any]]) -> None:
        if messages:
            client.queue.extend(messages)
            self._release(client, "events")

    @staticmethod
    def _release(client: BayeuxClient, reason: str) -> None:
        if client.pending is not None and not client.pending.done():
            client.pending.set_result(reason)

    async def connect(
        self, client: BayeuxClient, still_open: Callable[[], bool]
    ) -> list[dict[str, Any]]:
        """Hold a /meta/connect until events arrive or the timeout passes.

        Returns the events to deliver; an empty list when the poll was
        superseded by a newer connect or the HTTP client went away.
        """
        if client.fresh or client.queue or self.closing:
            client.fresh = False
            return self._drain(client)
        self._release(client, "superseded")
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        client.pending = waiter
        try:
            await asyncio.wait({waiter}, timeout=self.connect_timeout)
        finally:
            if client.pending is waiter:
                client.pending = None
        reason = waiter.result() if waiter.done() else "timeout"
        client.last_seen = time.monotonic()
        if reason in ("superseded", "disconnected") or not still_open():
            # Leave the queue for the next connect rather than lose events.
            return []
        return self._drain(client)

    @staticmethod
    def _drain(client: BayeuxClient) -> list[dict[str, Any]]:
        messages, client.queue = client.queue, []
        client.last_seen = time.monotonic()
        return messages

    def sweep(self) -> None:
        """Forget clients idle for more than twice the connect timeout."""
        now = time.monotonic()
        for client in list(self.clients.values()):
            holding = client.pending is not None and not client.pending.done()
            if not holding and now - client.last_seen > 2 * self.connect_timeout:
                logger.info("forgetting idle Bayeux client %s", client.client_id)
                del self.clients[client.client_id]

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.connect_timeout))
            self.sweep()

    def close(self) -> None:
        """Release every held connect so the server can stop promptly."""
        self.closing = True
        for client in self.clients.values():
            self._release(client, "closing")


def _schema_id(entity: str) -> str:
    digest = hashlib.sha256(f"sfsync-emulator:{entity}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _cdc_value(spec_type: str, value: Any) -> Any:
    # Change events write datetimes as ...00.000Z, unlike REST's +0000.
    if spec_type == "datetime" and isinstance(value, str):
        return value.replace("+0000", "Z")
    return value


def change_payload(change: Change) -> dict[str, Any]:
    """ChangeEventHeader plus the body fields the operation carries."""
    sotype = change.sotype
    record = change.after
    compound = "LastName" in sotype.fields
    parts = [p for p in NAME_PARTS if p in sotype.fields] if compound else []
    kind = change.kind
    if kind in ("created", "undeleted"):
        names = [n for n in sotype.fields if record.get(n) is not None]
    elif kind == "updated":
        names = sorted(change.changed - set(SYSTEM_FIELDS))
        names.append("LastModifiedDate")
        if "LastModifiedById" in change.changed:
            names.append("LastModifiedById")
    else:
        names = []
    hidden = _CDC_HIDDEN | ({"Name"} if compound else set())
    names = [n for n in names if n not in hidden]
    body: dict[str, Any] = {}
    changed_fields: list[str] = []
    nulled_fields: list[str] = []
    for name in names:
        value = _cdc_value(sotype.fields[name].type, record.get(name))
        label = f"Name.{name}" if name in parts else name
        if kind == "updated":
            changed_fields.append(label)
            if value is None:
                nulled_fields.append(label)
        if name in parts:
            body.setdefault("Name", {})[name] = value
        else:
            body[name] = value
    header = {
        "entityName": sotype.name,
        "recordIds": [record["Id"]],
        "changeType": _EVENT_TYPES[kind].upper(),
        "changeOrigin": change.origin,
        "transactionKey": change.transaction_key,
        "sequenceNumber": change.sequence,
        "commitTimestamp": change.commit_ms,
        "commitNumber": change.commit_ms * 1000 + change.sequence,
        "commitUser": change.user_id,
        "changedFields": changed_fields,
        "nulledFields": nulled_fields,
        "diffFields": [],
    }
    return {"ChangeEventHeader": header} | body
