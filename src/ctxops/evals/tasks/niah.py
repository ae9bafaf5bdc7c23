"""Needle-in-a-haystack tasks under RULER's names: single, multikey, multivalue and multiquery needles.

A needle reads "One of the special magic {numbers|uuids} for {key} is: {value}." and sits at a sentence boundary.
The first gold needle goes at the requested depth; any other needles (distractors, extra values, extra queried keys)
go at seeded random depths, all recorded in the sample's metadata. In the ``needle`` haystack every filler line is a
distractor needle with its own key; the ``noise`` haystack is RULER's: one five-sentence block repeated, a block a
line, needles between blocks. The wording is ours and stays plural where RULER rewrites one-value tasks in the
singular ("A special magic number ... is"): the shipped ``builtin`` model was trained on this wording and gets 3 of
30 samples right at 512 tokens in the singular, 30 of 30 in the plural. A task knows text, not engines.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ctxops.evals import words
from ctxops.evals.haystack import HaystackKind, insert_at_depths, join_sentences
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

MAX_TOKENS = 128
INTRO = (
    "Some special magic {kind} are hidden in the text below. Read it carefully and remember them: "
    "you will be asked about the {kind} afterwards."
)
NEEDLE = "One of the special magic {kind} for {key} is: {value}."
QUESTION = "What are all the special magic {kind} for {query} mentioned in the provided text?"
ANSWER_PREFIX = "The special magic {kind} for {query} mentioned in the provided text are"
TEMPLATE = INTRO + "\n\n{context}\n\n" + QUESTION


class Value(StrEnum):
    """What a needle's key or value looks like."""

    WORD = "words"
    NUMBER = "numbers"
    UUID = "uuids"


class Filler(StrEnum):
    """What fills the space between needles."""

    NOISE = "noise"
    ESSAY = "essay"
    NEEDLE = "needle"  # every line a distractor needle


@dataclass(frozen=True)
class NeedleSetup:
    """One NIAH variant: filler, key and value types, and how many keys, values per key and queried keys."""

    filler: Filler
    key: Value
    value: Value
    num_keys: int = 1
    num_values: int = 1
    num_queries: int = 1


def make_word(kind: Value) -> Callable[[random.Random], str]:
    """The generator of ``kind`` keys or values."""
    return {Value.WORD: words.key_word, Value.NUMBER: words.number_value, Value.UUID: words.uuid_value}[kind]


def needle(setup: NeedleSetup, key: str, value: str) -> str:
    """The needle sentence."""
    return NEEDLE.format(kind=setup.value.value, key=key, value=value)


def query_text(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class NeedleDoc:
    """A needle item before rendering: the parts a perturbation (:mod:`ctxops.evals.perturb`) may rewrite.

    Templates take ``{kind}``, ``{key}``, ``{value}`` (the needle) and ``{kind}``, ``{query}`` (the rest).
    """

    kind: str  # the values' name in the text: numbers, uuids, words
    needles: tuple[tuple[float, str, str], ...]  # (depth, key, value); the first is the first gold needle
    queried: tuple[str, ...]  # the keys asked for
    filler: Callable[[int], list[str]]  # n -> the first n filler units (prefix-stable)
    lines: bool  # filler units one a line (noise blocks, needles, code, logs) or joined as prose
    asked_as: tuple[str, ...] = ()  # how the question names the queried keys (empty: the keys themselves)
    needle_template: str = NEEDLE
    intro: str = INTRO
    question: str = QUESTION
    prefix: str = ANSWER_PREFIX
    question_first: bool = False  # the question goes before the document instead of after it
    extra: tuple[
        tuple[float, str], ...
    ] = ()  # more sentences placed among the filler (near-miss distractors)

    @property
    def gold(self) -> list[str]:
        """The values of the queried keys, in query order."""
        return [v for k in self.queried for _, key, v in self.needles if key == k]

    @property
    def query(self) -> str:
        return query_text(self.asked_as or self.queried)

    def sentence(self, key: str, value: str) -> str:
        """A needle sentence in this document's template."""
        return self.needle_template.format(kind=self.kind, key=key, value=value)

    def placed(self) -> list[tuple[float, str]]:
        """(depth, sentence) of every needle, then the extra sentences."""
        return [(d, self.sentence(k, v)) for d, k, v in self.needles] + list(self.extra)

    def render(self, filler: list[str]) -> tuple[str, str]:
        """(prompt, answer prefix) with ``filler`` as the document."""
        sentences = insert_at_depths(filler, self.placed())
        context = "\n".join(sentences) if self.lines else join_sentences(sentences)
        intro = self.intro.format(kind=self.kind)
        question = self.question.format(kind=self.kind, query=self.query)
        parts = (question, intro, context) if self.question_first else (intro, context, question)
        return "\n\n".join(parts), self.prefix.format(kind=self.kind, query=self.query)


def build_niah(setup: NeedleSetup, ctx: BuildContext) -> Sample:
    """Build one NIAH item for ``setup``."""
    rng = ctx.rng
    keys = words.distinct(make_word(setup.key), rng, setup.num_keys)
    values = {k: words.distinct(make_word(setup.value), rng, setup.num_values) for k in keys}
    pairs = [(k, v) for k in keys for v in values[k]]
    depths = [ctx.depth] + [rng.random() for _ in pairs[1:]]
    if setup.filler is Filler.NEEDLE:
        gold = {v for k in keys[: setup.num_queries] for v in values[k]}
        filler = _distractors(setup, ctx, set(keys), gold)
    else:
        kind = HaystackKind.NOISE if setup.filler is Filler.NOISE else HaystackKind.PROSE
        filler = ctx.haystack.stream(kind, rng).take
    doc = NeedleDoc(
        kind=setup.value.value,
        needles=tuple((d, k, v) for d, (k, v) in zip(depths, pairs, strict=True)),
        queried=tuple(keys[: setup.num_queries]),
        filler=filler,
        lines=setup.filler is not Filler.ESSAY,  # needles and noise blocks: one a line
    )
    doc = ctx.perturb_needles(doc)
    metadata = {
        "needle_depths": [d for d, _, _ in doc.needles],
        "needles": [doc.sentence(k, v) for _, k, v in doc.needles],
        "keys": list(dict.fromkeys(k for _, k, _ in doc.needles)),
        "query": list(doc.queried),
    }

    def render(n: int) -> Rendered:
        prompt, prefix = doc.render(doc.filler(n))
        return prompt, prefix, metadata

    return ctx.fit(render, doc.gold)


def _distractors(setup: NeedleSetup, ctx: BuildContext, keys: set[str], values: set[str]):
    """A prefix-stable list of distractor needles whose keys and values differ from the real ones."""
    made: list[str] = []
    used = set(keys) | set(values)
    make_key, make_value = make_word(setup.key), make_word(setup.value)
    rng = ctx.rng

    def take(n: int) -> list[str]:
        while len(made) < n:
            key = make_key(rng)
            value = make_value(rng)
            if key in used or value in used:
                continue
            used.update((key, value))
            made.append(needle(setup, key, value))
        return made[:n]

    return take


SETUPS = {
    "niah_single_1": NeedleSetup(Filler.NOISE, Value.WORD, Value.NUMBER),
    "niah_single_2": NeedleSetup(Filler.ESSAY, Value.WORD, Value.NUMBER),
    "niah_single_3": NeedleSetup(Filler.ESSAY, Value.WORD, Value.UUID),
    "niah_multikey_1": NeedleSetup(Filler.ESSAY, Value.WORD, Value.NUMBER, num_keys=4),
    "niah_multikey_2": NeedleSetup(Filler.NEEDLE, Value.WORD, Value.NUMBER),
    "niah_multikey_3": NeedleSetup(Filler.NEEDLE, Value.UUID, Value.UUID),
    "niah_multivalue": NeedleSetup(Filler.ESSAY, Value.WORD, Value.NUMBER, num_values=4),
    "niah_multiquery": NeedleSetup(Filler.ESSAY, Value.WORD, Value.NUMBER, num_keys=4, num_queries=4),
}

for _name, _setup in SETUPS.items():
    register_task(
        _name,
        family="niah",
        max_tokens=MAX_TOKENS,
        description=f"{_setup.filler.value} haystack, {_setup.key.value[:-1]} -> {_setup.value.value[:-1]}, "
        f"{_setup.num_keys} key(s) x {_setup.num_values} value(s), {_setup.num_queries} queried",
    )(functools.partial(build_niah, _setup))
