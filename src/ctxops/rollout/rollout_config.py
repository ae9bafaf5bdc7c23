"""A progressive rollout, as written in ``rollout.toml``: which arms, which steps, how each step is judged.

::

    name = "tiny-int4"                   # the rollout's key in the store (rerunning resumes it)
    gateway = "http://127.0.0.1:8000"    # the gateway's base URL; routes change through its admin API
    admin_key_env = "CTXOPS_ADMIN_KEY"   # environment variable holding the admin key (never the key itself)
    model = "tiny"                       # the served model name
    baseline = "stable"                  # arm names in the gateway's routes
    candidate = "canary"
    steps = [5, 25, 50, 100]             # candidate's share of traffic at each step, percent
    step_seconds = 60                    # shortest time at a step before it may be promoted
    max_step_seconds = 600               # a step still undecided after this rolls back (a progress deadline)
    poll_seconds = 5                     # between analyses within a step
    webhooks = []                        # notified when a rollback opens an incident
    [canary]                             # same-seed canary samples sent to both arms' upstreams at each step
    tasks = ["niah_single_1"]
    lengths = [1024]
    samples = 20
    seed = 42
    api = "chat"                         # or "completions" (sends the answer prefix)
    [analysis]                           # thresholds of the judge (ctxops rollout analyze --help)
    alpha = 0.05

Every value is checked on load; an error names the key. This module knows settings, not HTTP or the store.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ctxops.rollout.analysis import AnalysisConfig


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """The canary eval each step runs against both arms (no canary when ``samples`` is 0)."""

    tasks: tuple[str, ...] = ("niah_single_1",)
    lengths: tuple[int, ...] = (1024,)
    samples: int = 20
    seed: int = 42
    api: str = "chat"  # chat | completions (completions sends RULER's answer prefix: small models need it)

    def __post_init__(self) -> None:
        if self.samples < 0 or not self.tasks or not self.lengths or any(n < 1 for n in self.lengths):
            raise ValueError("canary: samples >= 0, and at least one task and one positive length")
        if self.api not in ("chat", "completions"):
            raise ValueError(f"canary: api must be chat or completions, got {self.api!r}")


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    """One rollout of ``candidate`` over ``baseline`` through a gateway's admin API."""

    name: str
    gateway: str
    model: str
    baseline: str
    candidate: str
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    admin_key_env: str = "CTXOPS_ADMIN_KEY"
    step_seconds: float = 60.0
    max_step_seconds: float = 600.0
    poll_seconds: float = 5.0
    webhooks: tuple[str, ...] = ()
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def __post_init__(self) -> None:
        for key in ("name", "model", "baseline", "candidate"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                raise ValueError(f"{key} must be a non-empty string")
        if self.baseline == self.candidate:
            raise ValueError("baseline and candidate must be two different arms")
        if not self.gateway.startswith(("http://", "https://")):
            raise ValueError(
                f"gateway must be the gateway's base URL (http://host:port), got {self.gateway!r}"
            )
        if (
            not self.steps
            or any(not 0 < s <= 100 for s in self.steps)
            or list(self.steps) != sorted(set(self.steps))
        ):
            raise ValueError(f"steps must rise strictly within (0, 100] percent, got {list(self.steps)}")
        times = (self.step_seconds, self.max_step_seconds, self.poll_seconds)
        if not all(math.isfinite(t) and t >= 0 for t in times) or self.poll_seconds <= 0:
            raise ValueError("step_seconds, max_step_seconds >= 0 and poll_seconds > 0 (seconds)")
        if self.max_step_seconds < self.step_seconds:
            raise ValueError("max_step_seconds must be >= step_seconds")

    @property
    def admin_key(self) -> str:
        """The admin key, read from ``admin_key_env`` when needed."""
        key = os.environ.get(self.admin_key_env)
        if not key:
            raise ValueError(
                f"export {self.admin_key_env}=<the gateway's admin key> (admin_key_env in the config)"
            )
        return key

    @classmethod
    def from_file(cls, path: str | Path) -> RolloutConfig:
        """Read and check ``rollout.toml``; ValueError naming the file and key."""
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the rollout config ({exc})") from exc
        try:
            return cls.from_dict(raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RolloutConfig:
        """Build from the TOML's tables (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        if unknown := set(raw) - known:
            raise ValueError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        values = dict(raw)
        for key in ("steps", "webhooks"):
            if key in values:
                values[key] = tuple(values[key])
        values["canary"] = _table(CanaryConfig, values.get("canary", {}), "canary")
        values["analysis"] = _table(AnalysisConfig, values.get("analysis", {}), "analysis")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The config as stored with the rollout's state."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["canary"] = {f.name: getattr(self.canary, f.name) for f in fields(self.canary)}
        out["analysis"] = {f.name: getattr(self.analysis, f.name) for f in fields(self.analysis)}
        return out


def _table(cls: type, raw: Any, name: str) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"[{name}] must be a table")
    known = {f.name for f in fields(cls)}
    if unknown := set(raw) - known:
        raise ValueError(f"[{name}]: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"[{name}]: {exc}") from exc
