"""Debounce: a burst of calls for one key runs twice, the second at the end.

Run by tests/integration/test_docs_examples.py: the test starts ``SERVICES``
on RabbitMQ with ``REDIS_URIS: {sync: redis://...}`` and calls ``main``.
"""

import eventlet
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.extensions.debounce import Debounce, debounced
from sfsync.testing.fixtures import wait_for

PRICES = {"pen": 1}
PUSHED: list[int] = []


class Prices:
    name = "prices"

    debounce = Debounce("sync")  # the Redis named "sync" in REDIS_URIS

    @rpc
    @debounced("price:{0}")
    def push(self, item):
        PUSHED.append(PRICES[item])  # reads the state when it runs
        eventlet.sleep(0.3)  # a slow call to Salesforce


SERVICES = (Prices,)


def main(config):
    with ClusterRpcProxy(config) as cluster:
        first = cluster.prices.push.call_async("pen")
        wait_for(lambda: PUSHED, what="the first run")
        for price in (2, 3, 4, 5):
            PRICES["pen"] = price
            cluster.prices.push("pen")  # marked pending, returns at once
        first.result()  # ends after the one extra run
    return PUSHED  # [1, 5]
