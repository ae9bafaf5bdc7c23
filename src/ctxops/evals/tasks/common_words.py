"""Common-words extraction (RULER's ``cwe``): name the ten words repeated most often in a numbered list.

Ten common words appear 30 times each and every other word 3 times (6 and 1 below 4K tokens), shuffled and numbered
"1. word 2. word ...". The length search varies the number of uncommon words. Words, common and uncommon alike, come
from the English lists RULER draws from (the ``wonderwords`` package's nouns, adjectives and verbs, about 8,500
words), then made-up pronounceable words when a list needs more (RULER switches to another English list there). As
in RULER, a worked example comes first: the same question over a short list (40 words: 10 common x10 and 30 x3;
below 4K tokens 20 words: 10 x3 and 10 x1), its answer prefix and the numbered answer. Gold: the ten common words.
The task has no needle depth.
"""

from __future__ import annotations

import functools
import random
from importlib import resources

from ctxops.evals import words
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

NUM_COMMON = 10
TEMPLATE = (
    "Below is a numbered list of words. Some words appear more often than others; remember the ones that "
    "appear most often.\n\n{context}\n\nQuestion: Which are the {num} most common words in the list above?"
)
ANSWER_PREFIX = "Answer: The {num} words that appear most often in the list are:"


@functools.cache
def english_words() -> tuple[str, ...]:
    """The nouns, adjectives and verbs of wonderwords: one sorted list without repeats (RULER's cwe pool)."""
    assets = resources.files("wonderwords").joinpath("assets")
    found: set[str] = set()
    for name in ("nounlist.txt", "adjectivelist.txt", "verblist.txt"):
        found.update(
            w.strip() for w in assets.joinpath(name).read_text(encoding="utf-8").splitlines() if w.strip()
        )
    return tuple(sorted(found))


def word_supply(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct words: the shuffled English lists, then pseudo-words."""
    english = list(english_words())
    rng.shuffle(english)
    if count <= len(english):
        return english[:count]
    return english + words.distinct(words.pseudo_word, rng, count - len(english), set(english))


def numbered(entries: list[str]) -> str:
    """``1. a 2. b ...``."""
    return " ".join(f"{i}. {w}" for i, w in enumerate(entries, 1))


def word_list(common: list[str], uncommon: list[str], freq_common: int, freq_uncommon: int, seed: int) -> str:
    """The shuffled, numbered list (the shuffle depends only on ``seed`` and the words)."""
    entries = common * freq_common + uncommon * freq_uncommon
    random.Random(seed).shuffle(entries)
    return numbered(entries)


def example(rng: random.Random, long: bool) -> str:
    """The worked example (RULER's shape): question over a short list, answer prefix, the numbered answer."""
    size, freq_common, freq_uncommon = (40, 10, 3) if long else (20, 3, 1)
    pool = word_supply(rng, size)
    context = word_list(pool[:NUM_COMMON], pool[NUM_COMMON:], freq_common, freq_uncommon, rng.getrandbits(32))
    question = TEMPLATE.format(context=context, num=NUM_COMMON)
    return f"{question}\n{ANSWER_PREFIX.format(num=NUM_COMMON)} {numbered(pool[:NUM_COMMON])}\n\n"


@register_task(
    "cwe",
    family="common_words",
    max_tokens=120,
    uses_depth=False,
    description="10 most common words in a list",
)
def build_cwe(ctx: BuildContext) -> Sample:
    """Build one common-words item."""
    rng = ctx.rng
    long = ctx.spec.length >= 4096
    shot = example(rng, long)
    freq_common, freq_uncommon = (30, 3) if long else (6, 1)
    supply = word_supply(rng, NUM_COMMON + max(ctx.spec.length // 2, 64))
    common, rest = supply[:NUM_COMMON], supply[NUM_COMMON:]
    shuffle_seed = rng.getrandbits(32)
    prefix = ANSWER_PREFIX.format(num=NUM_COMMON)

    def render(n: int) -> Rendered:
        if n > len(rest):
            rest.extend(words.distinct(words.pseudo_word, rng, n - len(rest), set(supply) | set(rest)))
        context = word_list(common, rest[:n], freq_common, freq_uncommon, shuffle_seed + n)
        prompt = shot + TEMPLATE.format(context=context, num=NUM_COMMON)
        return prompt, prefix, {"freq_common": freq_common, "freq_uncommon": freq_uncommon}

    return ctx.fit(render, common)
