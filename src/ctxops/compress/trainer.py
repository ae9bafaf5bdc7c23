"""The reusable parts of a training loop, shared with the builtin model's trainer (``scripts/train_builtin.py``).

A linear-warmup + cosine learning rate, AdamW that decays matrices but not norms and biases, and a checkpoint
written atomically (a temporary file, then a rename: a crash leaves the previous one) that refuses to resume a
run made with other settings. Distillation and pruning recovery use them; the builtin trainer takes its schedule
from here.

This module knows optimizers, schedules and checkpoint files; it does not know models, data or losses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint made with other settings than the run that found it."""


def warmup_cosine(peak: float, step: int, warmup: int, progress: float, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_ratio x peak`` as ``progress`` goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, fused: bool = False):
    """AdamW (betas 0.9, 0.95) with weight decay on matrices only."""
    params = list(params)
    groups = [
        {"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused)


class Checkpoint:
    """One resumable checkpoint file; ``identity`` (the settings) must match for a run to resume from it."""

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity

    def load(self) -> dict[str, Any] | None:
        """The saved payload, or None when there is none yet."""
        if not self.path.is_file():
            return None
        saved = torch.load(self.path, weights_only=False, map_location="cpu")
        if saved.get("identity") != self.identity:
            changed = sorted(
                k for k in {*self.identity, *saved.get("identity", {})}
                if self.identity.get(k) != saved.get("identity", {}).get(k)
            )  # fmt: skip
            raise CheckpointError(
                f"{self.path} was written with other settings ({', '.join(changed)} differ); rerun with the same "
                f"settings to resume, or remove {self.path} to start over"
            )
        return saved

    def save(self, payload: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({**payload, "identity": self.identity}, tmp)
        os.replace(tmp, self.path)
