"""KV compression at prefill ("presses", after NVIDIA kvpress): which prompt tokens' K/V a sequence keeps.

Once a sequence's prompt is prefilled, a press keeps ``int(L * (1 - kv_compression_ratio))`` of its ``L`` tokens in
every layer and KV head, and the sequence's blocks are swapped for fewer, fresh ones (the rest return to the pool).
Each (layer, KV head) keeps its own tokens, the same number for all, compacted in their original order; RoPE was
applied before caching, so keys keep their positions and new tokens continue at position ``L``.

Policies:

- ``streaming_llm`` (StreamingLLM): the first ``SINK_TOKENS`` (4) attention sinks and the most recent tokens.
- ``snapkv`` (SnapKV): the last ``SNAPKV_WINDOW`` (64) prompt tokens are the observation window and always kept;
  the others are ranked by the attention the window's queries pay them (softmax, summed over the window and the
  query heads of each KV head), smoothed by a ``SNAPKV_KERNEL`` (13)-wide average pool. The window's queries
  (the question) find a needle by its key and first answer tokens; the later answer tokens are only attended
  while they are generated, so the pool must carry the score across the whole answer span. kvpress's 5 suits
  Llama-3's tokenizer, where a 7-digit number is 3 tokens; with digits one per token (the builtin model) a 5-wide
  pool dropped the needle's last digits in the last layer and cost 17.5 points on niah_single_1 at 512 + 1K
  (n = 40, builtin v1); 13 cost 0 there and 3.75 over 80 samples (widths 11 to 17 within 1.25 of that).
- ``h2o`` (H2O): the most recent half of the kept budget, plus heavy hitters: the tokens with the largest
  attention accumulated over every prompt query.

By default the engine compresses the **whole prompt, question included**, so SnapKV's window covers the
question: kvpress's *query-aware* setting. A request that says where its question starts (a dict prompt with
``question_start``; ``ctxops eval --no-kv-press-query-aware`` sends it) has only its context compressed, SnapKV's
window being the context's last tokens, and its question prefilled after the press: the *query-agnostic* setting,
where a compressed document must serve a question it has not seen. Runs record which one they used. kvpress's
leaderboard default is query-agnostic; its RULER-4K figures for SnapKV at ratio 0.5 are about 70 query-agnostic
and 89 query-aware on Llama-3.1-8B, so compare like with like.

A pressed sequence neither reuses nor publishes prefix-cache blocks (its blocks stop matching its tokens), so
other requests never see its pruned blocks.

This module knows attention scores and token indices; it does not know blocks or the scheduler (the model runner
moves the kept K/V, the block manager swaps the blocks).
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F

SINK_TOKENS = 4
SNAPKV_WINDOW = 64
SNAPKV_KERNEL = 13
_QUERY_CHUNK = 128  # query rows scored at once: bounds the (heads, rows, context) score tensor


class PressKind(StrEnum):
    """The policies, by their ``kv_press`` names."""

    STREAMING_LLM = "streaming_llm"
    SNAPKV = "snapkv"
    H2O = "h2o"

    @property
    def needs_scores(self) -> bool:
        return self is not PressKind.STREAMING_LLM


def num_kept(length: int, ratio: float) -> int:
    """Tokens a press keeps of a ``length``-token prompt (at least one)."""
    return max(int(length * (1.0 - ratio)), 1)


def forced_tokens(kind: PressKind, length: int, keep: int) -> torch.Tensor:
    """(length,) bool: the tokens a policy keeps whatever their scores (sinks, observation or recent window)."""
    forced = torch.zeros(length, dtype=torch.bool)
    if kind is PressKind.STREAMING_LLM:
        sinks = min(SINK_TOKENS, keep - 1)
        forced[:sinks] = True
        forced[length - (keep - sinks) :] = True
    elif kind is PressKind.SNAPKV:
        forced[length - min(SNAPKV_WINDOW, keep) :] = True
    else:  # H2O: half the budget goes to the most recent tokens
        forced[length - keep // 2 :] = True
    return forced


def select_tokens(kind: PressKind, scores: torch.Tensor | None, length: int, keep: int) -> torch.Tensor:
    """The kept token indices per KV head, (kv_heads, keep) long, ascending.

    ``scores``: (kv_heads, length) accumulated attention (None for streaming_llm, which needs none).
    """
    forced = forced_tokens(kind, length, keep)
    if scores is None:
        return forced.nonzero().squeeze(1).unsqueeze(0)  # the same tokens for every head: (1, keep)
    scores = scores.float()
    if kind is PressKind.SNAPKV:  # smooth so that a needle's neighbours survive with it
        scores = F.avg_pool1d(
            scores.unsqueeze(1), SNAPKV_KERNEL, stride=1, padding=SNAPKV_KERNEL // 2
        ).squeeze(1)
    scores = scores.masked_fill(forced, float("inf"))
    return scores.topk(keep, dim=-1).indices.sort(dim=-1).values


class PressScores:
    """Attention paid to one sequence's prompt tokens, accumulated per layer over its prefill chunks."""

    def __init__(self, kind: PressKind, length: int, num_layers: int, num_kv_heads: int) -> None:
        self.kind = kind
        self.length = length  # prompt tokens (= cache tokens when the prefill ends)
        # SnapKV scores only the observation window's queries; H2O every query
        self.first_query = length - SNAPKV_WINDOW if kind is PressKind.SNAPKV else 0
        self.scores = torch.zeros(num_layers, num_kv_heads, length)  # (layers, kv_heads, tokens), fp32

    def observe(
        self, layer: int, q: torch.Tensor, keys: torch.Tensor, first_position: int, scale: float
    ) -> None:
        """Add one chunk's attention to the scores.

        q: (q_len, heads, head_dim) at cache positions ``first_position`` onward; keys: (context_len, kv_heads,
        head_dim), every key up to the chunk's last query.
        """
        q_len, num_heads, _ = q.shape
        context, num_kv_heads, _ = keys.shape
        skip = max(self.first_query - first_position, 0)
        keys_t = keys.float().permute(1, 2, 0)  # (kv_heads, head_dim, context)
        group = num_heads // num_kv_heads
        for lo in range(skip, q_len, _QUERY_CHUNK):
            hi = min(lo + _QUERY_CHUNK, q_len)
            rows = q[lo:hi].float().view(hi - lo, num_kv_heads, group, -1).permute(1, 0, 2, 3)
            logits = torch.matmul(rows.reshape(num_kv_heads, -1, rows.shape[-1]), keys_t).mul_(scale)
            logits = logits.view(num_kv_heads, hi - lo, group, context)  # (kv_heads, rows, group, context)
            query_pos = torch.arange(first_position + lo, first_position + hi)[:, None, None]
            logits.masked_fill_(torch.arange(context) > query_pos, float("-inf"))  # causal
            self.scores[layer, :, :context] += logits.softmax(-1).sum(dim=(1, 2))

    def select(self, keep: int) -> torch.Tensor:
        """(layers, kv_heads, keep) kept indices."""
        return torch.stack([select_tokens(self.kind, s, self.length, keep) for s in self.scores])
