"""What a perturbation is: a family, its levels, which tasks it applies to, and the hooks a task's builder calls.

A variant is ``family=level`` (``distractors=8``, ``haystack=code``). It is built by the task's own builder at the
clean item's seed, depth and length (:attr:`SampleSpec.variant`): the item draws the same keys, values and depths
as its clean twin, and the perturbation rewrites only what its family claims, with its own random stream seeded
from the item and the variant. Hooks (:class:`ctxops.evals.tasks.base.Perturbation`): ``depth`` moves the first
needle, ``needles`` rewrites a needle task's parts, ``text`` rewrites the rendered prompt. This module knows tasks'
names and setups, not targets, runs or statistics.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from ctxops.evals.sample import SampleSpec
from ctxops.evals.tasks.base import Rendered, TaskInfo
from ctxops.evals.tasks.niah import SETUPS, Filler, NeedleDoc, NeedleSetup


class PerturbError(ValueError):
    """An unknown family or level, or one that does not apply to a task; the message names the valid choices."""


class Family(StrEnum):
    """The perturbation families."""

    DISTRACTORS = "distractors"
    FORMAT = "format"
    PARAPHRASE = "paraphrase"
    LEXICAL = "lexical"
    HAYSTACK = "haystack"
    PLACEMENT = "placement"
    NOISE = "noise"


@dataclass(frozen=True)
class Variant:
    """One perturbation: a family and one of its levels."""

    family: Family
    level: str

    @property
    def name(self) -> str:
        """``family=level``, as samples.jsonl records it."""
        return f"{self.family.value}={self.level}"

    @classmethod
    def parse(cls, name: str) -> Variant:
        """``"distractors=8"`` -> Variant; a name without ``=`` or with an unknown family raises PerturbError."""
        family, sep, level = name.partition("=")
        if not sep or family not in Family.__members__.values():
            raise PerturbError(
                f"{name!r} is not a variant; write family=level, families: {', '.join(Family)}"
            )
        return cls(Family(family), level)


def needle_setup(task: TaskInfo) -> NeedleSetup | None:
    """The NIAH setup of ``task`` (None for other families)."""
    return SETUPS.get(task.name) if task.family == "niah" else None


class Perturber:
    """A family's perturbation of one item: the hooks default to leaving everything as it is.

    Subclasses set ``FAMILY`` and ``LEVELS``, say in their docstring what the family changes, and override
    :meth:`why_not` (None when the level applies to the task, else the reason) and the hooks they need. ``self.rng``
    is the variant's own stream: a fresh one per item.
    """

    FAMILY: ClassVar[Family]
    LEVELS: ClassVar[tuple[str, ...]]

    def __init__(self, level: str, spec: SampleSpec) -> None:
        self.level = level
        self.spec = spec
        self.seed = item_seed(spec, Variant(self.FAMILY, level))
        self.rng = random.Random(self.seed)

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        """None when ``level`` applies to ``task``; otherwise why not (one clause)."""
        return None

    def depth(self, depth: float) -> float:
        return depth

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        return doc

    def text(self, rendered: Rendered) -> Rendered:
        return rendered


def item_seed(spec: SampleSpec, variant: Variant) -> int:
    """The variant's seed for one item: stable across processes, different per item and per variant."""
    text = f"{spec.rng_seed()}|{variant.name}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def niah_only(task: TaskInfo) -> str | None:
    """The reason a needle-only family does not apply to ``task`` (None for a NIAH task)."""
    return None if needle_setup(task) else f"it rewrites needles, and {task.name} ({task.family}) has none"


def niah_in_haystack(task: TaskInfo, why: str) -> str | None:
    """The reason a family that rewrites needles in a haystack does not apply to ``task`` (None when it does).

    ``why`` says what goes wrong when the filler is itself distractor needles (niah_multikey_2/3).
    """
    setup = needle_setup(task)
    if setup is None:
        return niah_only(task)
    return f"{task.name}'s filler is distractor needles: {why}" if setup.filler is Filler.NEEDLE else None
