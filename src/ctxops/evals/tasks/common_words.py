"""Common-words extraction (RULER's ``cwe``): name the ten words repeated most often in a numbered list.

Ten common words appear 30 times each and every other word 3 times (6 and 1 below 4K tokens), shuffled and numbered
"1. word 2. word ...". A worked example of 40 entries comes first. The length search varies the number of uncommon
words. Words are English nouns and adjectives first, then made-up pronounceable words when a long list needs more.
Gold: the ten common words. The task has no needle depth.
"""

from __future__ import annotations

import random

from ctxops.evals import words
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

NUM_COMMON = 10
TEMPLATE = (
    "Below is a numbered list of words. Some words appear more often than others; remember the ones that "
    "appear most often.\n\n{context}\n\nQuestion: Which are the {num} most common words in the list above?"
)
ANSWER_PREFIX = "Answer: The {num} words that appear most often in the list are:"


def word_supply(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct words: the shuffled English lists, then pseudo-words."""
    english = list(dict.fromkeys(words.ADJECTIVES + words.NOUNS))
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


def example(rng: random.Random) -> str:
    """The worked example: 10 words twice and 20 words once, then the answer."""
    pool = words.distinct(words.pseudo_word, rng, 30)
    context = word_list(pool[:10], pool[10:], 2, 1, rng.getrandbits(32))
    question = TEMPLATE.format(context=context, num=NUM_COMMON)
    return f"Example:\n{question}\n{ANSWER_PREFIX.format(num=NUM_COMMON)} {' '.join(pool[:10])}\n\n"


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
    shot = example(rng)
    freq_common, freq_uncommon = (30, 3) if ctx.spec.length >= 4096 else (6, 1)
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
