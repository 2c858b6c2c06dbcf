"""A task that fails for good posts a Slack notice, on real RabbitMQ."""

import pytest
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.extensions.slack import SlackFailureNotices
from sfsync.extensions.tasks import TaskScheduler, task
from sfsync.testing.fixtures import wait_for
from sfsync.testing.slack import TEST_CHANNEL, SlackStandIn, slack_section

pytestmark = pytest.mark.integration


class RefusingSync:
    name = "refusing"

    tasks = TaskScheduler()
    notices = SlackFailureNotices({"sync_contact_up": "up"})

    @rpc
    def schedule(self, contact_id):
        self.tasks.schedule("sync_contact_up", contact_id)

    @task
    def sync_contact_up(self, contact_id):
        raise ValueError(f"contact {contact_id} is refused")


@pytest.fixture
def stand_in():
    with SlackStandIn() as running:
        yield running


def test_dead_lettered_task_posts_a_failure_notice(
    runner_factory, broker_uri, stand_in
):
    config = {"AMQP_URI": broker_uri, "SLACK": slack_section(stand_in)}
    runner_factory(config, RefusingSync).start()

    with ServiceRpcProxy("refusing", config) as refusing:
        refusing.schedule(7)

    [notice] = wait_for(stand_in.messages, what="the failure notice")
    assert notice["channel"] == TEST_CHANNEL
    assert notice["text"] == (
        ":warning: sync up of 7 failed for good and is kept for replay: "
        "ValueError: contact 7 is refused"
    )
