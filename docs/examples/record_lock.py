"""Record locks: concurrent read-modify-write on one record loses nothing.

Run by tests/integration/test_docs_examples.py: the test starts ``SERVICES``
on RabbitMQ with ``REDIS_URIS: {sync: redis://...}`` and calls ``main``.
"""

import eventlet
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.extensions.lock import RecordLock

TAGS: dict[int, list[str]] = {}


class Tagger:
    name = "tagger"

    locks = RecordLock("sync", ttl=5, wait=10)  # Redis "sync" in REDIS_URIS

    @rpc
    def tag(self, record_id, tag):
        with self.locks.hold(f"record:{record_id}"):  # or LockTimeout
            tags = list(TAGS.get(record_id, []))
            eventlet.sleep(0.05)  # read, a slow call, then write
            TAGS[record_id] = tags + [tag]


SERVICES = (Tagger,)


def main(config):
    with ClusterRpcProxy(config) as cluster:
        calls = [cluster.tagger.tag.call_async(7, f"t{n}") for n in range(5)]
        for call in calls:
            call.result()
    return sorted(TAGS[7])  # all five; without the lock, most are lost
