"""Source tracking: remember, across services, that a change came from Salesforce.

A worker that writes to the platform on Salesforce's behalf marks its context;
nameko copies worker context data into the headers of every RPC call and event
the worker makes, and the callee's context inherits it. So the event that the
platform emits for that change still says where it came from, and the sync can
drop it instead of sending it back up: the loop breaker for the platform side.

Usage::

    class Sync:
        source = SourceTracker()

        def write_down(self):
            with self.source.salesforce_change():
                self.contacts.update(...)   # its events carry the flag

        @event_handler("contacts", "contact_updated")
        def on_update(self, payload):
            if self.source.from_salesforce:
                return                       # our own echo: drop it
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

__all__ = ["SOURCE_KEY", "SourceTracker"]

SOURCE_KEY = "sourced_from_salesforce"


class Source:
    """A worker's view of where the change it handles came from."""

    def __init__(self, worker_ctx: WorkerContext) -> None:
        self._data = worker_ctx.data

    @property
    def from_salesforce(self) -> bool:
        """True when this call descends from a change made by Salesforce."""
        return bool(self._data.get(SOURCE_KEY))

    @contextmanager
    def salesforce_change(self) -> Iterator[None]:
        """Calls made inside carry the ``sourced_from_salesforce`` flag."""
        previous = self._data.get(SOURCE_KEY)
        self._data[SOURCE_KEY] = True
        try:
            yield
        finally:
            if previous is None:
                self._data.pop(SOURCE_KEY, None)
            else:
                self._data[SOURCE_KEY] = previous


class SourceTracker(DependencyProvider):
    """Gives each worker a ``Source``; consumes and sets ``sourced_from_salesforce``."""

    def get_dependency(self, worker_ctx: WorkerContext) -> Source:
        return Source(worker_ctx)
