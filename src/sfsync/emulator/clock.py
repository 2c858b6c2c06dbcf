"""Injectable wall clock used for every emulator timestamp and retention window."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall clock with an adjustable offset, so tests can jump past retention."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, shifted by the offset."""
        return time.time() + self.offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


CLOCK = Clock()


def format_datetime(ms: int) -> str:
    """Render epoch milliseconds the way REST does: 2024-05-01T10:00:00.000+0000."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def format_event_datetime(ms: int) -> str:
    """Render epoch milliseconds the way streaming events do: ...00.123Z."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
