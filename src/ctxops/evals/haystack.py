"""Haystacks: the filler text a task hides its needles in, as a stream of sentences.

Three sources: ``noise`` (RULER's noise haystack: one block of five short sentences, repeated; the stream's unit is
the whole block), ``prose`` (our generated essay prose, see :mod:`ctxops.evals.prose`) and the user's own files
(``--haystack FILE...``, split into sentences, wrapping around). The ``haystack`` perturbation adds three generated
kinds (:mod:`ctxops.evals.filler_text`): source code and JSON log lines (a line a unit) and Spanish sentences. As RULER reads its essays, prose is the same text
from the same start in every sample (the seed picks needles, not the haystack), so samples of one length share
their prompt up to the first needle and a prefix cache computes it once. A haystack knows sentences, not tokens: a task decides how many
to take by measuring the prompt with the target's tokenizer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ctxops.evals import filler_text
from ctxops.evals.prose import prose_sentences

NOISE_SENTENCES = (
    "The grass is green.",
    "The sky is blue.",
    "The sun is yellow.",
    "Here we go.",
    "There and back again.",
)
NOISE_BLOCK = " ".join(NOISE_SENTENCES)
PROSE_SEED = 20240406  # the one seed of the generated prose every sample reads
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class HaystackKind(StrEnum):
    """Which filler a task uses: repeated noise sentences, or prose (generated or the user's files), or another kind."""

    NOISE = "noise"
    PROSE = "prose"
    CODE = "code"  # Python source, a line a unit
    LOGS = "logs"  # JSON log lines, a line a unit
    SPANISH = "spanish"  # Spanish sentences, a second language


_GENERATED = {
    HaystackKind.CODE: filler_text.code_lines,
    HaystackKind.LOGS: filler_text.log_lines,
    HaystackKind.SPANISH: filler_text.spanish_sentences,
}


def split_sentences(text: str) -> list[str]:
    """Split text at sentence ends (``.``, ``!`` or ``?`` followed by whitespace); blank pieces are dropped."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


@dataclass(frozen=True)
class Haystack:
    """Where prose comes from: the built-in generator, or sentences read from the user's files."""

    files: tuple[str, ...] = ()
    user_sentences: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.files and not self.user_sentences:
            sentences: list[str] = []
            for name in self.files:
                path = Path(name)
                if not path.is_file():
                    raise ValueError(
                        f"haystack file {name!r} does not exist; pass readable text files to --haystack"
                    )
                sentences += split_sentences(path.read_text(encoding="utf-8", errors="replace"))
            if len(sentences) < 10:
                raise ValueError(
                    f"the haystack files {list(self.files)} hold only {len(sentences)} sentences; "
                    "give at least 10 sentences of prose"
                )
            object.__setattr__(self, "user_sentences", tuple(sentences))

    @property
    def source(self) -> str:
        """A short description for provenance: ``generated prose`` or the file names."""
        return ", ".join(self.files) if self.files else "generated prose"

    def stream(self, kind: HaystackKind, rng: random.Random | None = None) -> SentenceStream:
        """A prefix-stable stream of ``kind`` units (``take(n)`` is always a prefix of ``take(n+1)``).

        The stream is the same text for every sample; ``rng`` is accepted for callers that pass one, and unused.
        """
        return SentenceStream(self, kind)


class SentenceStream:
    """Units (sentences, or noise blocks) drawn lazily and cached, so a length search can ask for any count again."""

    def __init__(self, haystack: Haystack, kind: HaystackKind) -> None:
        self._haystack = haystack
        self._kind = kind
        self._rng = random.Random(PROSE_SEED)
        self._cache: list[str] = []

    def take(self, count: int) -> list[str]:
        """The first ``count`` sentences."""
        while len(self._cache) < count:
            self._extend(max(count - len(self._cache), 64))
        return self._cache[:count]

    def _extend(self, count: int) -> None:
        have = len(self._cache)
        if self._kind is HaystackKind.NOISE:
            self._cache += [NOISE_BLOCK] * count
        elif self._kind in _GENERATED:
            self._cache += _GENERATED[self._kind](self._rng, count)
        elif self._haystack.user_sentences:
            pool = self._haystack.user_sentences
            self._cache += [pool[(have + i) % len(pool)] for i in range(count)]
        else:
            self._cache += prose_sentences(self._rng, count)


def join_sentences(sentences: Sequence[str]) -> str:
    """Sentences -> text: a space between sentences, a blank line after a paragraph's last one."""
    parts: list[str] = []
    for sentence in sentences:
        if sentence.endswith("\n"):
            parts.append(sentence.rstrip("\n") + "\n\n")
        else:
            parts.append(sentence + " ")
    return "".join(parts).rstrip()


def insert_at_depths(sentences: Sequence[str], needles: Sequence[tuple[float, str]]) -> list[str]:
    """Insert each (depth, needle) at the sentence boundary nearest ``depth`` (0 = first, 1 = last).

    Needles at the same boundary keep their given order.
    """
    out = list(sentences)
    placed = sorted(
        ((round(depth * len(sentences)), order, text) for order, (depth, text) in enumerate(needles)),
        key=lambda item: (item[0], item[1]),
    )
    for shift, (index, _, text) in enumerate(placed):
        out.insert(index + shift, text)
    return out
