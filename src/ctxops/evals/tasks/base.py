"""The task registry, and the length search every task uses to fill its prompt to a token budget.

A task is a function ``build(ctx) -> Sample`` registered under a name with :func:`register_task`. It gets a
:class:`BuildContext` (the item's spec, a seeded ``random.Random``, the haystack, the token counter) and calls
``ctx.fit(render)`` with a function that renders the prompt for ``n`` filler units (sentences, words, documents);
``fit`` finds the largest ``n`` whose prompt plus generation budget fits in the requested length. A task knows text,
not engines.

A perturbed item (``spec.variant``, see :mod:`ctxops.evals.perturb`) is built by the same builder with a
:class:`Perturbation` in the context: it may move the depth, rewrite a needle task's parts (:class:`NeedleDoc`) or
the rendered text; ``fit`` measures the perturbed prompt, so it fits the length too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ctxops.evals.haystack import Haystack
from ctxops.evals.prompt import TokenCounter
from ctxops.evals.sample import Metric, Sample, SampleSpec

if TYPE_CHECKING:
    from ctxops.evals.tasks.niah import NeedleDoc

Rendered = tuple[str, str, dict[str, Any]]  # (prompt, answer prefix, metadata)


class Perturbation(Protocol):
    """What a task asks of a perturbation while it builds an item (each hook may return its input unchanged)."""

    def depth(self, depth: float) -> float:
        """The depth the first needle goes to instead of ``depth``."""
        ...

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        """A needle task's parts (needles, question, filler) after the perturbation."""
        ...

    def text(self, rendered: Rendered) -> Rendered:
        """The rendered (prompt, answer prefix, metadata) after the perturbation."""
        ...


class TaskError(ValueError):
    """A task cannot be built as asked (unknown name, length too short, missing documents)."""


@dataclass(frozen=True)
class QARecord:
    """One question over the user's documents: the gold documents, the question and its accepted answers."""

    documents: tuple[str, ...]
    question: str
    answers: tuple[str, ...]
    related: tuple[str, ...] = ()  # distractors used first (SQuAD: the other paragraphs of the same article)

    def __post_init__(self) -> None:
        if not self.documents or not self.question or not self.answers:
            raise ValueError("a QA record needs non-empty 'documents', 'question' and 'answers'")


@dataclass(frozen=True)
class TaskInfo:
    """A registered task: its name, family, builder and RULER settings."""

    name: str
    family: str
    build: Callable[[BuildContext], Sample]
    max_tokens: int  # the generation budget
    metric: Metric
    uses_depth: bool  # False: the task has no needle position (cwe, fwe); samples carry depth None
    description: str = ""


TASKS: dict[str, TaskInfo] = {}


def register_task(
    name: str,
    *,
    family: str,
    max_tokens: int,
    metric: Metric = Metric.ALL,
    uses_depth: bool = True,
    description: str = "",
) -> Callable[[Callable[[BuildContext], Sample]], Callable[[BuildContext], Sample]]:
    """Register ``build`` under ``name`` (a decorator; the same builder may be registered under several names)."""

    def decorate(build: Callable[[BuildContext], Sample]) -> Callable[[BuildContext], Sample]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is registered twice")
        TASKS[name] = TaskInfo(name, family, build, max_tokens, metric, uses_depth, description)
        return build

    return decorate


def get_task(name: str) -> TaskInfo:
    """The task called ``name``; an unknown name raises :class:`TaskError` listing the known ones."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose from: {', '.join(TASKS)}")
    return TASKS[name]


@dataclass
class BuildContext:
    """Everything a task's builder may use for one item."""

    spec: SampleSpec
    info: TaskInfo
    count_tokens: TokenCounter
    haystack: Haystack = field(default_factory=Haystack)
    qa_records: Sequence[QARecord] = ()
    perturbation: Perturbation | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.spec.rng_seed())

    @property
    def depth(self) -> float:
        """The requested depth (0.5 for a depth-less task that asks anyway), as the perturbation moves it."""
        depth = 0.5 if self.spec.depth is None else self.spec.depth
        return depth if self.perturbation is None else self.perturbation.depth(depth)

    def perturb_needles(self, doc: NeedleDoc) -> NeedleDoc:
        """``doc`` as the item's perturbation rewrites it (unchanged for a clean item)."""
        return doc if self.perturbation is None else self.perturbation.needles(doc)

    @property
    def budget(self) -> int:
        """Input tokens available: the length minus the generation budget."""
        return self.spec.length - self.info.max_tokens

    def fit(self, render: Callable[[int], Rendered], answers: Sequence[str], *, start: int = 0) -> Sample:
        """Build the sample with the most filler units that fit the length (at least ``start`` must fit)."""
        cache: dict[int, tuple[Rendered, int]] = {}
        perturbation = self.perturbation

        def measure(n: int) -> int:
            if n not in cache:
                rendered = render(n) if perturbation is None else perturbation.text(render(n))
                cache[n] = (rendered, self.count_tokens(rendered[0], rendered[1]))
            return cache[n][1]

        if measure(start) > self.budget:
            raise TaskError(
                f"length {self.spec.length} is too short for task {self.spec.task!r}: its prompt alone needs "
                f"{measure(start)} tokens plus {self.info.max_tokens} to generate; use a longer length"
            )
        best = _largest_fitting(measure, self.budget, start)
        (prompt, prefix, metadata), tokens = cache[best]
        metadata = {"filler_units": best, **metadata}
        return Sample(
            self.spec,
            prompt,
            prefix,
            tuple(answers),
            self.info.max_tokens,
            self.info.metric,
            tokens,
            metadata,
        )


def _largest_fitting(measure: Callable[[int], int], budget: int, start: int) -> int:
    """Largest n >= start with measure(n) <= budget, given measure(start) fits and measure grows with n."""
    base = measure(start)
    probe = start + 16
    per_unit = max((measure(probe) - base) / 16, 0.25)
    lo = start if measure(probe) > budget else probe
    hi = None if measure(probe) <= budget else probe
    guess = max(lo + 1, int(start + (budget - base) / per_unit))
    while hi is None:  # gallop from the linear guess until something overflows
        if measure(guess) <= budget:
            lo, guess = guess, int(guess * 1.03) + 2
        else:
            hi = guess
    while hi - lo > 1:  # bisect: lo fits, hi does not
        mid = (lo + hi) // 2
        if measure(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def build_sample(
    task: str,
    length: int,
    depth: float | None,
    seed: int,
    count_tokens: TokenCounter,
    *,
    haystack: Haystack | None = None,
    qa_records: Sequence[QARecord] = (),
    variant: str = "",
    perturbation: Perturbation | None = None,
) -> Sample:
    """Build one item of ``task`` filling ``length`` tokens (prompt + generation budget), deterministic by seed.

    Args:
        task: a registered task name (see ``TASKS``).
        length: the target length in tokens, counted by ``count_tokens`` plus the task's generation budget.
        depth: where the (first) needle goes, 0.0-1.0; ignored (recorded as None) for tasks without a needle.
        seed: the item's seed; the same arguments always give the same sample.
        count_tokens: counts (prompt, answer prefix) as the target sees them, e.g. ``TokenizerCounter(tok)``.
        haystack: where prose comes from (default: generated prose).
        qa_records: the user's questions and documents (required by ``qa``).
        variant: the perturbation's name, recorded in the spec (``ctxops.evals.perturb.build_variant`` sets it).
        perturbation: what builds the variant; None for the clean item.

    Returns:
        The built :class:`Sample`.
    """
    info = get_task(task)
    spec = SampleSpec(task, length, depth if info.uses_depth else None, seed, variant)
    ctx = BuildContext(spec, info, count_tokens, haystack or Haystack(), qa_records, perturbation)
    return info.build(ctx)
