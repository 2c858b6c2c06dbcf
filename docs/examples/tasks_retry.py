"""Tasks over AMQP: a retry that waits in RabbitMQ, and a dead letter.

Run by tests/integration/test_docs_examples.py: the test starts ``SERVICES``
on RabbitMQ and calls ``main(config)``.
"""

from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy
from nameko_amqp_retry import entrypoint_retry

from sfsync.deadletters import list_dead_letters
from sfsync.extensions.tasks import TaskScheduler, task
from sfsync.testing.fixtures import wait_for

RUNS: list[str] = []


class Busy(Exception):
    """Transient: worth another try."""


class Mailer:
    name = "mailer"

    tasks = TaskScheduler()

    @rpc
    def send_later(self, address):
        self.tasks.schedule(self.send, address)  # returns once RabbitMQ has it

    @task
    @entrypoint_retry(retry_for=Busy, limit=2, schedule=(200,), random_sigma=0)
    def send(self, address):
        RUNS.append(address)
        if "@" not in address:
            raise ValueError(f"{address} is not an address")  # no retry covers it
        if RUNS.count(address) == 1:
            raise Busy("try again in 200 ms")


SERVICES = (Mailer,)


def main(config):
    with ClusterRpcProxy(config) as cluster:
        cluster.mailer.send_later("ada@example.com")
        cluster.mailer.send_later("nobody")
    amqp_uri = config["AMQP_URI"]
    [letter] = wait_for(lambda: list_dead_letters(amqp_uri, "mailer"), what="it")
    wait_for(lambda: RUNS.count("ada@example.com") == 2, what="the retry")
    return sorted(RUNS), letter  # letter.line(): "<id>  <when>  send[...] ..."
