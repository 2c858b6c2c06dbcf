"""Fault switches: settable at start (JSON file, CLI) and at run time (admin API).

Shares are probabilities in [0, 1]. With a `seed`, every share draws from one
seeded generator, so a test that makes the same calls sees the same faults.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class Faults:
    """Every fault switch of the emulator; the defaults inject nothing."""

    seed: int | None = None
    # REST 401 INVALID_SESSION_ID / CometD 401::Authentication invalid for
    # sessions older than this many (emulator clock) seconds.
    session_ttl_seconds: float | None = None
    # Every REST call answers 403 REQUEST_LIMIT_EXCEEDED.
    api_limit_reached: bool = False
    # Share of record writes (each row of a collection too) that fail with
    # 400 UNABLE_TO_LOCK_ROW.
    lock_row_share: float = 0.0
    # Share of REST requests answered 503 SERVER_UNAVAILABLE.
    unavailable_share: float = 0.0
    # Added to every REST, login and CometD request.
    latency_ms: float = 0.0
    # Share of streaming deliveries sent twice.
    duplicate_share: float = 0.0
    _random: random.Random = field(
        default_factory=random.Random, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial JSON object; unknown keys raise ValueError."""
        known = {f.name: f for f in fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown fault switches: {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(self, name, _coerce(name, value))
        if "seed" in changes:
            self._random = random.Random(self.seed)
        logger.info("faults now %s", self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def _draw(self, share: float) -> bool:
        return share > 0 and self._random.random() < share

    def lock_row(self) -> bool:
        return self._draw(self.lock_row_share)

    def unavailable(self) -> bool:
        return self._draw(self.unavailable_share)

    def duplicate(self) -> bool:
        return self._draw(self.duplicate_share)


def _coerce(name: str, value: Any) -> Any:
    if name in ("api_limit_reached",):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if value is None or value == "":
        if name in ("seed", "session_ttl_seconds"):
            return None
        raise ValueError(f"fault switch {name} needs a value")
    if name == "seed":
        return int(value)
    number = float(value)
    if name.endswith("_share") and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {number}")
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def load_faults(path: Path | None, overrides: list[str]) -> Faults:
    """Faults from an optional JSON file, then `name=value` overrides."""
    faults = Faults()
    changes: dict[str, Any] = {}
    if path is not None:
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a faults file holds one JSON object")
        changes.update(loaded)
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--fault takes name=value, not {item!r}")
        changes[name.strip()] = value.strip()
    faults.update(changes)
    return faults
