"""Debounce: bursts of calls for one key collapse to one run that sees the end.

``@debounced("contact:up:{0}")`` on a service method (under its entrypoint
decorator) runs the method at most once at a time per key, across every
instance sharing the Redis. A call that finds the key running does not run:
it marks the key pending and returns at once. When the running call ends it
looks at the mark and, if set, runs once more; so any number of calls during
a run cause exactly one more run, and that run reads the latest state.

The lock is kept alive while the method runs (re-armed every third of its
lifetime), so it outlives the slowest call, yet it lapses soon after a
process dies. The pending mark remembers how to call the method again;
``Debouncer.stale()`` lists marks whose lock is gone (their holder died), so a
timer can schedule them again and no change is left behind.

``Debouncer.run_many`` does the same for many keys in a few Redis round
trips, for a worker that syncs many records at once.

Why not ddebounce (the talk's library, which works here): its lock lives 30 s
whatever the call takes, it repeats with the first caller's arguments, and a
process that dies mid-run leaves the pending calls with nobody to run them.

Config: ``REDIS_URIS: {<redis_key>: redis://...}``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from nameko.containers import WorkerContext

from sfsync.extensions.lock import KeptLock, KeptLocks, RedisBacked

__all__ = ["Debounce", "Debouncer", "debounced"]

log = logging.getLogger(__name__)

LOCK_PREFIX = "sfsync:debounce:lock:"
PENDING_KEY = "sfsync:debounce:pending"


class Debouncer:
    """A worker's view: run a call under a key, or mark the key pending."""

    def __init__(self, client: redis.Redis, lock_ttl: float) -> None:
        self._client = client
        self._ttl = lock_ttl

    def run(self, key: str, method: str, args: tuple, call: Callable[[], Any]) -> bool:
        """Run ``call`` unless ``key`` is running; True if it ran here.

        ``method`` and ``args`` say how to call again; they are stored with
        the pending mark.
        """
        ran = False
        while True:
            lock = KeptLock(self._client, LOCK_PREFIX + key, self._ttl)
            if not lock.acquire():
                self._client.hset(PENDING_KEY, key, json.dumps([method, list(args)]))
                if self._client.exists(LOCK_PREFIX + key):
                    log.debug("debounce: %s is running, marked pending", key)
                    return ran
                continue  # the runner ended before it could see the mark
            self._client.hdel(PENDING_KEY, key)
            try:
                call()
                ran = True
            finally:
                lock.release()
            if not self._client.hexists(PENDING_KEY, key):
                return ran
            log.debug("debounce: %s changed during the run, running again", key)

    def run_many(
        self, method: str, calls: dict[str, Any], call: Callable[[list], Any]
    ) -> None:
        """Debounce many keys at once: ``calls`` maps each key to the one
        argument of ``method`` for it; ``call(arguments)`` runs for the keys
        that are free, in bulk, as often as needed.

        Each key behaves as under ``run``: a key running elsewhere is marked
        pending (as ``method(argument)``, so that run, or the sweep, calls it
        again); a key marked during this run runs once more. Redis is asked
        a few times per round, not per key.
        """
        todo = dict(calls)
        while todo:
            lock = KeptLocks(
                self._client, [LOCK_PREFIX + key for key in todo], self._ttl
            )
            taken = {name[len(LOCK_PREFIX) :] for name in lock.acquire()}
            retry = self._mark_pending(
                {key: [method, [todo[key]]] for key in todo if key not in taken}
            )
            held = [key for key in todo if key in taken]
            if not held:
                todo = {key: todo[key] for key in retry}
                continue
            self._client.hdel(PENDING_KEY, *held)
            try:
                call([todo[key] for key in held])
            finally:
                lock.release()
            marked = self._client.hmget(PENDING_KEY, held)
            again = [key for key, mark in zip(held, marked, strict=True) if mark]
            if again:
                log.debug("debounce: %s keys changed during the run", len(again))
            todo = {key: todo[key] for key in (*again, *retry)}

    def _mark_pending(self, marks: dict[str, list]) -> list[str]:
        """Mark busy keys pending; the keys whose runner ended meanwhile
        (nobody would see their mark: the caller tries them again)."""
        if not marks:
            return []
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(PENDING_KEY, mapping={k: json.dumps(v) for k, v in marks.items()})
        for key in marks:
            pipe.exists(LOCK_PREFIX + key)
        running = pipe.execute()[1:]
        return [key for key, busy in zip(marks, running, strict=True) if not busy]

    def stale(self) -> Iterator[tuple[str, list]]:
        """Pending calls whose key nobody holds: their runner went away."""
        for key, value in self._client.hgetall(PENDING_KEY).items():
            key = key.decode() if isinstance(key, bytes) else key
            if not self._client.exists(LOCK_PREFIX + key):
                method, args = json.loads(value)
                yield method, args


class Debounce(RedisBacked):
    """Gives workers a ``Debouncer`` on the Redis named ``redis_key``.

    ``lock_ttl`` (seconds) is how long a lock outlives a dead holder.
    """

    def __init__(self, redis_key: str, lock_ttl: float = 15.0) -> None:
        super().__init__(redis_key)
        self.lock_ttl = lock_ttl

    def get_dependency(self, worker_ctx: WorkerContext) -> Debouncer:
        assert self.client is not None
        return Debouncer(self.client, self.lock_ttl)


def debounced(
    key_format: str, dependency: str = "debounce"
) -> Callable[[Callable], Callable]:
    """Debounce a service method per key; ``key_format.format(*args)``.

    ``dependency`` names the service's ``Debounce`` attribute.
    """

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any) -> None:
            key = key_format.format(*args)
            debouncer: Debouncer = getattr(self, dependency)
            debouncer.run(key, method.__name__, args, lambda: method(self, *args))

        return wrapper

    return decorate
