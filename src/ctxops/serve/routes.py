"""The gateway's routes: per served model, its arms (upstream, version, weight, limits, cost) and a policy.

Written in TOML (``ctxops serve --routes FILE``) or sent as the same structure in JSON (``PUT /admin/routes``)::

    [models.tiny]
    policy = "length"                # weighted (default) | length | fallback | ensemble
    [[models.tiny.arms]]
    name = "edge"
    upstream = "http://127.0.0.1:8001/v1"
    version = "v1"                   # registry version this arm serves (logged with every request)
    weight = 1.0                     # share of sticky users (weighted); 0 = only as a fallback
    max_model_len = 2048             # optional: the arm's limit (prompt + output tokens)
    effective_length = 1536          # optional: default = its latest eval run's, when the gateway knows it
    cost = 1.0                       # relative price per token: the length policy tries the cheapest first

Every field is checked when the routes are read, and the whole file is refused with one message naming what is
wrong, so a running gateway keeps its routes until a valid file replaces them. This module knows settings, not
sockets or requests.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ctxops.serve.config import UpstreamSpec

_ARM_KEYS = {"name", "upstream", "version", "weight", "max_model_len", "effective_length", "cost", "key_env",
             "max_concurrency"}  # fmt: skip
_MODEL_KEYS = {"policy", "arms", "ensemble"}


class RoutesError(ValueError):
    """A routes file or body that cannot be used; the message says what to fix."""


class Policy(StrEnum):
    """How a request picks its arm."""

    WEIGHTED = "weighted"  # sticky weighted rendezvous (the gateway's behaviour without routes)
    LENGTH = "length"  # cheapest arm whose limits hold the prompt, then the next on context_length_exceeded
    FALLBACK = "fallback"  # weighted order; on context length, 5xx, timeout or open circuit the next arm
    ENSEMBLE = "ensemble"  # every arm answers; the majority (or first valid) answer is returned


class EnsembleMode(StrEnum):
    """How an ensemble picks its answer."""

    MAJORITY = "majority"  # the most common normalized answer; ties go to the earlier arm
    FIRST_VALID = "first_valid"  # the first arm (in file order) that answered with non-empty text


@dataclass(frozen=True, slots=True)
class Arm:
    """One way of serving a model: an upstream and what is known about it."""

    name: str
    upstream: UpstreamSpec
    version: str | None = None
    weight: float = 1.0
    max_model_len: int | None = None  # tokens (prompt + output) the upstream accepts
    effective_length: int | None = None  # tokens up to which its answers hold (an eval run's lower bound)
    cost: float = 1.0  # relative price per token

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise RoutesError(f"arm name {self.name!r}: use letters, digits, - and _")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise RoutesError(f"arm {self.name}: weight must be a number >= 0, got {self.weight}")
        if not (math.isfinite(self.cost) and self.cost > 0):
            raise RoutesError(f"arm {self.name}: cost must be a number > 0, got {self.cost}")
        for key in ("max_model_len", "effective_length"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise RoutesError(
                    f"arm {self.name}: {key} must be a whole number of tokens >= 1, got {value!r}"
                )

    def limit(self) -> int | None:
        """Prompt tokens this arm holds well: its effective length, capped by its max length (None: unknown)."""
        known = [v for v in (self.max_model_len, self.effective_length) if v is not None]
        return min(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "upstream": self.upstream.url, "version": self.version, "weight": self.weight,
               "max_model_len": self.max_model_len, "effective_length": self.effective_length, "cost": self.cost}  # fmt: skip
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ModelRoutes:
    """The arms of one served model and its policy."""

    arms: tuple[Arm, ...]
    policy: Policy = Policy.WEIGHTED
    ensemble: EnsembleMode = EnsembleMode.MAJORITY

    def __post_init__(self) -> None:
        if not self.arms:
            raise RoutesError("a model needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise RoutesError(f"arm names must be unique, got {names}")
        if self.policy is not Policy.ENSEMBLE and not any(a.weight > 0 for a in self.arms):
            raise RoutesError("at least one arm needs a weight > 0")

    def arm(self, name: str) -> Arm:
        """The arm called ``name``; RoutesError naming the arms there are otherwise."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise RoutesError(f"unknown arm {name!r}; the arms are {', '.join(a.name for a in self.arms)}")

    def with_weights(self, weights: dict[str, float]) -> ModelRoutes:
        """The same routes with some arms' weights changed (unknown arm names are an error)."""
        for name in weights:
            self.arm(name)
        return replace(
            self, arms=tuple(replace(a, weight=float(weights.get(a.name, a.weight))) for a in self.arms)
        )


@dataclass(frozen=True, slots=True)
class Routes:
    """Routes of every served model, by model name."""

    models: dict[str, ModelRoutes] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, served: str | None = None) -> Routes:
        """Parse and check ``{"models": {NAME: {"policy", "arms": [...]}}}``; ``served``: the gateway's model."""
        if not isinstance(raw, dict) or set(raw) != {"models"} or not isinstance(raw["models"], dict):
            raise RoutesError('routes must be one table "models" of served models, e.g. [models.my-model]')
        models = {name: _model(name, body) for name, body in raw["models"].items()}
        if served is not None and set(models) != {served}:
            raise RoutesError(f"this gateway serves {served!r}: the routes must name exactly that model, got "
                              f"{', '.join(models) or 'none'}")  # fmt: skip
        return cls(models)

    @classmethod
    def from_file(cls, path: str | Path, served: str | None = None) -> Routes:
        """Read a TOML routes file (RoutesError naming the file on any problem)."""
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RoutesError(f"{path}: cannot read the routes file ({exc})") from exc
        try:
            return cls.from_dict(raw, served)
        except RoutesError as exc:
            raise RoutesError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``GET /admin/routes`` returns and ``PUT`` accepts."""
        return {"models": {name: {"policy": m.policy.value, "ensemble": m.ensemble.value,
                                  "arms": [a.to_dict() for a in m.arms]} for name, m in self.models.items()}}  # fmt: skip


def _model(name: str, body: Any) -> ModelRoutes:
    if not isinstance(body, dict):
        raise RoutesError(f"models.{name} must be a table with policy and arms")
    if unknown := set(body) - _MODEL_KEYS:
        raise RoutesError(f"models.{name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")
    try:
        policy = Policy(body.get("policy", Policy.WEIGHTED.value))
    except ValueError as exc:
        raise RoutesError(f"models.{name}: policy {body.get('policy')!r} is not one of "
                          f"{', '.join(p.value for p in Policy)}") from exc  # fmt: skip
    try:
        ensemble = EnsembleMode(body.get("ensemble", EnsembleMode.MAJORITY.value))
    except ValueError as exc:
        raise RoutesError(f"models.{name}: ensemble {body.get('ensemble')!r} is not one of "
                          f"{', '.join(e.value for e in EnsembleMode)}") from exc  # fmt: skip
    arms = body.get("arms")
    if not isinstance(arms, list) or not all(isinstance(a, dict) for a in arms):
        raise RoutesError(f"models.{name}: arms must be a list of tables ([[models.{name}.arms]])")
    try:
        return ModelRoutes(tuple(_arm(a) for a in arms), policy, ensemble)
    except RoutesError as exc:
        raise RoutesError(f"models.{name}: {exc}") from exc


def _arm(raw: dict[str, Any]) -> Arm:
    label = raw.get("name", "?")
    if unknown := set(raw) - _ARM_KEYS:
        raise RoutesError(f"arm {label}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ARM_KEYS)}")
    if not isinstance(raw.get("name"), str) or not isinstance(raw.get("upstream"), str):
        raise RoutesError(f"arm {label}: name and upstream (a URL) are required strings")
    options = {k: raw[k] for k in ("key_env", "max_concurrency") if k in raw}
    try:
        upstream = UpstreamSpec.parse(",".join([raw["upstream"], *(f"{k}={v}" for k, v in options.items())]))
        version = raw.get("version")
        return Arm(raw["name"], upstream, None if version is None else str(version), float(raw.get("weight", 1.0)),
                   raw.get("max_model_len"), raw.get("effective_length"), float(raw.get("cost", 1.0)))  # fmt: skip
    except RoutesError:
        raise
    except (ValueError, TypeError) as exc:
        raise RoutesError(f"arm {label}: {exc}") from exc
