"""Per-record locks in Redis, so two workers never sync one record at once.

``with self.locks.hold("contact:42"):`` waits until no other worker, in any
instance, holds that name, then holds it until the block ends. While held,
the lock is re-armed every third of its lifetime, so it outlives the slowest
call inside; if the process dies, it lapses within ``ttl`` seconds. Release
deletes the lock only if it is still ours.

``with self.locks.hold_free(names) as held:`` takes, in one round trip, those
of many names that are free, and does not wait for the others: a bulk worker
does what it holds and hands the rest on.

``KeptLocks`` (and ``KeptLock``, one of them) is the primitive underneath,
shared with ``debounce``.

Config: ``REDIS_URIS: {<key>: redis://...}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import eventlet
import redis
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

__all__ = ["KeptLock", "KeptLocks", "LockTimeout", "Locks", "RecordLock", "RedisBacked"]

_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""
_REARM = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
"""


class LockTimeout(RuntimeError):
    pass


class KeptLocks:
    """Redis locks taken together: try each in one round trip, keep the ones
    taken alive while held, give them back in one round trip."""

    def __init__(self, client: redis.Redis, keys: Iterable[str], ttl: float) -> None:
        self.client = client
        self.keys = list(dict.fromkeys(keys))
        self.ttl_ms = max(int(ttl * 1000), 30)
        self.token = uuid.uuid4().hex
        self.held: list[str] = []
        self._keeper: Any = None

    def acquire(self) -> list[str]:
        """Take every key nobody holds; the keys taken (also in ``held``)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys:
            pipe.set(key, self.token, nx=True, px=self.ttl_ms)
        taken = [key for key, ok in zip(self.keys, pipe.execute(), strict=True) if ok]
        self.held.extend(taken)
        if self.held and self._keeper is None:
            self._keeper = eventlet.spawn(self._rearm)
        return taken

    def release(self) -> None:
        if self._keeper is not None:
            self._keeper.kill()
            self._keeper = None
        self._each_held(_RELEASE)
        self.held = []

    def _rearm(self) -> None:
        while True:
            eventlet.sleep(self.ttl_ms / 3000)
            self._each_held(_REARM, self.ttl_ms)

    def _each_held(self, script: str, *args: Any) -> None:
        if not self.held:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in self.held:
            pipe.eval(script, 1, key, self.token, *args)
        pipe.execute()


class KeptLock(KeptLocks):
    """One Redis lock: try to take it, keep it alive while held, give it back."""

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        super().__init__(client, [key], ttl)
        self.key = key

    def acquire(self) -> bool:  # type: ignore[override]
        return bool(super().acquire())


class Locks:
    """A worker's handle on named locks."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float, wait: float):
        self._client = client
        self._prefix = prefix
        self._ttl = ttl
        self._wait = wait

    @contextmanager
    def hold_free(self, names: Iterable[str]) -> Iterator[list[str]]:
        """Hold those of ``names`` that nobody holds, without waiting: yields
        the names held (a bulk caller hands the others on; waiting while
        holding some could deadlock two bulk callers)."""
        names = list(names)
        locks = KeptLocks(
            self._client, [self._prefix + name for name in names], self._ttl
        )
        taken = set(locks.acquire())
        try:
            yield [name for name in names if self._prefix + name in taken]
        finally:
            locks.release()

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock ``name``; raise LockTimeout after waiting ``wait`` s."""
        lock = KeptLock(self._client, self._prefix + name, self._ttl)
        deadline = time.monotonic() + self._wait
        pause = 0.005
        while not lock.acquire():
            if time.monotonic() > deadline:
                raise LockTimeout(f"{name} stayed locked for {self._wait:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        try:
            yield
        finally:
            lock.release()


class RedisBacked(DependencyProvider):
    """A provider holding one Redis client, from ``REDIS_URIS[redis_key]``."""

    def __init__(self, redis_key: str) -> None:
        self.redis_key = redis_key
        self.client: redis.Redis | None = None

    def setup(self) -> None:
        uri = self.container.config["REDIS_URIS"][self.redis_key]
        self.client = redis.Redis.from_url(uri)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()

    def kill(self) -> None:
        self.stop()


class RecordLock(RedisBacked):
    """Gives workers ``Locks`` on the Redis named ``redis_key`` in REDIS_URIS."""

    def __init__(
        self,
        redis_key: str,
        prefix: str = "sfsync:lock:",
        ttl: float = 15.0,
        wait: float = 120.0,
    ) -> None:
        super().__init__(redis_key)
        self.prefix = prefix
        self.ttl = ttl
        self.wait = wait

    def get_dependency(self, worker_ctx: WorkerContext) -> Locks:
        assert self.client is not None
        return Locks(self.client, self.prefix, self.ttl, self.wait)
