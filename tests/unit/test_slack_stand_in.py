"""The local Slack Web API stand-in answers as Slack does, and records calls."""

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sfsync.testing import slack as slack_testing

# The fixtures sfsync.testing.slack ships.
slack_api = slack_testing.slack_api
slack_config = slack_testing.slack_config


def client(slack_api, token=None):
    return WebClient(token=token or slack_api.token, base_url=slack_api.base_url)


def test_auth_test_answers_for_the_right_token(slack_api):
    response = client(slack_api).auth_test()

    assert response["ok"] is True
    assert slack_api.calls() == [{"method": "auth.test", "args": {}}]


def test_wrong_token_is_invalid_auth(slack_api):
    with pytest.raises(SlackApiError) as raised:
        client(slack_api, token="xoxb-wrong").auth_test()

    assert raised.value.response["error"] == "invalid_auth"


def test_post_message_without_channel_is_refused(slack_api):
    with pytest.raises(SlackApiError) as raised:
        client(slack_api).chat_postMessage(channel="", text="hi")

    assert raised.value.response["error"] == "channel_not_found"


def test_fail_next_refuses_one_call_only(slack_api):
    slack_api.fail_next("ratelimited")

    with pytest.raises(SlackApiError):
        client(slack_api).chat_postMessage(channel="C1", text="first")
    client(slack_api).chat_postMessage(channel="C1", text="second")

    assert [m["text"] for m in slack_api.messages()] == ["first", "second"]


def test_reset_forgets_the_calls(slack_api):
    client(slack_api).chat_postMessage(channel="C1", text="hi")

    slack_api.reset()

    assert slack_api.calls() == []


def test_stop_ends_the_process(slack_api):
    process = slack_api._process

    slack_api.stop()

    assert process.poll() is not None


def test_slack_config_fixture_aims_at_the_stand_in(slack_api, slack_config):
    section = slack_config["SLACK"]

    assert section["API_BASE_URL"] == slack_api.base_url
    assert section["API_BASE_URL"].startswith("http://127.0.0.1:")
    assert section["BOT_TOKEN"] == slack_api.token
