"""Eval-task items as training text: the exact prompt ``ctxops eval`` sends, and the gold answer as text.

One copy for both trainers that learn from the eval's generators: the builtin model's trainer
(``scripts/train_builtin.py``, through ``scripts/builtin_training/data.py``) and ``ctxops compress`` (distillation
and calibration items, :mod:`ctxops.compress.corpus`). The answer is written as the builtin model learned to write
it (``" 1, 2 and 3."``; variable tracking: ``" A B C"``), so a distilled student's hard targets are the teacher's
own format.

This module knows task generators, prompt formats and tokenizers; it does not know models or training loops.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctxops.evals.prompt import TokenizerCounter
from ctxops.evals.sample import Sample
from ctxops.evals.tasks import build_sample


def join_values(values: list[str]) -> str:
    """``[a]`` -> ``" a."``; ``[a, b, c]`` -> ``" a, b and c."``."""
    return " " + (values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]) + "."


def format_answer(task: str, answers: tuple[str, ...] | list[str]) -> str:
    """The gold answer text that follows the prompt's answer prefix."""
    if task == "vt":
        return " " + " ".join(answers)
    return join_values(list(answers))


@dataclass(frozen=True)
class TaskItem:
    """One eval-task item: the prompt's token ids (chat template and answer prefix included) and its sample."""

    task: str
    prompt_ids: list[int]
    sample: Sample

    @property
    def answer(self) -> str:
        return format_answer(self.task, self.sample.answers)


def task_item(counter: TokenizerCounter, task: str, length: int, depth: float, seed: int) -> TaskItem:
    """Build ``task``'s item at ``length`` tokens, needle ``depth`` in [0, 1] and ``seed``, as the eval would.

    Raises the task's ``TaskError`` (a ``ValueError``) when ``length`` is too short for it.
    """
    sample = build_sample(task, length, depth, seed, counter)
    return TaskItem(task, counter.encode(sample.prompt, sample.answer_prefix), sample)
