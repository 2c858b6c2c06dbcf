"""Per-record locks in Redis, so two workers never sync one record at once.

``with self.locks.hold("contact:up:42"):`` waits until no other worker, in any
instance, holds that name. The lock expires by itself after ``ttl`` seconds
so a killed worker cannot block a record for ever; keep ``ttl`` above the
slowest Salesforce call. Release only deletes the lock if it is still ours.

Config: ``REDIS_URIS: {<key>: redis://...}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from nameko.containers import WorkerContext
from nameko.extensions import DependencyProvider

__all__ = ["LockTimeout", "RecordLock", "Locks"]

_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


class LockTimeout(RuntimeError):
    pass


class Locks:
    def __init__(self, client: redis.Redis, prefix: str, ttl: float, wait: float):
        self._client = client
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)
        self._wait = wait

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock ``name``; raise LockTimeout after waiting ``wait`` s."""
        key = f"{self._prefix}{name}"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait
        pause = 0.005
        while not self._client.set(key, token, nx=True, px=self._ttl_ms):
            if time.monotonic() > deadline:
                raise LockTimeout(f"{name} stayed locked for {self._wait:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        try:
            yield
        finally:
            self._client.eval(_RELEASE, 1, key, token)


class RecordLock(DependencyProvider):
    """Gives workers ``Locks`` on the Redis named ``redis_key`` in REDIS_URIS."""

    def __init__(
        self,
        redis_key: str,
        prefix: str = "sfsync:lock:",
        ttl: float = 120.0,
        wait: float = 300.0,
    ) -> None:
        self.redis_key = redis_key
        self.prefix = prefix
        self.ttl = ttl
        self.wait = wait
        self.client: redis.Redis | None = None

    def setup(self) -> None:
        uri = self.container.config["REDIS_URIS"][self.redis_key]
        self.client = redis.Redis.from_url(uri)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()

    def kill(self) -> None:
        self.stop()

    def get_dependency(self, worker_ctx: WorkerContext) -> Locks:
        assert self.client is not None
        return Locks(self.client, self.prefix, self.ttl, self.wait)
