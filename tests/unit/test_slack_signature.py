"""Slack's v0 request signature: what is accepted and what is refused."""

import pytest

from sfsync.extensions.slack import InvalidSignature, sign, verify_signature

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"command=%2Fcontact&text=show+42"
NOW = 1_700_000_000.0
SENT_AT = str(int(NOW) - 10)


def test_signature_is_v0_hmac_sha256_of_version_timestamp_and_body():
    # Slack's documented example request and its signature.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
        b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA"
        b"&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J"
        b"%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015"
        b".47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )

    signature = sign(SECRET, "1531420618", body)

    assert signature == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_good_signature_is_accepted():
    signature = sign(SECRET, SENT_AT, BODY)

    verify_signature(SECRET, SENT_AT, signature, BODY, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "reason"),
    [
        (SENT_AT, sign("another secret", SENT_AT, BODY), BODY, "does not match"),
        (SENT_AT, sign(SECRET, SENT_AT, BODY), BODY + b"x", "does not match"),
        (SENT_AT, "v0=" + "0" * 64, BODY, "does not match"),
        (SENT_AT, "", BODY, "missing"),
        (None, sign(SECRET, SENT_AT, BODY), BODY, "missing"),
        (SENT_AT, None, BODY, "missing"),
        ("soon", sign(SECRET, "soon", BODY), BODY, "not a number"),
    ],
    ids=[
        "other secret",
        "body changed",
        "forged",
        "empty signature",
        "no timestamp",
        "no signature",
        "timestamp not a number",
    ],
)
def test_bad_signature_is_refused(timestamp, signature, body, reason):
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(SECRET, timestamp, signature, body, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301, -86_400], ids=["old", "future", "day"])
def test_signature_outside_five_minutes_is_refused(offset):
    timestamp = str(int(NOW) + offset)
    signature = sign(SECRET, timestamp, BODY)

    with pytest.raises(InvalidSignature, match="more than 300 s"):
        verify_signature(SECRET, timestamp, signature, BODY, now=NOW)


def test_signature_at_the_edge_of_five_minutes_is_accepted():
    timestamp = str(int(NOW) - 300)

    verify_signature(SECRET, timestamp, sign(SECRET, timestamp, BODY), BODY, now=NOW)


def test_empty_secret_refuses_everything():
    with pytest.raises(InvalidSignature, match="no signing secret"):
        verify_signature("", SENT_AT, sign("", SENT_AT, BODY), BODY, now=NOW)
