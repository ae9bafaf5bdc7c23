"""Personal data in text: where it is and a redacted copy.

:func:`find_pii` returns the spans of e-mail addresses, phone numbers (``phonenumbers``), payment card numbers
(Luhn checksum from ``python-stdnum`` plus issuer prefixes), IBANs (``python-stdnum``'s country lengths and mod-97
check), US social security numbers (``python-stdnum``'s area/group/serial rules) and IP addresses (``ipaddress``).
A regular expression only proposes a candidate; a checksum or parser decides, as Presidio's recognizers do.
:func:`redact` replaces the spans with ``<KIND>`` placeholders.

This module is a pure function of the text. It knows no names, places or other entities that need a language
model (Presidio's spaCy NER), no files and no HTTP; the guard, ``ctxops scan`` and ``ctxops data`` call it.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn


class PiiKind(StrEnum):
    """The kinds of personal data found; the value is the name used in JSON and in ``<KIND>`` placeholders."""

    EMAIL = "email"
    PHONE = "phone"
    CREDIT_CARD = "credit_card"
    IBAN = "iban"
    US_SSN = "us_ssn"
    IP_ADDRESS = "ip_address"


@dataclass(frozen=True, slots=True, order=True)
class PiiFinding:
    """One span of personal data: ``text[start:end]`` is of ``kind``."""

    start: int  # character offsets into the text
    end: int
    kind: PiiKind


# Patterns start with a plain character class, never a lookbehind, so Python's re skips ahead at C speed; the
# boundary checks come right after the first character.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_CARD = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,32}\b")
_SSN = re.compile(r"\d(?<![\d-]\d)\d{2}-\d{2}-\d{4}(?![\d-])")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")  # starts with a literal: cheap to scan for
_DIGIT_RUN = re.compile(r"\d(?:[^\d\n]{0,4}\d){6,}")  # 7+ digits close together: where a phone number can be
_WINDOW = 48  # characters searched around a cheap hint for the full pattern
# issuer identification prefixes of the major card networks (Visa, Mastercard, Amex, Discover, JCB, Diners)
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6011|65|64[4-9]|35|30[0-5]|36|38")
_MIN_IBAN = 15  # Norway's, the shortest IBAN
# when two findings overlap, the one of the kind listed first wins (checksummed kinds before parsed ones)
_PRIORITY = [
    PiiKind.EMAIL,
    PiiKind.IBAN,
    PiiKind.CREDIT_CARD,
    PiiKind.US_SSN,
    PiiKind.IP_ADDRESS,
    PiiKind.PHONE,
]


def _around(text: str, hints: Iterator[tuple[int, int]], pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` in windows around hint spans (merged), each match once."""
    start = end = -1
    for hint_start, hint_end in hints:
        lo, hi = max(0, hint_start - _WINDOW), min(len(text), hint_end + _WINDOW)
        if lo <= end:
            end = max(end, hi)
            continue
        if end > start:
            yield from pattern.finditer(text, start, end)
        start, end = lo, hi
    if end > start:
        yield from pattern.finditer(text, start, end)


def _at_signs(text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at >= 0:
        yield at - 64, at + 256  # an address's longest local part before, domain after
        at = text.find("@", at + 1)


def _emails(text: str) -> Iterator[PiiFinding]:
    for m in _around(text, _at_signs(text), _EMAIL):
        yield PiiFinding(m.start(), m.end(), PiiKind.EMAIL)


def _cards(text: str) -> Iterator[PiiFinding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if _CARD_PREFIX.match(digits) and luhn.is_valid(digits):
            yield PiiFinding(m.start(), m.end(), PiiKind.CREDIT_CARD)


def _ibans(text: str) -> Iterator[PiiFinding]:
    for m in _IBAN.finditer(text):
        candidate = m.group()
        # the pattern may run into following capitals or digits: shorten until the checksum holds
        for end in range(len(candidate), _MIN_IBAN - 1, -1):
            if candidate[end - 1] != " " and iban.is_valid(candidate[:end]):
                yield PiiFinding(m.start(), m.start() + end, PiiKind.IBAN)
                break


def _ssns(text: str) -> Iterator[PiiFinding]:
    for m in _SSN.finditer(text):
        if ssn.is_valid(m.group()):
            yield PiiFinding(m.start(), m.end(), PiiKind.US_SSN)


def _ip_addresses(text: str) -> Iterator[PiiFinding]:
    v6 = _around(text, (m.span() for m in _IPV6_HINT.finditer(text)), _IPV6)
    for m in itertools.chain(_IPV4.finditer(text), v6):
        try:
            address = ipaddress.ip_address(m.group())
        except ValueError:
            continue
        if not (address.is_loopback or address.is_unspecified):
            yield PiiFinding(m.start(), m.end(), PiiKind.IP_ADDRESS)


def _phones(text: str, region: str) -> Iterator[PiiFinding]:
    spans = [m.span() for m in _DIGIT_RUN.finditer(text)]
    windows: list[list[int]] = []
    for lo, hi in spans:  # phonenumbers' matcher is slow on long text: run it only near runs of digits
        lo, hi = max(0, lo - 8), min(len(text), hi + 8)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    for lo, hi in windows:
        matcher = phonenumbers.PhoneNumberMatcher(text[lo:hi], region, leniency=phonenumbers.Leniency.VALID)
        for match in matcher:
            yield PiiFinding(lo + match.start, lo + match.end, PiiKind.PHONE)


_DETECTORS: dict[PiiKind, Callable[[str, str], Iterator[PiiFinding]]] = {
    PiiKind.EMAIL: lambda text, region: _emails(text),
    PiiKind.IBAN: lambda text, region: _ibans(text),
    PiiKind.CREDIT_CARD: lambda text, region: _cards(text),
    PiiKind.US_SSN: lambda text, region: _ssns(text),
    PiiKind.IP_ADDRESS: lambda text, region: _ip_addresses(text),
    PiiKind.PHONE: _phones,
}


def find_pii(text: str, kinds: Iterable[PiiKind] | None = None, region: str = "US") -> list[PiiFinding]:
    """Every span of personal data in ``text``, sorted by position, without overlaps.

    Args:
        text: the text to search.
        kinds: the kinds to look for (default: all of :class:`PiiKind`).
        region: ISO 3166 country code used to read phone numbers written without a ``+`` country prefix.

    Raises:
        ValueError: ``region`` is not a region ``phonenumbers`` knows.
    """
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"region {region!r} is not a known ISO 3166 country code (e.g. US, GB, DE)")
    wanted = set(PiiKind) if kinds is None else {PiiKind(k) for k in kinds}
    taken: list[PiiFinding] = []
    for kind in _PRIORITY:
        if kind not in wanted:
            continue
        for finding in _DETECTORS[kind](text, region):
            if not any(f.start < finding.end and finding.start < f.end for f in taken):
                taken.append(finding)
    return sorted(taken)


def redact(text: str, findings: Iterable[PiiFinding]) -> str:
    """``text`` with each finding replaced by ``<KIND>`` (e.g. ``<EMAIL>``); overlapping findings merge."""
    pieces: list[str] = []
    position = 0
    for finding in sorted(findings):
        if finding.start < position:  # overlaps the span already replaced: widen it
            position = max(position, finding.end)
            continue
        pieces.append(text[position : finding.start])
        pieces.append(f"<{finding.kind.value.upper()}>")
        position = finding.end
    pieces.append(text[position:])
    return "".join(pieces)
