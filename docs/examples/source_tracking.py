"""Source tracking: the sync's own writes come back as events it can drop.

Run by tests/integration/test_docs_examples.py: the test starts ``SERVICES``
on RabbitMQ and calls ``main(config)``.
"""

from nameko.events import EventDispatcher, event_handler
from nameko.rpc import RpcProxy, rpc
from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.extensions.source import SourceTracker
from sfsync.testing.fixtures import wait_for

PUSHED_UP, DROPPED = [], []


class Platform:
    name = "platform"

    dispatch = EventDispatcher()

    @rpc
    def save(self, record_id):
        self.dispatch("saved", {"id": record_id})  # headers carry context data


class Sync:
    name = "sync"

    source = SourceTracker()
    platform = RpcProxy("platform")

    @rpc
    def write_down(self, record_id):  # a change that came from Salesforce
        with self.source.salesforce_change():
            self.platform.save(record_id)

    @event_handler("platform", "saved")
    def on_saved(self, payload):
        echo = self.source.from_salesforce
        (DROPPED if echo else PUSHED_UP).append(payload["id"])


SERVICES = (Platform, Sync)


def main(config):
    with ClusterRpcProxy(config) as cluster:
        cluster.platform.save("by-a-user")
        cluster.sync.write_down("by-salesforce")
    wait_for(lambda: len(PUSHED_UP) + len(DROPPED) == 2, what="both events")
    return PUSHED_UP, DROPPED  # ["by-a-user"], ["by-salesforce"]
