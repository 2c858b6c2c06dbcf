"""Parsing Slack's slash command form and the replies sent back."""

import json
from urllib.parse import urlencode

import pytest

from sfsync.extensions.slack import (
    Reply,
    SlashCommand,
    SlashCommandHandler,
    escape,
    parse_slash_command,
)


def form(**fields):
    return urlencode(fields).encode()


def test_form_becomes_a_command():
    body = form(
        command="/contact",
        text="create Turner, Sara, sara@turner.uk",
        user_id="U1",
        user_name="ada",
        channel_id="C1",
        response_url="https://hooks.example/1",
        api_app_id="A1",
    )

    command = parse_slash_command(body)

    assert command == SlashCommand(
        command="/contact",
        text="create Turner, Sara, sara@turner.uk",
        user_id="U1",
        user_name="ada",
        channel_id="C1",
        response_url="https://hooks.example/1",
    )


def test_form_without_a_command_is_refused():
    with pytest.raises(ValueError, match="no command"):
        parse_slash_command(form(text="show 1"))


def test_non_ascii_text_is_decoded():
    command = parse_slash_command(form(command="/contact", text="create Хохлов, Ян"))

    assert command.argument == "Хохлов, Ян"


@pytest.mark.parametrize(
    ("text", "subcommand", "argument"),
    [
        ("show 42", "show", "42"),
        ("  SHOW   42 ", "show", "42"),
        ("create Turner, Sara", "create", "Turner, Sara"),
        ("resync", "resync", ""),
        ("", "", ""),
    ],
)
def test_text_splits_into_subcommand_and_argument(text, subcommand, argument):
    command = SlashCommand(command="/contact", text=text)

    assert (command.subcommand, command.argument) == (subcommand, argument)


def test_plain_string_result_becomes_ephemeral_json():
    handler = SlashCommandHandler("/contact")

    response = handler.response_from_result("hello")

    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == {
        "response_type": "ephemeral",
        "text": "hello",
    }


def test_reply_in_channel_with_blocks():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]

    payload = json.loads(Reply("hi", in_channel=True, blocks=blocks).as_json())

    assert payload == {"response_type": "in_channel", "text": "hi", "blocks": blocks}


def test_expected_error_becomes_an_ephemeral_reply_with_its_message():
    handler = SlashCommandHandler("/contact", expected_exceptions=LookupError)

    response = handler.response_from_exception(LookupError("no contact 9"))

    assert response.status_code == 200
    assert json.loads(response.get_data())["text"] == "/contact failed: no contact 9"


def test_unexpected_error_shows_only_its_type():
    handler = SlashCommandHandler("/contact")

    response = handler.response_from_exception(RuntimeError("db password wrong"))

    text = json.loads(response.get_data())["text"]
    assert "RuntimeError" in text
    assert "password" not in text


def test_command_must_start_with_a_slash():
    with pytest.raises(ValueError, match="starts with '/'"):
        SlashCommandHandler("contact")


def test_escape_reserved_characters():
    assert escape("<@U1> & co") == "&lt;@U1&gt; &amp; co"
