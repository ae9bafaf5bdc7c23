"""Retrieval scores per (layer, head): how often a head copies the needle's answer token by token.

After Wu et al. 2024 ("Retrieval Head Mechanistically Explains Long-Context Factuality"): a head *copy-pastes* at
a decoding step when the position it attends to most holds the token the model produces at that step and lies in
the needle's answer. Its retrieval score is the share of answer tokens it copy-pasted, over needle-in-a-haystack
prompts of several lengths and depths. A score above 0.1 marks a retrieval head (the paper's threshold).

Here the answer is teacher-forced (the gold answer tokens follow the prompt) and the produced token is the model's
greedy choice at each answer step, so one forward pass scores a prompt. Attention comes from
:func:`ctxops.compress.dense.dense_forward`.

This module knows needles, token ids and attention rows; it does not know the engine, files or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ctxops.compress.dense import dense_forward
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.evals.prompt import PromptStyle, TokenizerCounter
from ctxops.evals.tasks import build_sample
from ctxops.models.llama import LlamaForCausalLM

RETRIEVAL_THRESHOLD = 0.1  # Wu et al.: a head whose score exceeds this is a retrieval head
NEEDLE_TASK = "niah_single_1"


@dataclass(frozen=True)
class NeedleProbe:
    """One teacher-forced needle prompt: prompt ids followed by the answer's ids."""

    ids: torch.Tensor  # (T,) long: prompt, then the answer tokens
    answer: range  # where the needle's answer tokens sit inside the prompt
    first_answer_row: int  # the row whose logits produce the first answer token
    answer_len: int
    length: int
    depth: float


def copy_paste_hits(
    attention: torch.Tensor, ids: torch.Tensor, produced: torch.Tensor, answer: range
) -> torch.Tensor:
    """(heads,) copy-paste counts over the answer steps.

    ``attention``: (heads, steps, T) probabilities of the answer steps' queries; ``ids``: (T,) the sequence;
    ``produced``: (steps,) the token each step produced. A head hits at a step when its most-attended position is
    inside ``answer`` and holds the produced token.
    """
    top = attention.argmax(dim=-1)  # (heads, steps)
    inside = (top >= answer.start) & (top < answer.stop)
    same = ids[top] == produced[None, :]
    return (inside & same).sum(dim=1)


def _find(haystack: list[int], needle: list[int]) -> int:
    """Last start of ``needle`` inside ``haystack`` (the prompt's needle, not a copy the question may hold), or -1."""
    n = len(needle)
    for start in range(len(haystack) - n, -1, -1):
        if haystack[start : start + n] == needle:
            return start
    return -1


def needle_probes(
    tokenizer, lengths: Iterable[int], depths: Iterable[float], seeds: int
) -> list[NeedleProbe]:
    """Needle prompts at every length x depth x seed, with the answer located in the prompt's tokens."""
    style = PromptStyle.CHAT if tokenizer.has_chat_template else PromptStyle.RAW
    counter = TokenizerCounter(tokenizer, style)
    probes = []
    for length in lengths:
        for depth in depths:
            for seed in range(seeds):
                sample = build_sample(NEEDLE_TASK, length, depth, seed, counter)
                prompt = counter.encode(sample.prompt, sample.answer_prefix)
                answer_text = sample.answers[0]
                for variant in (answer_text, " " + answer_text):  # as it is tokenized inside the needle
                    answer = tokenizer.encode(variant, add_special_tokens=False)
                    start = _find(prompt, answer)
                    if start >= 0:
                        break
                else:
                    continue  # the tokenizer merged the answer with its neighbours: no clean span to copy from
                # the answer as the model writes it after the prefix (" 1234...": a space token may lead)
                written = tokenizer.encode(" " + answer_text, add_special_tokens=False)
                lead = written[: -len(answer)] if written[-len(answer) :] == answer else []
                ids = torch.tensor(prompt + lead + answer, dtype=torch.long)
                span = range(start, start + len(answer))
                first_row = len(prompt) + len(lead) - 1  # the leading space is not a copy: not scored
                probes.append(NeedleProbe(ids, span, first_row, len(answer), length, depth))
    return probes


@dataclass(frozen=True)
class HeadScores:
    """Retrieval scores, (layers, heads), and how they were measured."""

    scores: torch.Tensor  # (layers, heads) fp32 in [0, 1]
    num_probes: int
    answer_tokens: int
    answer_accuracy: float  # share of answer tokens the model itself produced right (a model that cannot
    # retrieve has no copy-paste to score)

    def retrieval_heads(self, threshold: float = RETRIEVAL_THRESHOLD) -> torch.Tensor:
        """(layers, heads) bool: scores above ``threshold``."""
        return self.scores > threshold

    def policy(
        self, num_kv_heads: int, threshold: float = RETRIEVAL_THRESHOLD, sink: int = 4, recent: int = 64
    ) -> HeadPolicy:
        """A KV head is a retrieval head when any of its query heads is (its cache serves all of them)."""
        layers, heads = self.scores.shape
        grouped = self.retrieval_heads(threshold).view(layers, num_kv_heads, heads // num_kv_heads)
        rows = tuple(tuple(bool(x) for x in row) for row in grouped.any(dim=-1))
        return HeadPolicy(rows, heads, sink, recent)


@torch.inference_mode()
def score_heads(
    model: LlamaForCausalLM, probes: list[NeedleProbe], progress: Callable[[], None] | None = None
) -> HeadScores:
    """Copy-paste scores over ``probes`` (each one forward pass)."""
    config = model.config
    hits = torch.zeros(config.num_hidden_layers, config.num_attention_heads)
    total, correct = 0, 0
    for probe in probes:
        rows = torch.arange(probe.first_answer_row, probe.first_answer_row + probe.answer_len)
        trace = dense_forward(model, probe.ids, rows=rows)
        produced = trace.logits[rows].argmax(dim=-1)
        gold = probe.ids[rows + 1]
        correct += int((produced == gold).sum())
        total += probe.answer_len
        for layer, attention in enumerate(trace.attentions):
            hits[layer] += copy_paste_hits(attention, probe.ids, produced, probe.answer)
        if progress is not None:
            progress()
    if not total:
        raise ValueError("no needle prompt had its answer as separate tokens; nothing to score")
    return HeadScores(hits / total, len(probes), total, correct / total)
