"""Salesforce Streaming API over CometD (Bayeux) long-polling, with replay.

Framework-free. ``StreamingSession.batches()`` yields the event messages of
the subscribed channels as each ``/meta/connect`` reply brings them, a list a
reply; ``events()`` yields them one by one. Both ride out what a long-lived
stream meets: an unknown client (``403::Unknown client``: handshake and
subscribe again), an expired session (``401::...``: log in again), and a
dropped connection. On every new handshake it asks ``replay_from(channel)``
where to resume, so the caller's stored replay id decides what is delivered
again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests

from sfsync.salesforce.client import SalesforceClient
from sfsync.salesforce.errors import (
    SalesforceError,
    ServerUnavailable,
    SessionExpired,
    StreamingError,
)

__all__ = ["StreamingSession", "REPLAY_ALL", "REPLAY_NEW"]

log = logging.getLogger(__name__)

REPLAY_NEW = -1
REPLAY_ALL = -2
_NETWORK_MARGIN = 15.0  # seconds to wait beyond the server's long-poll timeout
_RETRY_PAUSE = 1.0
_MAX_PAUSE = 60.0


class _Rehandshake(Exception):
    """The server forgot this client: handshake and subscribe again."""


class StreamingSession:
    """One CometD client for the channels given.

    ``replay_from(channel)`` returns the replay id to resume after (or None
    for new events only); it is called at every (re)subscribe, and
    ``on_subscribed()`` after every successful one. When a stored replay id
    is past the org's retention, the channel resumes at the tip and, once
    subscribed, ``on_replay_lost(channel)`` is called so the caller can
    catch up on the gap by other means (a query).
    """

    def __init__(
        self,
        client: SalesforceClient,
        channels: Iterable[str],
        replay_from: Callable[[str], int | None],
        on_subscribed: Callable[[], None] | None = None,
        on_replay_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.channels = list(channels)
        self.replay_from = replay_from
        self.on_subscribed = on_subscribed
        self.on_replay_lost = on_replay_lost
        self._lost: set[str] = set()
        self.client_id: str | None = None
        self.poll_timeout = 110.0
        self.running = True
        self._message_id = 0
        self._replay_fallback: dict[str, int] = {}

    @property
    def url(self) -> str:
        session = self.client.session
        return f"{session.instance_url}/cometd/{self.client.api_version}"

    def events(self) -> Iterator[dict[str, Any]]:
        """Yield event messages one by one; see ``batches()``."""
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[dict[str, Any]]]:
        """Yield the event messages of each connect reply that has any, as a
        list in delivery order, until ``stop()``; reconnect as needed.

        Nothing ends the stream but ``stop()``: an org that is down, a login
        refused or a subscription refused is logged and tried again after a
        pause that doubles up to a minute.
        """
        pause = _RETRY_PAUSE
        while self.running:
            try:
                self.handshake()
                self.subscribe_all()
                pause = _RETRY_PAUSE
                while self.running:
                    batch = self.connect()
                    if batch:
                        yield batch
            except _Rehandshake:
                log.info("streaming: server asked for a new handshake")
            except SessionExpired:
                log.info("streaming: session refused, logging in again")
                self._relogin()
            except SalesforceError as exc:
                log.warning("streaming: %s; trying again in %.0f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
            self.client_id = None

    def _relogin(self) -> None:
        try:
            self.client.relogin(stale=self.client.session)
        except SalesforceError as exc:
            log.warning("streaming: login failed: %s", exc)
            time.sleep(_RETRY_PAUSE)

    def stop(self) -> None:
        self.running = False

    # -- Bayeux messages -------------------------------------------------

    def handshake(self) -> None:
        reply = self._send(
            {
                "channel": "/meta/handshake",
                "version": "1.0",
                "minimumVersion": "1.0",
                "supportedConnectionTypes": ["long-polling"],
            }
        )[0]
        if not reply.get("successful"):
            raise _failure(reply, "handshake")
        self.client_id = reply["clientId"]

    def subscribe_all(self) -> None:
        messages = []
        for channel in self.channels:
            message: dict[str, Any] = {
                "channel": "/meta/subscribe",
                "clientId": self.client_id,
                "subscription": channel,
            }
            replay_id = self._replay_fallback.get(channel)
            if replay_id is None:
                replay_id = self.replay_from(channel)
            if replay_id is not None:
                message["ext"] = {"replay": {channel: replay_id}}
            messages.append(message)
            log.info(
                "streaming: subscribing to %s after replay id %s", channel, replay_id
            )
        for reply in self._send(*messages):
            if reply.get("channel") != "/meta/subscribe" or reply.get("successful"):
                continue
            channel = reply.get("subscription", "")
            if str(reply.get("error", "")).startswith("400::The replayId"):
                # The stored id is past the org's retention: what happened
                # since is no longer in the stream. Take new events from now
                # on, then let the caller catch up on the gap.
                log.warning(
                    "streaming: replay id for %s is past retention; "
                    "resuming at the tip and catching up",
                    channel,
                )
                self._replay_fallback[channel] = REPLAY_NEW
                self._lost.add(channel)
                raise _Rehandshake(reply["error"])
            raise _failure(reply, f"subscribe to {channel}")
        # Every channel is subscribed: a fallback has done its work.
        self._replay_fallback.clear()
        if self.on_subscribed is not None:
            self.on_subscribed()
        while self._lost:
            channel = self._lost.pop()
            if self.on_replay_lost is not None:
                self.on_replay_lost(channel)

    def connect(self) -> list[dict[str, Any]]:
        replies = self._send(
            {
                "channel": "/meta/connect",
                "clientId": self.client_id,
                "connectionType": "long-polling",
            },
            timeout=self.poll_timeout + _NETWORK_MARGIN,
        )
        events = []
        for reply in replies:
            channel = reply.get("channel", "")
            if channel == "/meta/connect":
                self._follow_advice(reply)
            elif not channel.startswith("/meta/"):
                events.append(reply)
        return events

    def disconnect(self) -> None:
        if self.client_id is None:
            return
        with contextlib.suppress(StreamingError, ServerUnavailable, SessionExpired):
            self._send({"channel": "/meta/disconnect", "clientId": self.client_id})
        self.client_id = None

    def _follow_advice(self, reply: dict[str, Any]) -> None:
        advice = reply.get("advice") or {}
        if "timeout" in advice:
            self.poll_timeout = advice["timeout"] / 1000.0
        if reply.get("successful"):
            return
        error = str(reply.get("error", ""))
        if error.startswith("401"):
            raise SessionExpired(f"streaming connect refused: {error}")
        if advice.get("reconnect") == "none":
            raise StreamingError(f"streaming connect refused for good: {error}")
        raise _Rehandshake(error)

    def _send(self, *messages: dict[str, Any], timeout: float = 30.0) -> list[dict]:
        for message in messages:
            self._message_id += 1
            message["id"] = str(self._message_id)
        session = self.client.session
        try:
            response = self.client.http.post(
                self.url,
                json=list(messages),
                headers={"Authorization": f"Bearer {session.access_token}"},
                timeout=timeout,
                verify=self.client.verify,
            )
        except requests.RequestException as exc:
            raise ServerUnavailable(
                f"streaming: could not reach Salesforce: {type(exc).__name__}"
            ) from exc
        if response.status_code == 401:
            raise SessionExpired("streaming: HTTP 401")
        if response.status_code != 200:
            raise ServerUnavailable(f"streaming: HTTP {response.status_code}")
        return response.json()


def _failure(reply: dict[str, Any], what: str) -> Exception:
    error = str(reply.get("error", ""))
    if error.startswith("401") or "401" in str(reply.get("ext", "")):
        return SessionExpired(f"streaming {what} refused: {error}")
    if error.startswith("403"):
        return _Rehandshake(error)
    return StreamingError(f"streaming {what} failed: {error}")
