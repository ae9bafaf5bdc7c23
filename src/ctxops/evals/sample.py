"""What one evaluation item is: its identity (task, length, depth, seed) and the text a task built for it.

A :class:`SampleSpec` names an item; a :class:`Sample` is the built prompt, answer prefix, gold answers and the
measurements made while building it (or one line of RULER's prepared data, sent verbatim). Both are plain data:
a sample knows text, not engines or HTTP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Metric(StrEnum):
    """RULER's two scoring rules."""

    ALL = "string_match_all"  # fraction of gold answers found in the output
    ANY = "string_match_part"  # 1 if any gold answer is found (QA aliases)


def format_depth(depth: float | None) -> str:
    """``0.25`` -> ``"25%"``; None (a task without a needle position) -> ``"-"``."""
    return "-" if depth is None else f"{depth * 100:g}%"


@dataclass(frozen=True)
class SampleSpec:
    """The identity of one item: runs are paired and resumed on this key."""

    task: str
    length: int  # tokens: prompt (template included) + generation budget
    depth: float | None  # where the first needle sits, 0.0 (start) to 1.0 (end); None when there is none
    seed: int
    variant: str = (
        ""  # a perturbation such as "distractors=8" (see ctxops.evals.perturb); "" = the clean item
    )

    def __post_init__(self) -> None:
        if self.length <= 0:
            raise ValueError(f"length must be a positive number of tokens, got {self.length}")
        if self.depth is not None and not 0.0 <= self.depth <= 1.0:
            raise ValueError(f"depth must be between 0 and 1, got {self.depth}")

    @property
    def key(self) -> tuple:
        """(task, length, depth, seed), then the variant when there is one: how samples are matched across runs.

        A clean item keeps the four-part key of runs made before perturbations existed.
        """
        key = (self.task, self.length, None if self.depth is None else round(self.depth, 6), self.seed)
        return (*key, self.variant) if self.variant else key

    def rng_seed(self) -> int:
        """A stable 64-bit seed for this item (stable across Python versions and processes).

        The variant is left out: a perturbed item draws the same keys, values and depths as its clean twin.
        """
        text = f"{self.task}|{self.length}|{self.key[2]}|{self.seed}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Sample:
    """A built item: what to send, what to expect, and how to score it."""

    spec: SampleSpec
    prompt: str  # the user turn: instructions, context and question
    answer_prefix: (
        str  # the start of the answer, put after the prompt (after the chat template's assistant turn)
    )
    answers: tuple[str, ...]
    max_tokens: int  # the generation budget
    metric: Metric
    input_tokens: int  # prompt tokens as the target's tokenizer counts them (template and prefix included)
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    # True: ``prompt`` already holds the model's template (RULER's prepared data): the target sends
    # ``prompt + answer_prefix`` as it is, with no chat template of its own and nothing between the two.
    verbatim: bool = False

    def __post_init__(self) -> None:
        if not self.answers:
            raise ValueError(f"sample {self.spec.key} has no gold answers")
        if self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")

    @property
    def total_tokens(self) -> int:
        """Input tokens plus the generation budget: what must fit in ``spec.length``."""
        return self.input_tokens + self.max_tokens

    @property
    def messages(self) -> list[dict[str, str]]:
        """The prompt as one user message (the answer prefix is not part of it)."""
        return [{"role": "user", "content": self.prompt}]

    @property
    def verbatim_text(self) -> str:
        """What RULER's prediction script sends: the prompt, then the answer prefix, nothing between."""
        return self.prompt + self.answer_prefix

    @property
    def context_text(self) -> str:
        """The prompt up to its question: every task's template ends with the question as its last paragraph."""
        cut = self.prompt.rfind("\n\n")
        return self.prompt[: cut + 2] if cut >= 0 else ""

    @property
    def prompt_hash(self) -> str:
        """sha256 (first 16 hex digits) of prompt and prefix: equal hashes mean identical inputs."""
        return hashlib.sha256(f"{self.prompt}\x00{self.answer_prefix}".encode()).hexdigest()[:16]

    def score_output(self, text: str) -> float:
        """This sample's score for the output ``text``: its metric against its answers (a subclass may differ)."""
        from ctxops.evals.scoring import score  # scoring imports Metric from here

        return score(self.metric, text, self.answers)

    def record_fields(self, text: str) -> dict[str, Any]:
        """Fields a subclass adds to this sample's samples.jsonl record for the output ``text`` (none here)."""
        return {}
