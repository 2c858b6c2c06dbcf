"""The command line's error lines: what a user sees when the broker fails."""

import pytest
from amqp.exceptions import NotAllowed

from sfsync.cli.main import CommandError, broker_errors, without_password


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("pyamqp://guest:s3cret@127.0.0.1:5672/demo", "pyamqp://guest:***@127.0.0.1:5672/demo"),
        ("pyamqp://guest:s3cret@localhost/", "pyamqp://guest:***@localhost/"),
        ("pyamqp://127.0.0.1:5672/", "pyamqp://127.0.0.1:5672/"),
    ],
)  # fmt: skip
def test_a_broker_address_is_shown_without_its_password(uri, shown):
    assert without_password(uri) == shown


def test_an_unreachable_broker_is_one_line_without_the_password():
    with pytest.raises(CommandError) as error, broker_errors("pyamqp://u:s3cret@h/v"):
        raise ConnectionRefusedError(111, "Connection refused")

    assert str(error.value).startswith("cannot reach the broker at pyamqp://u:***@h/v")
    assert "s3cret" not in str(error.value)


def test_a_missing_vhost_says_which_and_hints_at_the_demo_one():
    with pytest.raises(CommandError) as error, broker_errors("pyamqp://u:s3cret@h/v"):
        raise NotAllowed("vhost v not found")

    assert "refused: vhost v not found" in str(error.value)
    assert "sfsync-demo" in str(error.value)
    assert "s3cret" not in str(error.value)
