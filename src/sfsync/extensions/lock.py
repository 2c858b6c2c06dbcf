"""Per-record locks in Redis, so two workers never sync one record at once.

``with self.locks.hold("contact:42"):`` waits until no other worker, in any
instance, holds that name, then holds it until the block ends. While held,
the lock is re-armed every third of its lifetime, so it outlives the slowest
call inside; if the process dies, it lapses within ``ttl`` seconds. Release
deletes the lock only if it is still ours.

``KeptLock`` is the primitive underneath, shared with ``debounce``.

Config: ``REDIS_URIS: {<key>: redis://...}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import eventlet
import redis
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

__all__ = ["KeptLock", "LockTimeout", "Locks", "RecordLock", "RedisBacked"]

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


class KeptLock:
    """One Redis lock: try to take it, keep it alive while held, give it back."""

    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(int(ttl * 1000), 30)
        self.token = uuid.uuid4().hex
        self._keeper: Any = None

    def acquire(self) -> bool:
        taken = self.client.set(self.key, self.token, nx=True, px=self.ttl_ms)
        if taken:
            self._keeper = eventlet.spawn(self._rearm)
        return bool(taken)

    def release(self) -> None:
        if self._keeper is not None:
            self._keeper.kill()
            self._keeper = None
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def _rearm(self) -> None:
        while True:
            eventlet.sleep(self.ttl_ms / 3000)
            self.client.eval(_REARM, 1, self.key, self.token, self.ttl_ms)


class Locks:
    """A worker's handle on named locks."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float, wait: float):
        self._client = client
        self._prefix = prefix
        self._ttl = ttl
        self._wait = wait

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
