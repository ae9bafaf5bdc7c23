from __future__ import annotations

import math

import pytest

from ctxops.monitor.windows import parse_window

NOW = 1_800_000_000.0


def test_relative_iso_and_open_ends():
    w = parse_window("7d..1h", now=NOW)
    assert (w.start, w.end) == (NOW - 7 * 86400, NOW - 3600)
    assert parse_window("1h..", now=NOW).end == NOW
    assert parse_window("..30m", now=NOW).start == -math.inf
    iso = parse_window("2026-03-01..2026-03-01T12:00+02:00", now=NOW)
    assert iso.start == 1772323200.0 and iso.end == 1772323200.0 + 10 * 3600
    assert iso.to_dict()["start"] == "2026-03-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "text, message",
    [
        ("7d", "START..END"),
        ("1h..7d", "empty"),
        ("yesterday..", "neither a relative time"),
        ("5x..", "ISO 8601"),
    ],
)
def test_bad_windows_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text, now=NOW)
