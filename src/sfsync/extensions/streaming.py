"""Salesforce Streaming API events (PushTopic and Change Data Capture) as
nameko entrypoints.

``@handle_sobject_notification("Contact")`` declares a PushTopic named after
the sObject at container start (creating or updating it), subscribes to
``/topic/Contact`` and runs the decorated method once per notification with
``(sobject_type, record_type, notification)``. With ``exclude_current_user``
(the default) the topic's query leaves out records last modified by the
integration user the service logs in as: the sync's own writes never come
back down. That is the loop breaker on the Salesforce side.

``@handle_change_event("Contact")`` subscribes to ``/data/ContactChangeEvent``
and runs the method with ``(sobject_type, change_type, record_ids, payload)``;
events whose ``changeOrigin`` names this client, or whose ``commitUser`` is
the integration user, are dropped: the same loop breaker for CDC.

Batch mode: with ``batch=True`` on either decorator, a worker gets the
events of one ``/meta/connect`` reply on its channel as a list, at most
``BATCH_LIMIT`` (200) a worker: ``(sobject_type, record_type,
notifications)`` for PushTopic (each the ``notification`` above) and
``(sobject_type, changes)`` for Change Data Capture (each ``{"change_type",
"record_ids", "payload"}``, echoes dropped as above). A bulk load of
thousands of records then costs tens of workers and Redis round trips, not
thousands.

Several instances: every instance receives every event; each event is
claimed once in Redis by its channel and replay id (``sfsync:claimed:...``,
kept 4 days, longer than any replay window), and only the claimer runs it.
A claim is pending until its worker has run, and kept alive meanwhile; if
its claimer dies first, it lapses and an instance that saw the event takes
it over. In batch mode a reply's events are claimed in one round trip, and
those another instance claimed are watched by one thread, with one ``MGET``
a poll.

Replay: the last replay id of each channel is stored in Redis, and only once
every notification up to it has been handled (workers finish out of order;
storing a later id first would skip an earlier one after a restart). After a
restart the stream resumes after the stored id. When that id is past the
org's retention, a query catches up on the gap: a worker per record found, or
in batch mode per ``BATCH_LIMIT`` records, with arguments of the same shapes
(notification type ``caught-up``, change type ``GAP_CATCH_UP``).

Config: ``SALESFORCE`` (see ``sfsync.extensions.salesforce``) and
``REDIS_URIS: {<redis_key>: redis://...}``; the Redis key of a channel is
``sfsync:replay_id:<channel>``.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

import redis
from nameko.containers import WorkerContext
from nameko.extensions import Entrypoint, ProviderCollector, SharedExtension

from sfsync.extensions.salesforce import client_from_config
from sfsync.salesforce.client import SalesforceClient, soql_quote
from sfsync.salesforce.errors import SalesforceError
from sfsync.salesforce.streaming import REPLAY_ALL, StreamingSession

__all__ = [
    "ChangeEventHandler",
    "ReplayTracker",
    "SObjectNotificationHandler",
    "StreamingClient",
    "StreamingEntrypoint",
    "handle_change_event",
    "handle_sobject_notification",
]

log = logging.getLogger(__name__)

REPLAY_KEY_PREFIX = "sfsync:replay_id:"
WATERMARK_KEY_PREFIX = "sfsync:replay_at:"  # when the stored id's event was
CATCH_UP_MARGIN = datetime.timedelta(minutes=5)  # clocks and commit order
STATUS_KEY = "sfsync:streaming:status"
CLAIM_KEY_PREFIX = "sfsync:claimed:"
# A claim must outlive the longest replay window (72 h for Change Data
# Capture), or a replay after a long outage would run a notification twice.
CLAIM_SECONDS = 4 * 24 * 3600
CLAIM_PENDING_SECONDS = 30  # re-armed by its holder every third of it
CLAIM_WATCH_SECONDS = 0.2
BATCH_LIMIT = 200  # notifications in one batch worker's list
FAILED_KEY = "sfsync:failed_notifications"
# Pauses before running a failed worker again, with its claims held.
WORKER_RETRY_SECONDS = (1.0, 5.0, 30.0)
_STORE_IF_LATER = """
local current = tonumber(redis.call("get", KEYS[1]) or "-1")
if tonumber(ARGV[1]) > current then
    redis.call("set", KEYS[1], ARGV[1])
    return 1
end
return 0
"""
_REARM_PENDING = """
for _, key in ipairs(KEYS) do
    if redis.call("get", key) == ARGV[1] then
        redis.call("expire", key, ARGV[2])
    end
end
return 0
"""
DEFAULT_REDIS_KEY = "sync"

T = TypeVar("T")


class ReplayTracker:
    """Which replay id of one channel is safe to store.

    ``received`` each id as it arrives, ``done`` each as its worker ends;
    ``done`` returns the highest id below which nothing is still in flight,
    or None when that did not move.
    """

    def __init__(self) -> None:
        self._in_flight: list[int] = []
        self._done: set[int] = set()
        self._times: dict[int, str] = {}
        self._safe: int | None = None
        self.safe_at: str | None = None  # when the safe id's event happened
        self._lock = threading.Lock()

    def received(self, replay_id: int, at: str | None = None) -> None:
        with self._lock:
            self._in_flight.append(replay_id)
            if at:
                self._times[replay_id] = at

    def done(self, replay_id: int) -> int | None:
        with self._lock:
            self._done.add(replay_id)
            moved = False
            while self._in_flight and self._in_flight[0] in self._done:
                self._safe = self._in_flight.pop(0)
                self._done.discard(self._safe)
                self.safe_at = self._times.pop(self._safe, self.safe_at)
                moved = True
            return self._safe if moved else None


def _claim_keys(channel: str, replay_ids: Sequence[int]) -> list[str]:
    return [f"{CLAIM_KEY_PREFIX}{channel}:{replay_id}" for replay_id in replay_ids]


class StreamingClient(SharedExtension, ProviderCollector):
    """One CometD connection per container, feeding every registered handler."""

    def __init__(self, redis_key: str = DEFAULT_REDIS_KEY) -> None:
        super().__init__()
        self.redis_key = redis_key
        self.client: SalesforceClient | None = None
        self.redis: redis.Redis | None = None
        self.session: StreamingSession | None = None
        self.trackers: dict[str, ReplayTracker] = {}
        self._tag = uuid.uuid4().hex[:6]
        self._catch_up_once_subscribed: set[str] = set()
        self._held: set[str] = set()  # claim keys pending on this instance

    def setup(self) -> None:
        self.client = client_from_config(self.container.config)
        uri = self.container.config["REDIS_URIS"][self.redis_key]
        self.redis = redis.Redis.from_url(uri, decode_responses=True)

    def start(self) -> None:
        assert self.client is not None
        handlers = {provider.channel: provider for provider in self._providers}
        if not handlers:
            return
        for channel in handlers:
            self.trackers[channel] = ReplayTracker()
        self.session = StreamingSession(
            self.client,
            handlers,
            self.stored_replay_id,
            self._subscribed,
            self.replay_lost,
        )
        self.container.spawn_managed_thread(
            partial(self._run, self.session, handlers),
            identifier="salesforce-streaming",
        )
        self.container.spawn_managed_thread(
            self._keep_claims, identifier="claim-keeper"
        )

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()
        super().stop()

    def kill(self) -> None:
        if self.session is not None:
            self.session.stop()

    def _run(
        self, session: StreamingSession, handlers: dict[str, StreamingEntrypoint]
    ) -> None:
        self._declare(session, handlers)
        for batch in session.batches():
            by_channel: dict[str, list[dict[str, Any]]] = {}
            for message in batch:
                by_channel.setdefault(message.get("channel", ""), []).append(message)
            for channel, messages in by_channel.items():
                handler = handlers.get(channel)
                if handler is None:
                    log.warning(
                        "streaming: %s messages on unknown channel %r",
                        len(messages),
                        channel,
                    )
                    continue
                handler.handle_messages(messages)

    def _declare(
        self, session: StreamingSession, handlers: dict[str, StreamingEntrypoint]
    ) -> None:
        """Declare what the channels need, waiting out an unreachable org.

        Runs in the streaming thread, so a Salesforce that is down or
        refusing the login at start delays the stream instead of killing
        the service.
        """
        assert self.client is not None
        pause = 1.0
        while session.running:
            try:
                for handler in handlers.values():
                    handler.declare(self.client)
                return
            except SalesforceError as exc:
                log.warning(
                    "streaming: cannot declare yet (%s); retry in %.0f s", exc, pause
                )
                time.sleep(pause)
                pause = min(pause * 2, 60.0)

    def _subscribed(self) -> None:
        """Tell operators (and the demo) that this instance is listening;
        note since when each channel is listened to; catch up where due."""
        assert self.redis is not None
        since = datetime.datetime.now(datetime.UTC).isoformat()
        for channel in self.trackers:
            self.redis.set(WATERMARK_KEY_PREFIX + channel, since, nx=True)
        while self._catch_up_once_subscribed:
            self.replay_lost(self._catch_up_once_subscribed.pop())
        instance = self.instance
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.redis.sadd(STATUS_KEY + ":subscribed", instance)
        self.redis.hset(
            STATUS_KEY,
            instance,
            f"subscribed to {', '.join(self.trackers)} at {now}",
        )

    def stored_replay_id(self, channel: str) -> int:
        """Where to resume: after the stored id, or every retained event.

        With no stored id (a first start, or one that never saw an event
        before it stopped) the stream replays what Salesforce retains: the
        tasks are idempotent and claims skip what was already handled, and
        starting at the tip would lose what changed while nothing listened.
        """
        assert self.redis is not None
        value = self.redis.get(REPLAY_KEY_PREFIX + channel)
        if value:
            return int(value)
        if self.redis.exists(WATERMARK_KEY_PREFIX + channel):
            # Listened before but never stored an id: what changed while it
            # was away may be past retention too, so also query for it.
            self._catch_up_once_subscribed.add(channel)
        return REPLAY_ALL

    def handled(self, channel: str, *replay_ids: int) -> None:
        """Workers for ``replay_ids`` ended: store the highest safe id, if
        that moved, in one round trip."""
        assert self.redis is not None
        tracker = self.trackers[channel]
        moves = [safe for safe in map(tracker.done, replay_ids) if safe is not None]
        if not moves:
            return
        # Instances share the key: never move it backwards.
        key = REPLAY_KEY_PREFIX + channel
        moved = self.redis.eval(_STORE_IF_LATER, 1, key, moves[-1])
        if moved and tracker.safe_at:
            self.redis.set(WATERMARK_KEY_PREFIX + channel, tracker.safe_at)

    def replay_lost(self, channel: str) -> None:
        """The stored replay id is past retention: query for the gap."""
        assert self.redis is not None and self.client is not None
        since = self.redis.get(WATERMARK_KEY_PREFIX + channel)
        if not since:
            lookback = datetime.timedelta(seconds=CLAIM_SECONDS)
            since = (datetime.datetime.now(datetime.UTC) - lookback).isoformat()
        for provider in self._providers:
            if provider.channel == channel:
                provider.catch_up(self.client, since)

    def claim_all(self, channel: str, replay_ids: Sequence[int]) -> list[bool]:
        """For each of ``replay_ids``, in one round trip: True for exactly one
        instance at a time.

        A claim is first pending for ``CLAIM_PENDING_SECONDS``, re-armed by
        this instance while it holds it; ``settle`` makes it last once its
        worker has run. So a claimer that dies on the way lets the claim
        lapse, and another instance takes the event over.
        """
        assert self.redis is not None
        keys = _claim_keys(channel, replay_ids)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, self._pending, nx=True, ex=CLAIM_PENDING_SECONDS)
        won = [bool(ok) for ok in pipe.execute()]
        self._held.update(key for key, ok in zip(keys, won, strict=True) if ok)
        return won

    def settle(self, channel: str, *replay_ids: int) -> None:
        """The claimed events' worker has run: keep the claims for good."""
        assert self.redis is not None
        keys = _claim_keys(channel, replay_ids)
        self._held.difference_update(keys)
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, "done", ex=CLAIM_SECONDS)
        pipe.execute()

    def settled_all(self, channel: str, replay_ids: Sequence[int]) -> list[bool | None]:
        """For each of ``replay_ids``, in one ``MGET``: True once settled,
        None while pending, False if the claim lapsed."""
        assert self.redis is not None
        values = self.redis.mget(_claim_keys(channel, replay_ids))
        return [False if v is None else (True if v == "done" else None) for v in values]

    def _keep_claims(self) -> None:
        """Re-arm this instance's pending claims while their workers wait or
        run: a batch worker may take longer than ``CLAIM_PENDING_SECONDS``.
        Dies with the container, so the claims of a dead instance lapse."""
        assert self.redis is not None
        while True:
            time.sleep(CLAIM_PENDING_SECONDS / 3)
            held = list(self._held)
            if not held:
                continue
            try:
                self.redis.eval(
                    _REARM_PENDING,
                    len(held),
                    *held,
                    self._pending,
                    CLAIM_PENDING_SECONDS,
                )
            except redis.RedisError as exc:
                log.warning("streaming: could not re-arm %s claims: %s", len(held), exc)

    @property
    def _pending(self) -> str:
        return f"pending:{self.instance}"

    @property
    def instance(self) -> str:
        """This container's name in claims and status: host, process, tag."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._tag}"


class StreamingEntrypoint(Entrypoint):
    """What every streaming entrypoint shares: a channel, replay, claims.

    ``enabled_by(config)``, when given, decides at start whether this
    entrypoint subscribes at all, so a service can carry a PushTopic and a
    Change Data Capture entrypoint and let configuration pick one. With
    ``batch`` a worker gets a list of up to ``BATCH_LIMIT`` items (what a
    per-event worker gets, one an event) instead of one event.
    A failing worker runs again after each pause of ``WORKER_RETRY_SECONDS``
    (its claims held meanwhile); one that still fails is logged with its
    replay ids and kept in the Redis list ``sfsync:failed_notifications``;
    the stream goes on.
    """

    streaming = StreamingClient()
    channel = ""

    def __init__(
        self,
        enabled_by: Callable[[dict], bool] | None = None,
        batch: bool = False,
        **kwargs: Any,
    ) -> None:
        self.enabled_by = enabled_by
        self.enabled = False
        self.batch = batch
        super().__init__(**kwargs)

    def setup(self) -> None:
        config = self.container.config
        self.enabled = self.enabled_by is None or self.enabled_by(config)
        if self.enabled:
            self.streaming.register_provider(self)

    def stop(self) -> None:
        if self.enabled:
            self.streaming.unregister_provider(self)

    def declare(self, client: SalesforceClient) -> None:
        """Create what the channel needs on the Salesforce side, if anything."""

    def event_item(self, data: dict[str, Any]) -> Any:
        """What a worker gets of one event's ``data``, or None to skip it."""
        raise NotImplementedError

    def catch_up_item(self, record_id: str) -> Any:
        """What a worker gets of a record found by a catch-up query."""
        raise NotImplementedError

    def worker_args(self, items: list[Any]) -> tuple:
        """The worker's arguments for its items: one, unless ``batch``."""
        raise NotImplementedError

    def event_time(self, data: dict[str, Any]) -> str | None:
        """When the event happened in Salesforce, ISO 8601, if it says."""
        return None

    sobject_type = ""
    exclude_current_user = True

    def catch_up(self, client: SalesforceClient, since: str) -> None:
        """Run workers for every record changed since ``since`` (ISO 8601),
        deleted ones included: the gap a lost replay id leaves."""
        start = datetime.datetime.fromisoformat(since.replace("Z", "+00:00"))
        start = (start - CATCH_UP_MARGIN).astimezone(datetime.UTC)
        query = (
            f"SELECT Id FROM {self.sobject_type} "
            f"WHERE SystemModstamp > {start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        )
        if self.exclude_current_user:
            query += f" AND LastModifiedById != '{soql_quote(client.user_id)}'"
        ids = [record["Id"] for record in client.query(query, include_deleted=True)]
        log.warning(
            "catching up on %s: %s records changed since %s",
            self.channel,
            len(ids),
            since,
        )
        for chunk in self._chunks([self.catch_up_item(i) for i in ids]):
            self.container.spawn_worker(
                self, self.worker_args(chunk), {}, handle_result=self._caught_up
            )

    def _caught_up(
        self, worker_ctx: WorkerContext, result: Any, exc_info: Any
    ) -> tuple[Any, Any]:
        if exc_info is not None:
            log.error("catch-up on %s failed: %s", self.channel, exc_info[1])
        return result, exc_info

    def handle_messages(self, messages: list[dict[str, Any]]) -> None:
        """The messages of one connect reply on this channel, in order: one
        claim round trip and workers of up to ``BATCH_LIMIT`` items with
        ``batch``, else each message as ``handle_message`` does."""
        if not self.batch:
            for message in messages:
                self.handle_message(message)
            return
        self._dispatch(self._receive(messages))

    def handle_message(self, message: dict[str, Any]) -> None:
        self._dispatch(self._receive([message]))

    def _receive(self, messages: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        """Track each message's replay id; its ``(replay_id, item)``, less
        the skipped ones, which count as handled at once."""
        tracker = self.streaming.trackers[self.channel]
        entries, skipped = [], []
        for message in messages:
            data = message["data"]
            replay_id = int(data["event"]["replayId"])
            tracker.received(replay_id, self.event_time(data))
            item = self.event_item(data)
            if item is None:
                skipped.append(replay_id)
            else:
                entries.append((replay_id, item))
        self.streaming.handled(self.channel, *skipped)
        return entries

    def _dispatch(self, entries: list[tuple[int, Any]]) -> None:
        if not entries:
            return
        mine, others = self._claim(entries)
        self._run(mine)
        if others:
            # Another instance has these. Count them handled only once that
            # one has run them; should its claims lapse, take them over.
            self.container.spawn_managed_thread(
                partial(self._watch_claims, others),
                identifier=f"claim-watch-{others[0][0]}",
            )

    def _claim(
        self, entries: list[tuple[int, Any]]
    ) -> tuple[list[tuple[int, Any]], list[tuple[int, Any]]]:
        """The entries this instance claimed, and the others."""
        won = self.streaming.claim_all(self.channel, [r for r, _ in entries])
        mine = [entry for entry, ok in zip(entries, won, strict=True) if ok]
        others = [entry for entry, ok in zip(entries, won, strict=True) if not ok]
        return mine, others

    def _run(self, entries: list[tuple[int, Any]], attempt: int = 0) -> None:
        for chunk in self._chunks(entries):
            self.container.spawn_worker(
                self,
                self.worker_args([item for _, item in chunk]),
                {},
                handle_result=partial(self._handled, chunk, attempt),
            )

    def _run_later(self, entries: list[tuple[int, Any]], attempt: int) -> None:
        time.sleep(WORKER_RETRY_SECONDS[attempt - 1])
        self._run(entries, attempt)

    def _chunks(self, items: list[T]) -> Iterator[list[T]]:
        size = BATCH_LIMIT if self.batch else 1
        for start in range(0, len(items), size):
            yield items[start : start + size]

    def _watch_claims(self, entries: list[tuple[int, Any]]) -> None:
        while entries:
            states = self.streaming.settled_all(self.channel, [r for r, _ in entries])
            pairs = list(zip(entries, states, strict=True))
            self.streaming.handled(
                self.channel, *(replay_id for (replay_id, _), s in pairs if s)
            )
            entries = [entry for entry, state in pairs if state is None]
            lapsed = [entry for entry, state in pairs if state is False]
            if lapsed:
                taken, lost = self._claim(lapsed)
                entries += lost
                if taken:
                    log.warning(
                        "events %s on %s: their claimer went away; taking over",
                        ",".join(str(replay_id) for replay_id, _ in taken),
                        self.channel,
                    )
                    self._run(taken)
            if entries:
                time.sleep(CLAIM_WATCH_SECONDS)

    def _handled(
        self,
        entries: list[tuple[int, Any]],
        attempt: int,
        worker_ctx: WorkerContext,
        result: Any,
        exc_info: Any,
    ) -> tuple[Any, Any]:
        replay_ids = [replay_id for replay_id, _ in entries]
        ids = ",".join(map(str, replay_ids))
        if exc_info is not None and attempt < len(WORKER_RETRY_SECONDS):
            # Most likely the broker or Redis went away for a moment: the
            # claims stay held (and re-armed) while the worker waits.
            pause = WORKER_RETRY_SECONDS[attempt]
            log.warning(
                "events %s on %s failed: %s; trying again in %s s",
                ids,
                self.channel,
                exc_info[1],
                pause,
            )
            self.container.spawn_managed_thread(
                partial(self._run_later, entries, attempt + 1),
                identifier=f"streaming-retry-{replay_ids[0]}",
            )
            return result, exc_info
        if exc_info is not None:
            log.error("events %s on %s failed: %s", ids, self.channel, exc_info[1])
            assert self.streaming.redis is not None
            # Every id is kept; the arguments are cut to fit.
            entry = f"{self.channel} {ids} {exc_info[1]!r} {worker_ctx.args!r}"
            self.streaming.redis.rpush(FAILED_KEY, entry[: len(ids) + 2000])
        self.streaming.settle(self.channel, *replay_ids)
        self.streaming.handled(self.channel, *replay_ids)
        return result, exc_info


class SObjectNotificationHandler(StreamingEntrypoint):
    """Entrypoint: one worker per PushTopic notification of ``sobject_type``.

    Declares the PushTopic at start; consumes ``/topic/<sobject_type>``; calls
    the method with ``(sobject_type, record_type, notification)`` where
    ``notification`` is the Bayeux ``data`` (``event`` with ``type`` and
    ``replayId``, and ``sobject``). With ``batch=True``: ``(sobject_type,
    record_type, notifications)``, a list of up to ``BATCH_LIMIT``.
    """

    def __init__(
        self,
        sobject_type: str,
        record_type: str | None = None,
        exclude_current_user: bool = True,
        notify_for_fields: str = "All",
        fields: tuple[str, ...] = ("Id", "LastModifiedById", "LastModifiedDate"),
        **kwargs: Any,
    ) -> None:
        self.sobject_type = sobject_type
        self.record_type = record_type
        self.exclude_current_user = exclude_current_user
        self.notify_for_fields = notify_for_fields
        self.fields = fields
        super().__init__(**kwargs)

    @property
    def topic_name(self) -> str:
        return self.sobject_type + (self.record_type or "")

    @property
    def channel(self) -> str:  # type: ignore[override]
        return f"/topic/{self.topic_name}"

    def topic_query(self, user_id: str) -> str:
        query = f"SELECT {', '.join(self.fields)} FROM {self.sobject_type}"
        if self.exclude_current_user:
            query += f" WHERE LastModifiedById != '{soql_quote(user_id)}'"
        return query

    def declare(self, client: SalesforceClient) -> None:
        """Create or update the PushTopic this entrypoint listens to."""
        topic = {
            "Query": self.topic_query(client.user_id),
            "ApiVersion": float(client.api_version),
            "NotifyForFields": self.notify_for_fields,
            "NotifyForOperationCreate": True,
            "NotifyForOperationUpdate": True,
            "NotifyForOperationDelete": True,
            "NotifyForOperationUndelete": True,
        }
        existing = list(
            client.query(
                "SELECT Id, Query FROM PushTopic "
                f"WHERE Name = '{soql_quote(self.topic_name)}'"
            )
        )
        if existing:
            client.update("PushTopic", existing[0]["Id"], topic)
        else:
            client.create("PushTopic", {"Name": self.topic_name, **topic})
        log.info("PushTopic %s declared: %s", self.topic_name, topic["Query"])

    def event_item(self, data: dict[str, Any]) -> dict[str, Any]:
        return data

    def catch_up_item(self, record_id: str) -> dict[str, Any]:
        return {"event": {"type": "caught-up"}, "sobject": {"Id": record_id}}

    def worker_args(self, items: list[Any]) -> tuple:
        return (self.sobject_type, self.record_type, items if self.batch else items[0])

    def event_time(self, data: dict[str, Any]) -> str | None:
        return data.get("event", {}).get("createdDate")


class ChangeEventHandler(StreamingEntrypoint):
    """Entrypoint: one worker per Change Data Capture event of ``sobject_type``.

    Consumes ``/data/<sobject_type>ChangeEvent``; calls the method with
    ``(sobject_type, change_type, record_ids, payload)``; with ``batch=True``,
    ``(sobject_type, changes)``, a list of up to ``BATCH_LIMIT`` dicts with
    those three as ``change_type``, ``record_ids`` and ``payload``. With
    ``exclude_current_user`` (the default), events the service's own client
    caused are dropped: their ``changeOrigin`` names this client
    (``Sforce-Call-Options: client=...``) or their ``commitUser`` is the
    integration user. Change Data Capture must be enabled for the object in
    the org (Setup, Change Data Capture).
    """

    def __init__(
        self, sobject_type: str, exclude_current_user: bool = True, **kwargs: Any
    ) -> None:
        self.sobject_type = sobject_type
        self.exclude_current_user = exclude_current_user
        super().__init__(**kwargs)

    @property
    def channel(self) -> str:  # type: ignore[override]
        return f"/data/{self.sobject_type}ChangeEvent"

    def event_item(self, data: dict[str, Any]) -> dict[str, Any] | None:
        payload = data.get("payload", {})
        header = payload.get("ChangeEventHeader", {})
        if self.exclude_current_user and self._is_echo(header):
            return None
        return {
            "change_type": header.get("changeType", ""),
            "record_ids": list(header.get("recordIds", [])),
            "payload": payload,
        }

    def catch_up_item(self, record_id: str) -> dict[str, Any]:
        return {"change_type": "GAP_CATCH_UP", "record_ids": [record_id], "payload": {}}

    def worker_args(self, items: list[Any]) -> tuple:
        if self.batch:
            return (self.sobject_type, items)
        change = items[0]
        return (
            self.sobject_type,
            change["change_type"],
            change["record_ids"],
            change["payload"],
        )

    def event_time(self, data: dict[str, Any]) -> str | None:
        header = data.get("payload", {}).get("ChangeEventHeader", {})
        stamp = header.get("commitTimestamp")
        if not stamp:
            return None
        moment = datetime.datetime.fromtimestamp(stamp / 1000, datetime.UTC)
        return moment.isoformat()

    def _is_echo(self, header: dict[str, Any]) -> bool:
        client = self.streaming.client
        assert client is not None
        origin = str(header.get("changeOrigin", ""))
        ours = f"client={client.client_name}"
        return (
            origin.endswith(ours)
            or ours + ";" in origin
            or (header.get("commitUser") == client.user_id)
        )


handle_sobject_notification: Callable[..., Any] = SObjectNotificationHandler.decorator
handle_change_event: Callable[..., Any] = ChangeEventHandler.decorator
