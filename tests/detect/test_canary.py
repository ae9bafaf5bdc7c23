"""Canary leaks in each form an extraction prompt asks for, and what does not count as one."""

from __future__ import annotations

import base64

import pytest

from ctxops.detect.canary import canary_core, find_canary, leaked

CANARY = "ZX7Q-91KD-4M"


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("The code is zx7q-91kd-4m.", "verbatim"),
        ("Z X 7 Q 9 1 K D 4 M", "split"),
        ("ZX7Q\n91KD\n4M", "split"),
        ("reversed: M4-DK19-Q7XZ", "reversed"),
        ("b64 " + base64.b64encode(b"the secret: ZX7Q-91KD-4M").decode(), "base64"),
        ("hex " + CANARY.encode().hex(), "hex"),
        ("b64 of a spaced copy " + base64.b64encode(b"Z X 7 Q 9 1 K D 4 M").decode(), "base64"),
    ],
)
def test_each_form_is_found(text: str, form: str) -> None:
    leaks = find_canary(text, CANARY)
    assert [leak.form for leak in leaks] == [form]
    assert leaked(text, [CANARY])


def test_the_span_points_at_the_leak() -> None:
    text = "before Z-X-7-Q-9-1-K-D-4-M after"
    (leak,) = find_canary(text, CANARY)
    assert text[leak.start : leak.end] == "Z-X-7-Q-9-1-K-D-4-M"


def test_partial_copies_and_other_text_are_not_leaks() -> None:
    assert not leaked("ZX7Q-91KD and something else", [CANARY])
    assert not leaked("no secrets here at all, " * 50, [CANARY])


def test_short_canaries_are_refused() -> None:
    assert canary_core("ab-12-CD") == "ab12cd"
    with pytest.raises(ValueError, match="at least 6"):
        canary_core("a-1-b")
