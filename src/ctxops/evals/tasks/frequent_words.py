"""Frequent-words extraction (RULER's ``fwe``): name the three most frequent "coded words" in a text.

A vocabulary of ``length // 50`` random six-letter words follows a Zipf law: the word of rank k appears about
``N * k**-2 / zeta(2)`` times, where the length search picks N. The rank-1 word is replaced by ``...`` (noise the
model is told to ignore), so the gold answer is ranks 2 to 4. The task has no needle depth.
"""

from __future__ import annotations

import math
import random

from ctxops.evals import words
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

ALPHA = 2.0
ZETA = math.pi**2 / 6  # zeta(2)
TEMPLATE = (
    "Read the coded text below and keep count of how often each coded word appears.\n\n{context}\n\n"
    "Question: Ignore the dots '...'. Without any explanation, which three coded words appear most often in "
    "the coded text above?"
)
ANSWER_PREFIX = "Answer: The three most frequent coded words in the coded text above are:"


def counts(total: int, vocabulary: int) -> list[int]:
    """Occurrences of each rank (1-based rank k at index k-1) for ``total`` words under the Zipf law."""
    return [int(total * k**-ALPHA / ZETA) for k in range(1, vocabulary + 1)]


@register_task(
    "fwe", family="frequent_words", max_tokens=50, uses_depth=False, description="3 most frequent coded words"
)
def build_fwe(ctx: BuildContext) -> Sample:
    """Build one frequent-words item."""
    rng = ctx.rng
    vocabulary = words.distinct(words.letter_word, rng, max(ctx.spec.length // 50, 10))
    gold = vocabulary[1:4]
    shuffle_seed = rng.getrandbits(32)
    minimum = 80  # from here on ranks 2-5 differ by at least one occurrence (the gold top three is unique)

    def render(n: int) -> Rendered:
        per_rank = counts(minimum + n, len(vocabulary))
        entries = ["..."] * per_rank[0]
        for word, times in zip(vocabulary[1:], per_rank[1:], strict=True):
            entries += [word] * times
        random.Random(shuffle_seed + n).shuffle(entries)
        prompt = TEMPLATE.format(context=" ".join(entries))
        return prompt, ANSWER_PREFIX, {"counts": per_rank[:5]}

    return ctx.fit(render, gold)
