"""Bayeux long-polling endpoint at `/cometd/{ver}`: always HTTP 200, errors inside."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from aiohttp import web

from sfsync.emulator.org import Org
from sfsync.emulator.rest import session_token
from sfsync.emulator.streaming import BayeuxClient, StreamingHub

logger = logging.getLogger(__name__)

_UNKNOWN_CLIENT_ADVICE = {"reconnect": "handshake", "interval": 0}


def _reply(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    reply: dict[str, Any] = {"channel": message.get("channel")}
    if "id" in message:
        # Echo the id exactly as sent: ints, numeric strings and base-36 all occur.
        reply["id"] = message["id"]
    reply.update(fields)
    return reply


class CometdEndpoint:
    """Turns Bayeux message batches into hub calls."""

    def __init__(self, org: Org, hub: StreamingHub) -> None:
        self.org = org
        self.hub = hub

    async def handle(self, request: web.Request) -> web.Response:
        try:
            payload = json.loads(await request.read() or b"[]")
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        messages = payload if isinstance(payload, list) else [payload]
        messages = [m for m in messages if isinstance(m, dict)]
        if not messages:
            body = [{"successful": False, "error": "400::Invalid Bayeux message"}]
            return web.json_response(body)
        token = session_token(request)
        user = self.org.session_user(token)
        replies: list[dict[str, Any]] = []
        connect: dict[str, Any] | None = None
        handshaken = False
        # Non-connect messages first, so `[connect, subscribe]` batches work.
        for message in messages:
            channel = message.get("channel")
            if channel == "/meta/connect" and connect is None:
                connect = message
                continue
            if user is None:
                replies.append(self._auth_failure(message, token))
                continue
            if channel == "/meta/handshake":
                client = self.hub.handshake(user["Id"])
                handshaken = True
                replies.append(
                    _reply(
                        message,
                        version="1.0",
                        minimumVersion="1.0",
                        clientId=client.client_id,
                        supportedConnectionTypes=["long-polling"],
                        successful=True,
                        ext={"replay": True, "payload.format": True},
                    )
                )
            else:
                replies.append(self._meta(message))
        if connect is not None:
            if user is None:
                replies.append(self._auth_failure(connect, token))
            else:
                replies.extend(await self._connect(request, connect))
        response = web.json_response(replies)
        if handshaken:
            response.set_cookie("BAYEUX_BROWSER", secrets.token_hex(12), path="/")
        return response

    @staticmethod
    def _auth_failure(message: dict[str, Any], token: str | None) -> dict[str, Any]:
        reason = (
            "401::Authentication invalid"
            if token
            else ("401::Request requires authentication")
        )
        if message.get("channel") == "/meta/handshake":
            return _reply(
                message,
                successful=False,
                error="403::Handshake denied",
                advice={"reconnect": "none", "interval": 0},
                ext={"sfdc": {"failureReason": reason}},
            )
        return _reply(
            message,
            successful=False,
            error=reason,
            advice={"reconnect": "none", "interval": 0},
        )

    def _unknown_client(self, message: dict[str, Any]) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if "clientId" in message:
            extra["clientId"] = message["clientId"]
        if "subscription" in message:
            extra["subscription"] = message["subscription"]
        return _reply(
            message,
            successful=False,
            error="403::Unknown client",
            advice=_UNKNOWN_CLIENT_ADVICE,
            **extra,
        )

    def _meta(self, message: dict[str, Any]) -> dict[str, Any]:
        channel = message.get("channel")
        if channel not in ("/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect"):
            return _reply(
                message, successful=False, error=f"403::Publish denied {channel}"
            )
        client = self.hub.touch(message.get("clientId"))
        if client is None:
            return self._unknown_client(message)
        if channel == "/meta/disconnect":
            self.hub.disconnect(client)
            return _reply(message, clientId=client.client_id, successful=True)
        subscription = message.get("subscription")
        if not isinstance(subscription, str):
            return _reply(
                message,
                clientId=client.client_id,
                successful=False,
                error="400::Missing subscription",
            )
        if channel == "/meta/unsubscribe":
            self.hub.unsubscribe(client, subscription)
            return _reply(
                message,
                clientId=client.client_id,
                subscription=subscription,
                successful=True,
            )
        return self._subscribe(client, message, subscription)

    def _subscribe(
        self, client: BayeuxClient, message: dict[str, Any], subscription: str
    ) -> dict[str, Any]:
        ext = message.get("ext")
        replay = ext.get("replay") if isinstance(ext, dict) else None
        error = self.hub.subscribe(client, subscription, replay)
        fields: dict[str, Any] = {
            "clientId": client.client_id,
            "subscription": subscription,
            "successful": error is None,
        }
        if error is not None:
            fields["error"] = error
            logger.info("subscribe to %s refused: %s", subscription, error)
        return _reply(message, **fields)

    async def _connect(
        self, request: web.Request, message: dict[str, Any]
    ) -> list[dict[str, Any]]:
        client = self.hub.touch(message.get("clientId"))
        if client is None:
            return [self._unknown_client(message)]

        def still_open() -> bool:
            transport = request.transport
            return transport is not None and not transport.is_closing()

        events = await self.hub.connect(client, still_open)
        if client.client_id not in self.hub.clients:
            return events + [self._unknown_client(message)]
        reply = _reply(
            message, clientId=client.client_id, successful=True, advice=self.hub.advice
        )
        return events + [reply]
