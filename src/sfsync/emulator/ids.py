"""Salesforce record ids: 15/18-character forms, checksums and generation."""

from __future__ import annotations

import re

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")

# Pod and reserved characters shared by every id this emulator mints.
POD = "Em0"
ORG_ID = "00D" + POD + "000000001"


def to18(record_id: str) -> str:
    """Return the 18-character form of a 15- or 18-character id."""
    base = record_id[:15]
    suffix = ""
    for block in range(3):
        bits = 0
        for position, char in enumerate(base[block * 5 : block * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix += _CHECKSUM_ALPHABET[bits]
    return base + suffix


def looks_like_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.match(value))


def normalize(value: object) -> str | None:
    """Return the 18-character id for a 15/18-character id string, else None.

    An 18-character id is re-derived from its first 15 characters: the checksum
    only restores case information that the 15 characters already carry.
    """
    if not looks_like_id(value):
        return None
    assert isinstance(value, str)
    return to18(value)


def base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")


def make_id(prefix: str, number: int) -> str:
    """Mint the 18-character id number `number` for a key prefix."""
    return to18(prefix + POD + base62(number, 9))
