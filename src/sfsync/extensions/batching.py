"""Batching by coalescing: workers ask for one record each, calls go out in bulk.

Each worker keeps its own task, retries and acknowledgement; only the call
to the other system is shared. ``Coalescer.submit(item)`` parks the worker
until its batch goes out, then hands it its own row's result, or raises its
own row's error, so one bad row fails alone. A batch goes out when it holds
``max_size`` items or ``max_wait`` seconds after its first item: a single
change does not wait for a batch to fill.

``Batches`` is the nameko dependency: a worker's ``submit(name, item, flush)``
joins the container's batch called ``name``; ``submit_many(name, items,
flush)`` joins it with many items and gets a result or exception for each.
``flush(items)`` (the first item's, so it may use that worker's RPC proxy,
alive while it waits) returns one result or exception per item, in order.

Config: ``BATCHING: {ENABLED: true, SIZE: 200, WAIT_MS: 20}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import eventlet
from eventlet.event import Event
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

__all__ = ["Batches", "Coalescer", "batching_config"]

log = logging.getLogger(__name__)

Flush = Callable[[list[Any]], list[Any]]


class Coalescer:
    """One batch at a time of items for the same bulk call."""

    def __init__(self, max_size: int = 200, max_wait: float = 0.02) -> None:
        self.max_size = max_size
        self.max_wait = max_wait
        self._items: list[Any] = []
        self._waiting: list[Event] = []
        self._flush: Flush | None = None
        self._timer: Any = None

    def submit(self, item: Any, flush: Flush) -> Any:
        """Add ``item``; block until its batch is sent; its result, or raise."""
        outcome = self._add(item, flush).wait()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def submit_many(self, items: list[Any], flush: Flush) -> list[Any]:
        """Add ``items``; block until all are sent; a result or an exception
        for each, in order (nothing is raised: each row has its own fate)."""
        events = [self._add(item, flush) for item in items]
        return [event.wait() for event in events]

    def _add(self, item: Any, flush: Flush) -> Event:
        done = Event()
        if not self._items:
            self._flush = flush
            self._timer = eventlet.spawn_after(self.max_wait, self._send)
        self._items.append(item)
        self._waiting.append(done)
        if len(self._items) >= self.max_size:
            self._send(cancel_timer=True)
        return done

    def _send(self, cancel_timer: bool = False) -> None:
        items, waiting, flush = self._items, self._waiting, self._flush
        timer = self._timer
        self._items, self._waiting, self._flush, self._timer = [], [], None, None
        if cancel_timer and timer is not None:
            # After the reset: cancelling yields, and a submit that runs
            # meanwhile must start the next batch, not join this one.
            timer.cancel()
        if not items or flush is None:
            return
        try:
            results = flush(items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"a batch of {len(items)} came back with {len(results)} results"
                )
        except Exception as exc:  # the whole call failed: every row shares it
            results = [exc] * len(items)
        log.debug("batch of %s sent", len(items))
        for event, result in zip(waiting, results, strict=True):
            event.send(result)


def batching_config(config: dict[str, Any]) -> tuple[bool, int, float]:
    """(enabled, size, wait in seconds) from the ``BATCHING`` config section."""
    section = config.get("BATCHING") or {}
    enabled = str(section.get("ENABLED", False)).lower() in ("1", "true", "yes")
    size = max(1, min(int(section.get("SIZE", 200)), 200))
    wait = max(0.0, float(section.get("WAIT_MS", 20)) / 1000)
    return enabled, size, wait


class Batch:
    """A worker's view: join a named batch of the container."""

    def __init__(self, provider: Batches) -> None:
        self._provider = provider

    @property
    def enabled(self) -> bool:
        return self._provider.enabled

    def submit(self, name: str, item: Any, flush: Flush) -> Any:
        return self._provider.coalescer(name).submit(item, flush)

    def submit_many(self, name: str, items: list[Any], flush: Flush) -> list[Any]:
        return self._provider.coalescer(name).submit_many(items, flush)


class Batches(DependencyProvider):
    """Gives workers a ``Batch``; one coalescer per name per container."""

    def setup(self) -> None:
        self.enabled, self.size, self.wait = batching_config(self.container.config)
        self._coalescers: dict[str, Coalescer] = {}

    def coalescer(self, name: str) -> Coalescer:
        if name not in self._coalescers:
            self._coalescers[name] = Coalescer(self.size, self.wait)
        return self._coalescers[name]

    def get_dependency(self, worker_ctx: WorkerContext) -> Batch:
        return Batch(self)
