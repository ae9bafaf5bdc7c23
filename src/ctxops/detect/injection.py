"""Prompt-injection signatures in text of any length: pure functions, no model, no cut at 512 tokens.

:func:`find_injections` reads the whole text in overlapping windows (:func:`windows`) and reports every match as
a :class:`Finding` with its rule and character span, never the matched text. Four rules:

- ``instruction``: phrases aimed at the model that reading a document should not contain: "ignore the previous
  instructions", "note to the AI assistant", "reveal your system prompt", "do not tell the user", also in a few
  other languages.
- ``role_marker``: chat-template special tokens (``<|im_start|>``, ``[INST]``, ``<|eot_id|>``...) and fake turns
  (a line opening with ``System:``), which let a document pose as another speaker.
- ``invisible``: Unicode tag characters (U+E0000-E007F, invisible but read by models; valid emoji tag sequences
  excepted), clusters of zero-width or bidi-control characters, such characters inside Latin-script words
  ("pass\u200cword"; the joiners of Persian, Indic and emoji text sit between other scripts and pass), runs of
  variation selectors (bytes smuggled after a character), and instructions spelled with invisible characters or
  look-alike Cyrillic, Greek or full-width letters inside ("Ig\u200bnore prеvious instructions").
- ``encoded``: base64 or hex blobs that decode to text matching ``instruction`` or ``role_marker`` (or, with
  ``classifier`` on too, text the classifier flags).
- ``classifier``: windows that the learned model of :mod:`ctxops.detect.classifier` scores above its threshold
  (paraphrases and languages no phrase lists); its span is where the flagged windows overlap.

The text hidden in tag characters is decoded and checked too. Matching is case-insensitive on a lower-cased copy
of each window. This module knows strings, not requests, messages or actions; what to do with a finding is the
caller's business (the guard, the scanner, the data checks).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from ctxops.detect import classifier
from ctxops.detect.clauses import COMMAND_LEAD_IN, COMMAND_REACH, PROXIMITY, STATE, Proximity
from ctxops.detect.signatures import INSTRUCTION, ROLE_MARKER, SIGNATURES, Signature

INVISIBLE = "invisible"
ENCODED = "encoded"
CLASSIFIER = "classifier"
RULES = (INSTRUCTION, ROLE_MARKER, INVISIBLE, ENCODED, CLASSIFIER)
# what find_injections runs unless told: the learned rule is opt-in, since a statistical model flags some benign
# look-alikes ("show me your instructions for the cake, grandma") that the phrase rules are written to pass
SIGNATURE_RULES = (INSTRUCTION, ROLE_MARKER, INVISIBLE, ENCODED)

WINDOW_CHARS = 65_536  # characters read at once (about 16K tokens of English)
OVERLAP_CHARS = 512  # windows overlap by this much, so a phrase cut by a window edge is still seen whole


@dataclass(frozen=True, slots=True)
class Finding:
    """One match: which rule, where (character offsets ``[start, end)`` in the scanned text), and what kind."""

    rule: str
    start: int
    end: int
    detail: str = ""  # a description of the signature (never the matched text itself)


_REACH = 240  # characters a match may extend past its anchor
_BREAKS = bytes(i if chr(i).isalnum() or i == ord("'") or i >= 0x80 else ord(" ") for i in range(256))
_ANCHOR_FIRST_WORDS = {a: a.split()[0] for s in (*SIGNATURES, *PROXIMITY) for a in s.anchors}
_CLAUSE_END = re.compile("[.!?;\n。！？]")
_QUOTE_REACH = 160  # characters from a finding to the quotes of the speech around it
_SPEECH = re.compile(
    r"[\"\u201d][ \t]*,?[ \t]*(?:\w+[ \t]+){0,3}?(?:said|says|asked|asks|whispered|shouted|replied|muttered|cried|"
    r"added|explained|insisted|warned|laughed|answered|yelled|snapped|murmured|sighed|continued|told (?:him|her|"
    r"them|me|us))\b"
)  # quoted speech attributed to a speaker: fiction and reported conversation, not an instruction to the reader
_CLAUSE_CHARS = 200  # the longest clause looked at on each side of an anchor
# the later words of a multi-word anchor ("no longer", "set aside") must begin some word of the text too; only
# words that survive the split into words can be checked that way (not "a.i." or markup)
_ANCHOR_LATER_WORDS = {
    a: tuple(w.encode() for w in a.split()[1:] if w.encode().translate(_BREAKS) == w.encode())
    for a in _ANCHOR_FIRST_WORDS
}
_FIRST_WORDS = tuple(
    sorted(
        {w.encode() for w in _ANCHOR_FIRST_WORDS.values()}
        | {w for ws in _ANCHOR_LATER_WORDS.values() for w in ws}
    )
)
_FIRST_WORDS_BY_BYTE = {b: tuple(f for f in _FIRST_WORDS if f[0] == b) for b in {f[0] for f in _FIRST_WORDS}}

_TAGS = re.compile(r"[\U000e0000-\U000e007f]+")
_EMOJI_TAG_SEQUENCE = re.compile(r"\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")  # flags of regions
_INVISIBLE_CHAR = re.compile(r"[\u200b\u2060-\u2064\ufeff\u180e\u202a-\u202e\u2066-\u2069]")
_ZERO_WIDTH = re.compile(r"(?:[\u200b\u2060-\u2064\ufeff\u180e\u202a-\u202e\u2066-\u2069][^\s]{0,8}){3,}")
# format characters that render as nothing; between two Latin letters they have no use in ordinary text
_FORMAT_CHARS = (
    "\u200b-\u200f\u2060-\u2064\ufeff\u180e\u202a-\u202e\u2066-\u2069\u034f\u115f\u1160\u3164\uffa0"
)
_IN_LATIN_WORD = re.compile(f"(?<=[A-Za-z])[{_FORMAT_CHARS}]+(?=[A-Za-z])")
_WEAK_IN_WORD = frozenset("\u200b\ufeff")  # a lone zero-width space breaks long words in web text: two needed
_IN_WORD_REACH = 64  # characters between in-word format characters that count as one run
_VARIATION_RUN = re.compile(
    "[\ufe00-\ufe0f\U000e0100-\U000e01ef]{3,}"
)  # one selector is an emoji's; 3+ carry data
_DROPPED = re.compile(f"[{_FORMAT_CHARS}\ufe00-\ufe0f\U000e0100-\U000e01ef\u00ad]")
_LOOK_ALIKE_CHAR = re.compile("[\u0370-\u04ff\uff01-\uff5e]")  # a cheap test before _MIXED_SCRIPT
_MIXED_SCRIPT = re.compile(
    "[A-Za-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][A-Za-z]|[\uff01-\uff5e]"
)
_LOOK_ALIKE = str.maketrans(
    "аеорсухіјѕԁһӏԛԝкАВЕКМНОРСТХІЈЅοноρνικτυαΑΒΕΖΗΙΚΜΝΟΡΤΧΥ",
    "aeopcyxijsdhlqwkabekmhopctxijsohopvikruaabezhikmnoptxy",
) | {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}  # full-width ASCII
_BLOB = re.compile(r"[A-Za-z0-9+/]{24,}={0,2}")
_BLOB_CHARS = bytes(
    ord("a") if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "+/") else ord(" ") for i in range(256)
)
MIN_BLOB_CHARS = 24
MIN_PRINTABLE = 0.9  # share of printable characters for a decoded blob to count as text


def windows(length: int, size: int = WINDOW_CHARS, overlap: int = OVERLAP_CHARS) -> Iterator[tuple[int, int]]:
    """``[start, end)`` windows covering ``length`` characters; each overlaps the previous by ``overlap``."""
    if size <= overlap:
        raise ValueError(f"window size {size} must exceed the overlap {overlap}")
    start = 0
    while True:
        end = min(start + size, length)
        yield start, end
        if end >= length:
            return
        start = end - overlap


def _anchored(lowered: str) -> set[str]:
    """The anchors worth looking for: those whose first word begins some word of ``lowered``.

    Splitting into words once is cheaper than searching the whole text for every anchor; text without spaces
    (Chinese, Japanese) is covered because a whole run of it is one "word" checked by substring.
    """
    # bytes: translate() and split() run in C; punctuation becomes a word break
    words = set(lowered.encode("utf-8", "surrogatepass").translate(_BREAKS).split())
    firsts: set[bytes] = set()
    for w in words:
        candidates = _FIRST_WORDS_BY_BYTE.get(w[0], ())  # a dozen prefixes to try, not all of them
        if candidates and w.startswith(candidates):
            firsts.update(f for f in candidates if w.startswith(f))
    firsts |= {f for w in words if len(w) > 24 for f in _FIRST_WORDS if f in w}  # unsegmented text, markup
    markup = {c for c in "<[" if c in lowered}  # special tokens are glued to words: search them directly
    return {
        a
        for a, first in _ANCHOR_FIRST_WORDS.items()
        if (first.encode() in firsts and all(w in firsts for w in _ANCHOR_LATER_WORDS[a])) or a[0] in markup
    }


_WORD_START = {a for s in SIGNATURES for a in s.anchors if a[0].isascii() and a[0].isalpha()}


def _occurrences(lowered: str, anchor: str) -> Iterator[int]:
    """Where ``anchor`` occurs; an anchor that begins with an ASCII letter only where a word starts.

    Short anchors ("ai") sit inside many words ("said"); the check costs less than a pattern tried there. Other
    anchors (markup, CJK text without spaces) count anywhere.
    """
    word = anchor in _WORD_START
    at = lowered.find(anchor)
    while at >= 0:
        if not (word and at and (lowered[at - 1].isalnum() or lowered[at - 1] == "_")):
            yield at
        at = lowered.find(anchor, at + 1)


def _matches(lowered: str, signature: Signature, present: set[str]) -> Iterator[re.Match[str]]:
    for anchor in signature.anchors:
        if anchor not in present:
            continue
        for at in _occurrences(lowered, anchor):
            if signature.back == 0:
                m = signature.pattern.match(lowered, at)
                if m:
                    yield m
            else:
                lo = max(0, at - signature.back)
                for m in signature.pattern.finditer(
                    lowered, lo, min(len(lowered), at + len(anchor) + _REACH)
                ):
                    if m.start() <= at < m.end():
                        yield m


@cache
def _cue_pattern(cues: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(c) for c in cues))


def _clause_ends(lowered: str) -> list[int]:
    """Sorted positions of the characters that end a clause."""
    return [m.start() for m in _CLAUSE_END.finditer(lowered)]


def _near(
    lowered: str, proximity: Proximity, present: set[str], ends: list[int], text: str
) -> Iterator[tuple[int, int]]:
    """Clauses (start, end) holding the proximity signature's verb, noun and reference.

    ``ends`` is :func:`_clause_ends` of ``lowered`` (the lower-cased ``text``); a clause reaches at most
    :data:`_CLAUSE_CHARS` either side.
    """
    cues = _cue_pattern(proximity.cues)
    for anchor in proximity.anchors:
        if anchor not in present:
            continue
        at = lowered.find(anchor)
        while at >= 0:
            lo = max(0, at - _CLAUSE_CHARS)
            i = bisect.bisect_left(ends, at)
            start = ends[i - 1] + 1 if i and ends[i - 1] >= lo else lo
            end = (
                ends[i]
                if i < len(ends) and ends[i] < at + _CLAUSE_CHARS
                else min(len(lowered), at + _CLAUSE_CHARS)
            )
            clause = lowered[start:end]
            if (
                cues.search(clause)
                and _verb_given(lowered, text, proximity, start, clause)
                and proximity.noun.search(clause)
                and (proximity.reference is None or proximity.reference.search(clause))
                and (proximity.unless is None or not proximity.unless.search(clause))
            ):
                yield start, end
            at = lowered.find(anchor, end)


def _commanded(lowered: str, text: str, at: int) -> bool:
    """Whether the verb at ``at`` stands where a command's verb does.

    That is: capitalised ("Ignore", "IGNORE"), or after a sentence start, "please", "you must" ... (``lowered``
    is ``text`` lower-cased, offsets aligned).
    """
    return text[at].isupper() or COMMAND_LEAD_IN.search(lowered, max(0, at - COMMAND_REACH), at) is not None


def _verb_given(lowered: str, text: str, proximity: Proximity, start: int, clause: str) -> bool:
    """Whether the clause holds the proximity's verb (given as a command or stating a fact, where that is asked)."""
    if not proximity.commanded:
        return proximity.verb.search(clause) is not None
    return any(
        (STATE.fullmatch(m.group()) or _commanded(lowered, text, start + m.start()))
        and not clause.startswith("-", m.end())  # a compound: "ignore-previous-instructions attacks"
        for m in proximity.verb.finditer(clause)
    )


def find_instructions(text: str, offset: int = 0) -> list[Finding]:
    """``instruction`` and ``role_marker`` matches in ``text`` (one window; offsets shifted by ``offset``)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two; keep offsets aligned
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    present = _anchored(lowered)
    found = [
        Finding(signature.rule, offset + m.start(), offset + m.end(), signature.label)
        for signature in SIGNATURES
        for m in _matches(lowered, signature, present)
        if not signature.commanded or _commanded(lowered, text, m.start())
    ]
    phrases = [(f.start - offset, f.end - offset) for f in found if f.rule == INSTRUCTION]
    ends = _clause_ends(lowered) if any(a in present for p in PROXIMITY for a in p.anchors) else []
    for proximity in PROXIMITY:  # only where no phrase matched: a phrase's span is the more precise
        for start, end in _near(lowered, proximity, present, ends, text):
            start += len(lowered[start:end]) - len(lowered[start:end].lstrip())
            if not any(a < end and start < b for a, b in phrases):
                found.append(Finding(INSTRUCTION, offset + start, offset + end, proximity.label))
                phrases.append((start, end))
    if '"' in lowered or "\u201d" in lowered:
        found = [
            f
            for f in found
            if f.rule != INSTRUCTION or not _in_dialogue(lowered, f.start - offset, f.end - offset)
        ]
    return found


def _in_dialogue(lowered: str, start: int, end: int) -> bool:
    """Whether ``[start, end)`` sits in quoted speech that a speech verb attributes ("...," the sailor said)."""
    opening = max(lowered.rfind(q, max(0, start - _QUOTE_REACH), start + 1) for q in '"\u201c')
    if opening < 0 or "\n" in lowered[opening:start]:
        return False
    closing = [c for c in (lowered.find(q, end, end + _QUOTE_REACH) for q in '"\u201d') if c >= 0]
    return (
        bool(closing)
        and "\n" not in lowered[end : min(closing)]
        and bool(_SPEECH.match(lowered, min(closing)))
    )


def find_invisible(text: str, offset: int = 0) -> list[Finding]:
    """Unicode tag runs (outside emoji flag sequences) and clusters of three or more zero-width characters."""
    if text.isascii():
        return []
    found = []
    flags = [m.span() for m in _EMOJI_TAG_SEQUENCE.finditer(text)]
    for m in _TAGS.finditer(text):
        if any(a <= m.start() and m.end() <= b for a, b in flags):
            continue
        hidden = "".join(chr(ord(c) - 0xE0000) for c in m.group() if 0xE0020 <= ord(c) <= 0xE007E)
        says = " that spell an instruction" if find_instructions(hidden) else ""
        found.append(
            Finding(INVISIBLE, offset + m.start(), offset + m.end(), f"Unicode tag characters{says}")
        )
    if _INVISIBLE_CHAR.search(text):
        found += [
            Finding(INVISIBLE, offset + m.start(), offset + m.end(), "zero-width or bidi-control characters")
            for m in _ZERO_WIDTH.finditer(text)
        ]
    beside_latin = _beside_latin(text)
    if beside_latin:
        found += [
            Finding(
                INVISIBLE, offset + start, offset + end, "zero-width or bidi-control characters inside words"
            )
            for start, end in _in_word_runs(text)
        ]
    found += [
        Finding(INVISIBLE, offset + m.start(), offset + m.end(), "a run of variation selectors")
        for m in _VARIATION_RUN.finditer(text)
    ]
    return found + _disguised(text, offset, beside_latin)


def _beside_latin(text: str) -> bool:
    """Whether a character :func:`_disguised` drops sits beside a Latin letter (Persian's joiners do not)."""
    for m in _DROPPED.finditer(text):
        at = m.start()
        if (at and text[at - 1].isascii() and text[at - 1].isalpha()) or (
            at + 1 < len(text) and text[at + 1].isascii() and text[at + 1].isalpha()
        ):
            return True
    return False


def _in_word_runs(text: str) -> Iterator[tuple[int, int]]:
    """Spans of format characters inside Latin words: two within :data:`_IN_WORD_REACH`, or one that is not weak."""
    hits = [m.span() for m in _IN_LATIN_WORD.finditer(text)]
    group: list[tuple[int, int]] = []
    for span in [*hits, None]:
        if span is not None and group and span[0] - group[-1][1] <= _IN_WORD_REACH:
            group.append(span)
            continue
        if group and (len(group) > 1 or not set(text[group[0][0] : group[0][1]]) <= _WEAK_IN_WORD):
            yield group[0][0], group[-1][1]
        group = [span] if span is not None else []


def _disguised(text: str, offset: int, beside_latin: bool) -> list[Finding]:
    """Instructions that match only once invisible characters are dropped and look-alike letters folded to Latin.

    Costs a second :func:`find_instructions` pass, run only on text holding such characters.
    """
    if not (beside_latin or (_LOOK_ALIKE_CHAR.search(text) and _MIXED_SCRIPT.search(text))):
        return []
    dropped = [m.start() for m in _DROPPED.finditer(text)]
    shifts = [at - i for i, at in enumerate(dropped)]  # where each dropped character sat in the cleaned text
    cleaned = _DROPPED.sub("", text).translate(_LOOK_ALIKE)
    plain = [(f.start, f.end) for f in find_instructions(text)]

    def original(at: int) -> int:
        return at + bisect.bisect_right(shifts, at)

    found = []
    for f in find_instructions(cleaned):
        start, end = original(f.start), original(f.end - 1) + 1
        if not any(a < end and start < b for a, b in plain):
            detail = f"{f.detail}, hidden by invisible characters or look-alike letters"
            found.append(Finding(INVISIBLE, offset + start, offset + end, detail))
    return found


def decode_blob(blob: str) -> str | None:
    """The text a base64 or hex blob holds, or None when it is not mostly printable text."""
    raw: bytes | None = None
    if blob[:2] in ("0x", "0X") and len(blob) % 2 == 0:  # a hex literal: the digits after its prefix
        blob = blob[2:]
    if len(blob) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in blob):
        raw = bytes.fromhex(blob)
    else:
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob.rstrip("=")) % 4), validate=False)
        except (binascii.Error, ValueError):
            return None
    text = raw.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\n\t\r" for c in text)
    return text if text and printable / len(text) >= MIN_PRINTABLE else None


def find_encoded(text: str, offset: int = 0, learned: bool = False) -> list[Finding]:
    """Base64 and hex blobs (24+ characters) whose decoded text matches ``instruction`` or ``role_marker``.

    With ``learned``, a blob whose decoded text the shipped classifier flags counts too.
    """
    marked = text.encode("ascii", "replace").translate(_BLOB_CHARS)  # one byte per character: offsets hold
    run = b"a" * MIN_BLOB_CHARS
    found = []
    at = marked.find(run)
    while at >= 0:
        m = _BLOB.match(text, at)
        end = m.end() if m else at + MIN_BLOB_CHARS
        decoded = decode_blob(m.group()) if m else None
        if decoded is not None and (
            find_instructions(decoded) or (learned and classifier.shipped().says_injection(decoded))
        ):
            kind = "hex" if all(c in "0123456789abcdefABCDEF" for c in m.group()) else "base64"
            found.append(Finding(ENCODED, offset + at, offset + end, f"{kind} blob of an instruction"))
        stop = marked.find(b" ", end)
        at = -1 if stop < 0 else marked.find(run, stop)
    return found


def find_injections(text: str, rules: tuple[str, ...] = SIGNATURE_RULES) -> list[Finding]:
    """Every finding of ``rules`` in ``text``, whatever its length, sorted by position and without repeats.

    The default is the signature rules; add ``classifier`` (or pass :data:`RULES`) for the learned model too.
    """
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown injection rules {sorted(unknown)}; choose from {', '.join(RULES)}")
    found: list[Finding] = []
    for start, end in windows(len(text)):
        window = text[start:end]
        if INSTRUCTION in rules or ROLE_MARKER in rules:
            found += [f for f in find_instructions(window, start) if f.rule in rules]
        if INVISIBLE in rules:
            found += find_invisible(window, start)
        if ENCODED in rules:
            found += find_encoded(window, start, learned=CLASSIFIER in rules)
        if CLASSIFIER in rules:
            found += find_learned(window, start)
    return _without_repeats(found)


def find_learned(text: str, offset: int = 0) -> list[Finding]:
    """Spans the shipped classifier flags (windows of about 60 words scored above its threshold)."""
    return [
        Finding(CLASSIFIER, offset + start, offset + end, f"learned classifier (log-odds {score:.1f})")
        for start, end, score in classifier.shipped().flagged(text)
    ]


def _without_repeats(found: list[Finding]) -> list[Finding]:
    """Drop findings that overlap an earlier one of the same rule (windows overlap, so edges are seen twice)."""
    kept: list[Finding] = []
    last_end: dict[str, int] = {}
    for finding in sorted(found, key=lambda f: (f.start, -f.end)):
        if finding.start < last_end.get(finding.rule, -1):
            continue
        kept.append(finding)
        last_end[finding.rule] = finding.end
    return kept
