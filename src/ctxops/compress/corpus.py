"""Token sequences to calibrate pruning and to distil on: eval-task items with their answers, and the user's text.

A task item is the prompt as the model reads it (chat template and answer prefix included), then the gold answer
and an end token, so the hard loss teaches the answer and the teacher's logits cover retrieval. The user's text
files are tokenized and cut into windows of the asked length. Items come from the eval's own generators
(:mod:`ctxops.compress.task_items`, shared with the builtin model's trainer), each seed a different item, so a
corpus is reproducible.

This module knows tokenizers and task generators; it does not know models or training.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from ctxops.compress.task_items import task_item
from ctxops.evals.prompt import PromptStyle, TokenizerCounter

DEFAULT_TASKS = ("niah_single_1", "niah_single_2", "niah_multikey_1", "niah_multivalue", "vt")


def task_sequence(tokenizer, task: str, length: int, seed: int) -> list[int]:
    """One item of ``task`` at ``length`` tokens: prompt ids, the gold answer (:func:`format_answer`), an end token."""
    style = PromptStyle.CHAT if tokenizer.has_chat_template else PromptStyle.RAW
    rng = random.Random(seed)
    item = task_item(TokenizerCounter(tokenizer, style), task, length, rng.random(), seed)
    answer = tokenizer.encode(item.answer, add_special_tokens=False)
    eos = tokenizer.token_to_id(tokenizer.eos_token) if tokenizer.eos_token else None
    return item.prompt_ids + answer + ([eos] if eos is not None else [])


def text_sequences(tokenizer, files: Iterable[str | Path], length: int) -> list[list[int]]:
    """The user's text files, tokenized and cut into ``length``-token windows (a shorter tail is kept if >= 16)."""
    windows = []
    for file in files:
        ids = tokenizer.encode(Path(file).read_text(encoding="utf-8"), add_special_tokens=False)
        for start in range(0, len(ids), length):
            if len(ids) - start >= 16:
                windows.append(ids[start : start + length])
    return windows


class Corpus:
    """Training or calibration items, item ``i`` a pure function of ``i`` (a run resumes at its step exactly).

    Task items cycle tasks x lengths, each with its own seed (``seed + i``: keep it clear of the eval's seeds,
    42 onward); with text files every other item is one of the user's text windows, cycled.
    """

    def __init__(
        self,
        tokenizer,
        tasks: Iterable[str] = DEFAULT_TASKS,
        lengths: Iterable[int] = (1024,),
        text_files: Iterable[str | Path] = (),
        seed: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.combos = [(t, n) for t in tasks for n in lengths]
        self.texts = (
            text_sequences(tokenizer, text_files, max(n for _, n in self.combos)) if text_files else []
        )
        self.seed = seed

    def item(self, i: int) -> list[int]:
        if self.texts:
            if i % 2:
                return self.texts[(i // 2) % len(self.texts)]
            i //= 2
        task, length = self.combos[i % len(self.combos)]
        return task_sequence(self.tokenizer, task, length, self.seed + i)

    def items(self, count: int, start: int = 0) -> Iterator[list[int]]:
        return (self.item(i) for i in range(start, start + count))
