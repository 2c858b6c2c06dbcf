"""Read and replay a service's dead letters (tasks that failed for good).

``list_dead_letters`` looks without taking: every message goes back to the
queue. ``replay`` publishes the chosen ones to where they first went, with
their retry history cleared, and removes them from the dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu import Connection, Exchange, Message

from sfsync.extensions.tasks import dead_letter_queue

__all__ = ["DeadLetter", "list_dead_letters", "replay"]

_DEAD_LETTER_HEADERS = (
    "x-death",
    "x-error",
    "x-error-type",
    "x-tries",
    "x-task",
    "x-original-exchange",
    "x-original-routing-key",
    "x-dead-letter-id",
    "x-dead-lettered-at",
    "backoff",
)


@dataclass
class DeadLetter:
    id: str
    task: str
    body: Any
    error_type: str
    error: str
    tries: int
    dead_lettered_at: str
    headers: dict[str, Any]

    def line(self) -> str:
        args = json.dumps(
            self.body.get("args") if isinstance(self.body, dict) else self.body
        )
        return (
            f"{self.id}  {self.dead_lettered_at}  {self.task}{args}  "
            f"after {self.tries} tries: {self.error_type}: {self.error}"
        )


def _dead_letter(message: Message) -> DeadLetter:
    headers = dict(message.headers or {})
    return DeadLetter(
        id=str(headers.get("x-dead-letter-id", "")),
        task=str(headers.get("x-task", "")),
        body=message.decode(),
        error_type=str(headers.get("x-error-type", "")),
        error=str(headers.get("x-error", "")),
        tries=int(headers.get("x-tries", 0)),
        dead_lettered_at=str(headers.get("x-dead-lettered-at", "")),
        headers=headers,
    )


@contextmanager
def _messages(amqp_uri: str, service: str) -> Iterator[list[Message]]:
    """Every message on the queue, held unacknowledged until the end."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        queue = dead_letter_queue(service)(channel)
        queue.declare()
        messages = []
        while (message := queue.get(no_ack=False)) is not None:
            messages.append(message)
        try:
            yield messages
        finally:
            for message in messages:
                if not message.acknowledged:
                    message.requeue()
            channel.close()


def list_dead_letters(amqp_uri: str, service: str) -> list[DeadLetter]:
    with _messages(amqp_uri, service) as messages:
        return [_dead_letter(message) for message in messages]


def replay(
    amqp_uri: str, service: str, ids: Iterable[str] | None = None
) -> list[DeadLetter]:
    """Send dead letters back to their task queues; all of them if no ids."""
    wanted = set(ids) if ids is not None else None
    replayed = []
    with _messages(amqp_uri, service) as messages, Connection(amqp_uri) as out:
        producer = out.Producer()
        for message in messages:
            letter = _dead_letter(message)
            if wanted is not None and letter.id not in wanted:
                continue
            headers = {
                key: value
                for key, value in letter.headers.items()
                if key not in _DEAD_LETTER_HEADERS
            }
            producer.publish(
                message.body,
                exchange=Exchange(letter.headers.get("x-original-exchange", "")),
                routing_key=letter.headers.get("x-original-routing-key", ""),
                headers=headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                delivery_mode=2,
                mandatory=True,
            )
            message.ack()
            replayed.append(letter)
    return replayed
