"""SlackNotifier against the local Web API stand-in: posts, and never raises."""

import logging
import socket
from types import SimpleNamespace

import pytest
from nameko.exceptions import ConfigurationError
from nameko_amqp_retry import Backoff

from sfsync.extensions.slack import SlackFailureNotices, SlackNotifier, SlackPoster
from sfsync.testing.slack import TEST_CHANNEL, SlackStandIn, slack_section


@pytest.fixture
def slack_api():
    with SlackStandIn() as stand_in:
        yield stand_in


def poster_for(section):
    notifier = SlackNotifier()
    notifier.container = SimpleNamespace(config={"SLACK": section})
    notifier.setup()
    return notifier.get_dependency(worker_ctx=None)


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_post_sends_chat_post_message_to_the_default_channel(slack_api):
    poster = poster_for(slack_section(slack_api))

    ts = poster.post("hello")

    assert ts
    assert slack_api.messages() == [{"channel": TEST_CHANNEL, "text": "hello"}]


def test_post_to_another_channel_with_blocks(slack_api):
    poster = poster_for(slack_section(slack_api))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]

    poster.post("hi", channel="C2", blocks=blocks)

    assert slack_api.messages() == [{"channel": "C2", "text": "hi", "blocks": blocks}]


def test_error_from_slack_is_logged_not_raised(slack_api, caplog):
    poster = poster_for(slack_section(slack_api))
    slack_api.fail_next("channel_not_found")

    with caplog.at_level(logging.WARNING, "sfsync.extensions.slack"):
        ts = poster.post("hello")

    assert ts is None
    assert "refused: channel_not_found" in caplog.text


def test_wrong_token_is_logged_not_raised(slack_api, caplog):
    poster = poster_for({**slack_section(slack_api), "BOT_TOKEN": "xoxb-wrong"})

    with caplog.at_level(logging.WARNING, "sfsync.extensions.slack"):
        ts = poster.post("hello")

    assert ts is None
    assert "invalid_auth" in caplog.text


def test_unreachable_slack_is_logged_not_raised(caplog):
    section = {
        "BOT_TOKEN": "xoxb-test",
        "API_BASE_URL": f"http://127.0.0.1:{closed_port()}/api/",
        "CHANNEL": "C1",
        "TIMEOUT": 2,
    }
    poster = poster_for(section)

    with caplog.at_level(logging.WARNING, "sfsync.extensions.slack"):
        ts = poster.post("hello")

    assert ts is None
    assert "not sent" in caplog.text


def test_notify_failure_names_direction_ids_and_error(slack_api):
    poster = poster_for(slack_section(slack_api))

    poster.notify_failure("up", [7, 8], "InvalidRequest: <bad> & worse")

    [message] = slack_api.messages()
    assert message["channel"] == TEST_CHANNEL
    assert "sync up of 7, 8 failed for good" in message["text"]
    assert "&lt;bad&gt; &amp; worse" in message["text"]


def test_without_a_token_notices_are_off():
    poster = poster_for({})

    assert not poster.enabled
    assert poster.post("hello") is None


def test_token_without_base_url_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="API_BASE_URL"):
        poster_for({"BOT_TOKEN": "xoxb-test"})


def test_no_channel_anywhere_posts_nothing(slack_api):
    poster = SlackPoster(client=None, channel=None)

    assert poster.post("hello") is None
    assert slack_api.messages() == []


class FakeContainer:
    def __init__(self, config):
        self.config = config
        self.threads = []

    def spawn_managed_thread(self, run):
        self.threads.append(run)


def notices_for(section, method="sync_contact_up", args=(7,)):
    notices = SlackFailureNotices({"sync_contact_up": "up"})
    notices.container = FakeContainer({"SLACK": section})
    notices.setup()
    worker_ctx = SimpleNamespace(
        entrypoint=SimpleNamespace(method_name=method), args=args
    )
    return notices, worker_ctx


def run_threads(notices):
    for run in notices.container.threads:
        run()


def test_task_failing_for_good_posts_a_failure_notice(slack_api):
    notices, worker_ctx = notices_for(slack_section(slack_api))
    expired = Backoff.Expired("out of retries")
    expired.__cause__ = ValueError("contact 7 is invalid")

    notices.worker_result(worker_ctx, exc_info=(Backoff.Expired, expired, None))
    run_threads(notices)

    [message] = slack_api.messages()
    assert "sync up of 7 failed" in message["text"]
    assert message["text"].endswith("ValueError: contact 7 is invalid")


@pytest.mark.parametrize(
    ("method", "exc_info"),
    [
        ("sync_contact_up", None),
        ("sync_contact_up", (Backoff, Backoff(), None)),
        ("other_method", (ValueError, ValueError("x"), None)),
    ],
    ids=["success", "retry scheduled", "method not listed"],
)
def test_no_failure_notice_unless_a_listed_task_fails_for_good(
    slack_api, method, exc_info
):
    notices, worker_ctx = notices_for(slack_section(slack_api), method=method)

    notices.worker_result(worker_ctx, exc_info=exc_info)

    assert notices.container.threads == []
