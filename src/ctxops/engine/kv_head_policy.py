"""Head-aware KV (after DuoAttention): retrieval KV heads keep every token, streaming heads a sink + recent window.

A policy file (written by ``ctxops compress heads``) names, per layer, which KV heads are *retrieval* heads. With
``kv_head_policy=PATH`` the engine stores the two kinds apart (:mod:`ctxops.models.split_kv`): the paged pool's
blocks hold only the retrieval heads, and each running sequence has one fixed ring of ``sink + recent`` slots for
its streaming heads. So a token costs :meth:`HeadPolicy.pool_bytes_per_token` in the pool instead of every head's
bytes, a sequence adds :meth:`HeadPolicy.ring_bytes` whatever its length, and the freed bytes become more blocks
(more or longer sequences in the same budget). A streaming head reads its first ``sink`` and last ``recent``
tokens at decode; a prompt's prefill attends in full within one step, as under a KV press, so the policy is
compared with presses on the same footing.

:meth:`HeadPolicy.head_window` is the same rule as a per-head mask over a full pool: the reference the split
storage is tested against.

This module knows the policy file, per-head byte counts and masks; it does not know blocks, sequences or how
scores were made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctxops.models.attention_metadata import HeadWindow
from ctxops.models.config import ModelConfig

POLICY_FORMAT = "ctxops.kv_head_policy/1"


class HeadPolicyError(ValueError):
    """A policy file that cannot be read, or that was made for another model."""


@dataclass(frozen=True)
class HeadPolicy:
    """Which KV heads keep the full cache; the others keep ``sink`` + ``recent`` tokens."""

    retrieval: tuple[tuple[bool, ...], ...]  # (layers, kv_heads): True keeps every token
    num_attention_heads: int  # of the model the policy was made for (checked against the one it is used with)
    sink: int = 4
    recent: int = 64

    def __post_init__(self) -> None:
        if not self.retrieval or len({len(row) for row in self.retrieval}) != 1:
            raise HeadPolicyError(
                "retrieval must be a non-empty list of equal-length rows (layers x kv_heads)"
            )
        if self.sink < 0 or self.recent < 1:
            raise HeadPolicyError(f"sink must be >= 0 and recent >= 1; got {self.sink} and {self.recent}")

    @property
    def num_layers(self) -> int:
        return len(self.retrieval)

    @property
    def num_kv_heads(self) -> int:
        return len(self.retrieval[0])

    @property
    def retrieval_fraction(self) -> float:
        """Share of (layer, KV head) pairs that keep every token."""
        return sum(map(sum, self.retrieval)) / (self.num_layers * self.num_kv_heads)

    @property
    def has_streaming(self) -> bool:
        """False when every KV head keeps every token: the policy changes nothing (the engine runs without it)."""
        return not all(map(all, self.retrieval))

    def retrieval_heads(self, layer: int) -> list[int]:
        """The layer's retrieval KV heads, ascending."""
        return [h for h, keep in enumerate(self.retrieval[layer]) if keep]

    def pool_bytes_per_token(self, head_dim: int, element_size: int) -> int:
        """K and V bytes one token takes in the paged pool: its retrieval heads, all layers."""
        return 2 * sum(map(sum, self.retrieval)) * head_dim * element_size

    def ring_bytes(self, head_dim: int, element_size: int) -> int:
        """K and V bytes of one sequence's ring: ``sink + recent`` slots of every streaming head, all layers."""
        streaming = self.num_layers * self.num_kv_heads - sum(map(sum, self.retrieval))
        return 2 * (self.sink + self.recent) * streaming * head_dim * element_size

    def head_window(self) -> HeadWindow:
        """The rule as a decode-time mask over a full pool (streaming heads: True); the split's reference."""
        return HeadWindow(~torch.tensor(self.retrieval, dtype=torch.bool), self.sink, self.recent)

    def kept_fraction(self, length: int) -> float:
        """Share of a ``length``-token sequence's K/V the split storage holds (block rounding aside)."""
        window = min(self.sink + self.recent, length) / length
        f = self.retrieval_fraction
        return f + (1.0 - f) * window

    def check_model(self, config: ModelConfig, source: str = "the policy") -> None:
        """Raise :class:`HeadPolicyError` unless the policy was made for a model of this shape."""
        got = (self.num_layers, self.num_attention_heads, self.num_kv_heads)
        want = (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads)
        if got != want:
            raise HeadPolicyError(
                f"{source} was made for a model with {got[0]} layers, {got[1]} attention heads and {got[2]} KV "
                f"heads, but this model has {want[0]}, {want[1]} and {want[2]}; score this model's heads with "
                "`ctxops compress heads MODEL --out DIR` and pass DIR/head_policy.json"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT,
            "num_layers": self.num_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_kv_heads,
            "sink": self.sink,
            "recent": self.recent,
            "retrieval_kv_heads": [list(row) for row in self.retrieval],
            "retrieval_fraction": self.retrieval_fraction,
        }

    @classmethod
    def from_dict(cls, raw: Any, source: str = "the policy") -> HeadPolicy:
        if not isinstance(raw, dict) or raw.get("format") != POLICY_FORMAT:
            raise HeadPolicyError(
                f"{source}: not a head policy (expected a JSON object with format {POLICY_FORMAT!r}, as "
                "`ctxops compress heads` writes to head_policy.json)"
            )
        try:
            rows = tuple(tuple(bool(x) for x in row) for row in raw["retrieval_kv_heads"])
            policy = cls(rows, int(raw["num_attention_heads"]), int(raw["sink"]), int(raw["recent"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise HeadPolicyError(f"{source}: malformed head policy ({exc})") from exc
        if policy.num_layers != raw.get("num_layers") or policy.num_kv_heads != raw.get(
            "num_key_value_heads"
        ):
            raise HeadPolicyError(
                f"{source}: num_layers / num_key_value_heads disagree with retrieval_kv_heads"
            )
        return policy

    @classmethod
    def from_file(cls, path: str | Path) -> HeadPolicy:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise HeadPolicyError(f"kv_head_policy {path}: cannot be read as JSON ({exc})") from exc
        return cls.from_dict(raw, f"kv_head_policy {path}")
