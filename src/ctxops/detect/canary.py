"""Canary leaks: a secret string found in text as written, or spaced out, split, reversed, base64 or hex.

A canary is a random marker planted where it must not leave (a system prompt, a private document). A model that
leaks it may transform it on the way out; :func:`find_canary` looks for the forms an extraction prompt asks for:

- ``verbatim``: the canary itself (case-insensitive);
- ``split``: its letters and digits in order with anything else between them ("C A N A R Y", "CAN-ARY", a newline);
- ``reversed``: the same, backwards;
- ``base64`` / ``hex``: a blob that decodes to text containing the canary in any of the forms above.

Letters and digits carry the match, so a canary should hold at least six of them and look random. This module
knows strings, not requests or streams: the guard calls it on the text it holds back, ``ctxops scan`` on outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctxops.detect.injection import decode_blob

MIN_CANARY_CHARS = 6  # letters and digits; shorter markers occur by chance
_BLOB = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")
FORMS = ("verbatim", "split", "reversed", "base64", "hex")


@dataclass(frozen=True, slots=True)
class CanaryLeak:
    """Where a canary leaked (character offsets ``[start, end)``) and in which form."""

    start: int
    end: int
    form: str


def canary_core(canary: str) -> str:
    """The letters and digits of ``canary``, lower-cased: what every form must contain in order."""
    core = "".join(c for c in canary.lower() if c.isalnum())
    if len(core) < MIN_CANARY_CHARS:
        raise ValueError(
            f"canary {canary!r} has {len(core)} letters and digits; use at least {MIN_CANARY_CHARS} "
            "(a random marker such as ZX7Q-91KD-4M), or it will match ordinary text"
        )
    return core


def _alnum_index(text: str) -> tuple[str, list[int]]:
    """Text reduced to its lower-cased letters and digits, and where each came from."""
    keep = [(i, c) for i, c in enumerate(text.lower()) if c.isalnum()]
    return "".join(c for _, c in keep), [i for i, _ in keep]


def _find_plain(text: str, canary: str, core: str) -> list[CanaryLeak]:
    leaks = []
    lowered, written = text.lower(), canary.lower()
    verbatim = set()
    at = lowered.find(written)
    while at >= 0:
        leaks.append(CanaryLeak(at, at + len(written), "verbatim"))
        verbatim.add(at)
        at = lowered.find(written, at + 1)
    squeezed, where = _alnum_index(text)
    for form, needle in (("split", core), ("reversed", core[::-1])):
        at = squeezed.find(needle)
        while at >= 0:
            start, end = where[at], where[at + len(needle) - 1] + 1
            if not (form == "split" and start in verbatim):
                leaks.append(CanaryLeak(start, end, form))
            at = squeezed.find(needle, at + 1)
    return leaks


def find_canary(text: str, canary: str) -> list[CanaryLeak]:
    """Every leak of ``canary`` in ``text``, sorted by position (see the module docstring for the forms)."""
    core = canary_core(canary)
    leaks = _find_plain(text, canary, core)
    for m in _BLOB.finditer(text):
        blob = m.group()
        decoded = decode_blob(blob)
        if decoded is not None and _find_plain(decoded, canary, core):
            is_hex = all(c in "0123456789abcdefABCDEF" for c in blob)
            leaks.append(CanaryLeak(m.start(), m.end(), "hex" if is_hex else "base64"))
    return sorted(leaks, key=lambda leak: (leak.start, leak.end))


def leaked(text: str, canaries: tuple[str, ...] | list[str]) -> bool:
    """True when any of ``canaries`` leaks into ``text`` in any form."""
    return any(find_canary(text, canary) for canary in canaries)
