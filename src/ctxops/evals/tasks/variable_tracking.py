"""Variable tracking (RULER's ``vt``): follow a chain of assignments through a noise haystack.

One chain of five variables: ``VAR ABCDE = 12345`` then four hops ``VAR FGHIJ = VAR ABCDE`` and so on, each on its
own line among RULER's noise blocks (one a line). The first assignment sits at the requested depth, the later hops
at seeded random points after it, in order. As in RULER, a worked example comes first (its own chain in a short
noise text: the question, the answer prefix and the answer), and the answer prefix states how many variables there
are. Gold: the five names.
"""

from __future__ import annotations

import random

from ctxops.evals import words
from ctxops.evals.haystack import NOISE_BLOCK, HaystackKind, insert_at_depths
from ctxops.evals.sample import Sample
from ctxops.evals.tasks.base import BuildContext, Rendered, register_task

NUM_HOPS = 4
TEMPLATE = (
    "Keep track of the chains of variable assignments hidden in the text below.\n\n{context}\n\n"
    "Question: Which variables are assigned the value {value} in the text above? List all of them."
)
ANSWER_PREFIX = (
    f"Answer: Following the assignments in the text above, {NUM_HOPS + 1} variables are assigned the value "
    "{value}; they are:"
)
EXAMPLE_BLOCKS = 5  # noise blocks in the worked example


def chain(rng: random.Random, exclude: set[str] | None = None) -> tuple[list[str], str, list[str]]:
    """(variable names, value, assignment sentences) for one chain of ``NUM_HOPS`` hops."""
    names = words.distinct(words.capitals, rng, NUM_HOPS + 1, exclude)
    value = str(rng.randint(10000, 99999))
    lines = [f"VAR {names[0]} = {value}."] + [
        f"VAR {names[i + 1]} = VAR {names[i]}." for i in range(NUM_HOPS)
    ]
    return names, value, lines


def example(rng: random.Random) -> str:
    """The worked example: a chain among a few noise blocks, the question, the answer prefix and the answer."""
    names, value, lines = chain(rng)
    depths = sorted(rng.random() for _ in lines)
    context = "\n".join(
        insert_at_depths([NOISE_BLOCK] * EXAMPLE_BLOCKS, list(zip(depths, lines, strict=True)))
    )
    question = TEMPLATE.format(context=context, value=value)
    return f"{question}\n{ANSWER_PREFIX.format(value=value)} {' '.join(names)}\n\n"


@register_task(
    "vt", family="variable_tracking", max_tokens=30, description="5-variable assignment chain in noise"
)
def build_vt(ctx: BuildContext) -> Sample:
    """Build one variable-tracking item."""
    rng = ctx.rng
    shot = example(rng)
    names, value, lines = chain(rng)
    later = sorted(ctx.depth + (1 - ctx.depth) * rng.random() for _ in range(NUM_HOPS))
    depths = [ctx.depth, *later]
    placed = list(zip(depths, lines, strict=True))
    stream = ctx.haystack.stream(HaystackKind.NOISE, rng)

    def render(n: int) -> Rendered:
        context = "\n".join(insert_at_depths(stream.take(n), placed))
        prompt = shot + TEMPLATE.format(context=context, value=value)
        return prompt, ANSWER_PREFIX.format(value=value), {"needle_depths": depths, "needles": lines}

    return ctx.fit(render, names)
