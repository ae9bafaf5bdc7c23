from __future__ import annotations

import asyncio

import pytest

from ctxops.evals.config import EvalConfig
from ctxops.evals.prompt import PromptStyle, TokenizerCounter
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.sample import Sample
from ctxops.evals.targets.base import Completion, Target
from ctxops.models.tokenizer import Tokenizer


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    return Tokenizer(tiny_model_dir)


@pytest.fixture(scope="session")
def counter(tokenizer):
    return TokenizerCounter(tokenizer, PromptStyle.CHAT)


class EchoTarget(Target):
    """A fake model for runner tests: answers with the gold answers (or nothing), instantly."""

    def __init__(self, counter, correct=True, fail_after=None, name="echo", answer=None):
        self._counter = counter
        self.correct = correct
        self.answer = answer  # sample -> output text, overriding ``correct``
        self.fail_after = fail_after
        self.calls = 0
        self.name = name

    @property
    def count_tokens(self):
        return self._counter

    async def generate(self, sample: Sample) -> Completion:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run
        right = self.correct(sample) if callable(self.correct) else self.correct
        text = " ".join(sample.answers) if right else "no idea"
        if self.answer is not None:
            text = self.answer(sample)
        return Completion(text, sample.input_tokens, 5, 0, 0.01, 0.05)

    def describe(self):
        return {"kind": "fake", "name": self.name}


@pytest.fixture
def echo_target(counter):
    return lambda **kw: EchoTarget(counter, **kw)


def echo_run(path, config: EvalConfig, counter, correct=True) -> RunDir:
    """``config`` run against an :class:`EchoTarget` (``correct``: a bool or sample -> bool) into ``path``."""
    run_dir = RunDir(path)
    asyncio.run(run_eval(config, EchoTarget(counter, correct=correct), run_dir, show_progress=False))
    return run_dir
