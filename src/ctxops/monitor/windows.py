"""Time windows written on the command line: ``START..END`` as ISO 8601 or relative to now.

``7d..1h`` is from seven days ago to one hour ago; ``1h..`` is the last hour; ``2026-03-01..2026-03-02T12:00`` is
absolute (naive times are UTC). An empty start is the beginning of the log, an empty end is now. Units: s, m, h, d, w.
This module knows clocks and strings, not the store.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open ``[start, end)`` in unix seconds, with the text it came from."""

    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"window {self.text!r} is empty: its start is not before its end")

    def to_dict(self) -> dict[str, object]:
        """JSON form: the text and both ends as ISO 8601 UTC (None for an open start)."""
        return {"text": self.text, "start": _iso(self.start), "end": _iso(self.end)}


def _iso(seconds: float) -> str | None:
    if not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def parse_duration(text: str) -> float:
    """Seconds in ``30m``, ``6h``, ``30d``, ``2w``."""
    match = _RELATIVE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30m, 6h, 30d or 2w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_instant(text: str, now: float) -> float:
    """Unix seconds for ``7d`` (ago) or an ISO 8601 time (naive = UTC)."""
    text = text.strip()
    if _RELATIVE.match(text):
        return now - parse_duration(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a relative time (e.g. 30m, 6h, 7d) nor ISO 8601 (e.g. 2026-03-01T12:00)"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def parse_window(text: str, now: float | None = None) -> Window:
    """``START..END`` -> :class:`Window`; either side may be empty (beginning of time, now)."""
    now = time.time() if now is None else now
    start, sep, end = text.partition("..")
    if not sep:
        raise ValueError(f"window {text!r} must be START..END, e.g. 7d..1h, 1h.. or 2026-03-01..2026-03-02")
    return Window(
        parse_instant(start, now) if start.strip() else -math.inf,
        parse_instant(end, now) if end.strip() else now,
        text,
    )
