"""What every probe family shares: registration as an eval task, canaries, and a document with text at a depth.

Probes are registered in the eval task registry under family ``scan`` (so ``EvalConfig``, the runner, its resume
and ``ctxops compare`` take them as they take RULER's tasks), each name being its attack family. Within a family the
template rotates with the sample's seed, so every template is measured at every depth and length. This module
knows text, not engines.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ctxops.evals import words
from ctxops.evals.haystack import HaystackKind, insert_at_depths, join_sentences
from ctxops.evals.sample import Metric
from ctxops.evals.tasks.base import BuildContext, register_task

SCAN_FAMILY = "scan"


def register_probe(name: str, max_tokens: int, uses_depth: bool = True, description: str = ""):
    """Register a probe builder as the eval task ``name`` in the ``scan`` family."""
    return register_task(
        name,
        family=SCAN_FAMILY,
        max_tokens=max_tokens,
        metric=Metric.ANY,
        uses_depth=uses_depth,
        description=description,
    )


def make_canary(rng: random.Random) -> str:
    """A random marker such as ``QZKW-4821`` (eight letters and digits: never met by chance)."""
    return f"{words.capitals(rng, 4)}-{rng.randint(1000, 9999)}"


def pick(templates: dict[str, Callable[..., str]] | dict[str, str], ctx: BuildContext) -> str:
    """The template name for this sample: templates rotate with the seed, so each meets every depth."""
    names = list(templates)
    return names[ctx.spec.seed % len(names)]


def document(ctx: BuildContext, placed: list[tuple[float, str]]) -> Callable[[int], str]:
    """A prose document of ``n`` filler sentences with each (depth, text) of ``placed`` inserted."""
    stream = ctx.haystack.stream(HaystackKind.PROSE, ctx.rng)

    def render(n: int) -> str:
        return join_sentences(insert_at_depths(stream.take(n), placed))

    return render
