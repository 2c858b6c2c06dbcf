import pytest

from sfsync.emulator import ids


def test_checksum_of_known_id():
    assert ids.to18("001D000000IqhSL") == "001D000000IqhSLIAZ"


def test_to18_of_an_18_char_id_is_stable():
    assert ids.to18("001D000000IqhSLIAZ") == "001D000000IqhSLIAZ"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("001D000000IqhSL", "001D000000IqhSLIAZ"),
        ("001D000000IqhSLIAZ", "001D000000IqhSLIAZ"),
        ("001D000000IqhS", None),
        ("001D000000IqhSL!", None),
        (None, None),
        (12, None),
    ],
)
def test_normalize(value, expected):
    assert ids.normalize(value) == expected


def test_minted_ids_are_18_chars_with_prefix_and_valid_checksum():
    minted = ids.make_id("003", 12345)

    assert len(minted) == 18
    assert minted.startswith("003")
    assert ids.to18(minted[:15]) == minted


def test_minted_ids_are_distinct():
    assert len({ids.make_id("003", n) for n in range(1, 500)}) == 499
