"""Tasks: run another entrypoint of the service later, over AMQP.

A method decorated with ``@task`` consumes its own durable queue,
``<service>.task.<method>``, bound to the direct exchange ``<service>.tasks``.
The ``TaskScheduler`` dependency publishes ``{"args": [...], "kwargs": {...}}``
there, with the worker's context data in the headers (so, for instance,
``sourced_from_salesforce`` travels with the task), and returns once the
broker has confirmed the message: a scheduled task is not lost if the
scheduling process dies right after.

``@task`` entrypoints retry later with nameko-amqp-retry: stack
``@entrypoint_retry(retry_for=..., limit=..., schedule=(ms, ...))`` under
``@task``, one per error kind. The wait happens in RabbitMQ (per-delay TTL
queues that dead-letter back), not in a sleeping worker, so it survives a
restart of the service and works on a plain Debian RabbitMQ.

A task that fails for good (an error no retry covers, or out of retries) is
published to the durable queue ``<service>.dead-letters`` with its original
body and headers plus ``x-error``, ``x-error-type``, ``x-tries``,
``x-task``, ``x-original-exchange``, ``x-original-routing-key``,
``x-dead-letter-id`` and ``x-dead-lettered-at``. ``sfsync dead-letters``
lists and replays them.

Usage::

    class Sync:
        tasks = TaskScheduler()

        @event_handler("contacts", "contact_updated")
        def on_update(self, payload):
            self.tasks.schedule("push", payload["id"])

        @task
        @entrypoint_retry(retry_for=ServerUnavailable, limit=5, schedule=(1000,))
        def push(self, contact_id):
            ...
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.common import maybe_declare
from nameko.amqp.publish import Publisher as PublisherCore
from nameko.constants import AMQP_URI_CONFIG_KEY, DEFAULT_RETRY_POLICY
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider
from nameko.messaging import HeaderEncoder
from nameko_amqp_retry import Backoff
from nameko_amqp_retry.messaging import Consumer as RetryConsumer

__all__ = [
    "TaskEntrypoint",
    "TaskScheduler",
    "dead_letter_queue",
    "task",
    "task_exchange",
    "task_queue",
]

log = logging.getLogger(__name__)

BACKOFF_EXCHANGE = "backoff"


def task_exchange(service_name: str) -> Exchange:
    return Exchange(f"{service_name}.tasks", type="direct", durable=True)


def task_queue(service_name: str, method_name: str) -> Queue:
    return Queue(
        f"{service_name}.task.{method_name}",
        exchange=task_exchange(service_name),
        routing_key=method_name,
        durable=True,
    )


def dead_letter_queue(service_name: str) -> Queue:
    return Queue(f"{service_name}.dead-letters", durable=True)


def tries_so_far(headers: dict[str, Any]) -> int:
    """How many times this message has been handled, counting this one."""
    retries = sum(
        int(death.get("count", 0))
        for death in headers.get("x-death") or ()
        if death.get("exchange") == BACKOFF_EXCHANGE
    )
    return retries + 1


class TaskEntrypoint(RetryConsumer):
    """Entrypoint: runs the method for each task message on its queue.

    Consumes ``{"args", "kwargs"}`` from ``<service>.task.<method>``; a
    ``Backoff`` raised by ``@entrypoint_retry`` republishes it for later;
    any other failure moves it to ``<service>.dead-letters``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queue=None, **kwargs)

    def setup(self) -> None:
        self.queue = task_queue(self.container.service_name, self.method_name)
        super().setup()

    def handle_message(self, body: Any, message: Any) -> None:
        args = body.get("args", []) if isinstance(body, dict) else []
        kwargs = body.get("kwargs", {}) if isinstance(body, dict) else {}
        context_data = self.unpack_message_headers(message)
        handle_result = _partial_result(self.handle_result, message)
        self.container.spawn_worker(
            self, args, kwargs, context_data=context_data, handle_result=handle_result
        )

    def handle_message_processed(
        self, message: Any, result: Any = None, exc_info: Any = None
    ) -> None:
        if exc_info is not None and not isinstance(exc_info[1], Backoff):
            self.dead_letter(message, exc_info[1])
        self.queue_consumer.ack_message(message)

    def dead_letter(self, message: Any, error: BaseException) -> None:
        headers = dict(message.headers or {})
        tries = tries_so_far(headers)
        shown = _root_cause(error)
        text = str(shown) if shown is error else f"{shown} ({error})"
        headers.update(
            {
                "x-task": self.method_name,
                "x-error": text[:1000],
                "x-error-type": type(shown).__name__,
                "x-tries": tries,
                "x-original-exchange": message.delivery_info.get("exchange", ""),
                "x-original-routing-key": message.delivery_info.get("routing_key", ""),
                "x-dead-letter-id": uuid.uuid4().hex,
                "x-dead-lettered-at": datetime.datetime.now(datetime.UTC).isoformat(),
            }
        )
        queue = dead_letter_queue(self.container.service_name)
        publisher = PublisherCore(self.container.config[AMQP_URI_CONFIG_KEY])
        publisher.publish(
            message.body,
            exchange=None,
            routing_key=queue.name,
            headers=headers,
            declare=[queue],
            content_type=message.content_type,
            retry=True,
            retry_policy=DEFAULT_RETRY_POLICY,
        )
        log.error(
            "task %s dead-lettered after %s tries: %s: %s",
            self.method_name,
            tries,
            type(shown).__name__,
            text,
        )


def _root_cause(error: BaseException) -> BaseException:
    """The error behind the retry machinery's own (Backoff, Expired)."""
    while isinstance(error, Backoff | Backoff.Expired) and error.__cause__:
        error = error.__cause__
    return error


def _partial_result(handle_result: Callable, message: Any) -> Callable:
    def bound(worker_ctx: WorkerContext, result: Any, exc_info: Any) -> Any:
        return handle_result(message, worker_ctx, result, exc_info)

    return bound


task = TaskEntrypoint.decorator


class Tasks:
    """A worker's handle for scheduling tasks of its own service."""

    def __init__(self, schedule: Callable[[str, tuple, dict], None]) -> None:
        self._schedule = schedule

    def schedule(self, method: str | Callable, *args: Any, **kwargs: Any) -> None:
        """Queue ``method(*args, **kwargs)`` to run as a task; returns once
        RabbitMQ has the message."""
        name = method if isinstance(method, str) else method.__name__
        self._schedule(name, args, kwargs)


class TaskScheduler(DependencyProvider, HeaderEncoder):
    """Gives workers ``Tasks``: publishes to this service's task exchange."""

    def setup(self) -> None:
        self.amqp_uri = self.container.config[AMQP_URI_CONFIG_KEY]
        self.publisher = PublisherCore(self.amqp_uri)
        self._declared: set[str] = set()

    def _declare(self, queue: Queue) -> None:
        if queue.name in self._declared:
            return
        with Connection(self.amqp_uri) as connection:
            maybe_declare(queue, connection.default_channel)
        self._declared.add(queue.name)

    def get_dependency(self, worker_ctx: WorkerContext) -> Tasks:
        service_name = self.container.service_name

        def schedule(name: str, args: tuple, kwargs: dict) -> None:
            queue = task_queue(service_name, name)
            self._declare(queue)
            self.publisher.publish(
                {"args": list(args), "kwargs": kwargs},
                exchange=queue.exchange,
                routing_key=name,
                headers=self.get_message_headers(worker_ctx),
                mandatory=True,
            )

        return Tasks(schedule)
