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
from dataclasses import dataclass
from enum import StrEnum

from ctxops.evals import words
from ctxops.evals.haystack import HaystackKind, insert_at_depths, join_sentences
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

MAX_TOKENS = 128
TEMPLATE = (
    "Some special magic {kind} are hidden in the text below. Read it carefully and remember them: "
    "you will be asked about the {kind} afterwards.\n\n{context}\n\n"
    "What are all the special magic {kind} for {query} mentioned in the provided text?"
)
ANSWER_PREFIX = "The special magic {kind} for {query} mentioned in the provided text are"


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


def _make(kind: Value):
    return {Value.WORD: words.key_word, Value.NUMBER: words.number_value, Value.UUID: words.uuid_value}[kind]


def needle(setup: NeedleSetup, key: str, value: str) -> str:
    """The needle sentence."""
    return f"One of the special magic {setup.value.value} for {key} is: {value}."


def _query_text(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " and " + keys[-1]


def build_niah(setup: NeedleSetup, ctx: BuildContext) -> Sample:
    """Build one NIAH item for ``setup``."""
    rng = ctx.rng
    keys = words.distinct(_make(setup.key), rng, setup.num_keys)
    values = {k: words.distinct(_make(setup.value), rng, setup.num_values) for k in keys}
    queried = keys[: setup.num_queries]
    gold = [v for k in queried for v in values[k]]
    needles = [(k, v) for k in keys for v in values[k]]
    depths = [ctx.depth] + [rng.random() for _ in needles[1:]]
    placed = [(d, needle(setup, k, v)) for d, (k, v) in zip(depths, needles, strict=True)]
    query = _query_text(queried)
    kind = setup.value.value
    prefix = ANSWER_PREFIX.format(kind=kind, query=query)
    if setup.filler is Filler.NEEDLE:
        distractors = _distractors(setup, ctx, set(keys), set(gold))
    else:
        stream = ctx.haystack.stream(
            HaystackKind.NOISE if setup.filler is Filler.NOISE else HaystackKind.PROSE, rng
        )

    def render(n: int) -> Rendered:
        filler = distractors(n) if setup.filler is Filler.NEEDLE else stream.take(n)
        sentences = insert_at_depths(filler, placed)
        lines = setup.filler is not Filler.ESSAY  # needles and noise blocks: one a line
        context = "\n".join(sentences) if lines else join_sentences(sentences)
        prompt = TEMPLATE.format(kind=kind, context=context, query=query)
        metadata = {
            "needle_depths": depths,
            "needles": [n for _, n in placed],
            "keys": keys,
            "query": queried,
        }
        return prompt, prefix, metadata

    return ctx.fit(render, gold)


def _distractors(setup: NeedleSetup, ctx: BuildContext, keys: set[str], values: set[str]):
    """A prefix-stable list of distractor needles whose keys and values differ from the real ones."""
    made: list[str] = []
    used = set(keys) | set(values)
    make_key, make_value = _make(setup.key), _make(setup.value)
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
