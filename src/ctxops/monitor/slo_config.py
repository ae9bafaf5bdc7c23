"""SLO objectives read from a TOML file; a malformed file is an error naming its line and field.

    period = "30d"                # the SLO window the error budget is spent over

    [[objective]]
    name = "ttft-p95-8k"
    kind = "latency"              # a request is good when metric <= threshold_s
    metric = "ttft_s"             # ttft_s | e2e_s | queue_time_s
    percentile = 95               # target: 95% of requests good
    threshold_s = 2.0
    max_prompt_tokens = 8192      # only prompts up to this length (optional)

    [[objective]]
    name = "errors"
    kind = "error_rate"           # bad: HTTP 5xx
    max_error_rate = 0.01

    [[objective]]
    name = "availability"
    kind = "availability"         # bad: HTTP 5xx or 429 (refused)
    target = 0.999

Every objective may also name a ``model``. This module knows the file format, not the store.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ctxops.monitor.windows import parse_duration

KINDS = ("latency", "error_rate", "availability")
LATENCY_METRICS = ("ttft_s", "e2e_s", "queue_time_s")
_TARGET_FIELD = {"latency": "percentile", "error_rate": "max_error_rate", "availability": "target"}


class SLOFileError(ValueError):
    """The SLO file cannot be used; the message names the file, line and field."""


@dataclass(frozen=True, slots=True)
class Objective:
    """One objective: which requests count (valid), which of them are bad, and the share that must be good."""

    name: str
    kind: str
    target: float  # share of valid requests that must be good, in (0, 1)
    metric: str | None = None  # latency only
    threshold_s: float | None = None  # latency only
    max_prompt_tokens: int | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not (math.isfinite(self.target) and 0 < self.target < 1):
            raise ValueError(
                f"{_TARGET_FIELD[self.kind]} gives a target of {self.target:g}; it must be in (0, 1)"
            )
        if self.kind == "latency":
            if self.metric not in LATENCY_METRICS:
                raise ValueError(f"metric must be one of {', '.join(LATENCY_METRICS)}, got {self.metric!r}")
            if self.threshold_s is None or not (math.isfinite(self.threshold_s) and self.threshold_s > 0):
                raise ValueError(
                    f"threshold_s must be a positive number of seconds, got {self.threshold_s!r}"
                )
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")

    @property
    def error_budget(self) -> float:
        """The share of valid requests allowed to be bad."""
        return 1.0 - self.target


@dataclass(frozen=True, slots=True)
class SLOConfig:
    """The period the budget covers and the objectives."""

    period_s: float
    objectives: tuple[Objective, ...] = field(default_factory=tuple)
    period_text: str = "30d"

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError("period must be positive, e.g. 30d")
        if not self.objectives:
            raise ValueError("objective: the file defines none; add at least one [[objective]] table")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"name: objective names must be unique, got {names}")


_EXPECTED: dict[str, type | tuple[type, ...]] = {
    "name": str, "kind": str, "metric": str, "percentile": (int, float), "threshold_s": (int, float),
    "max_prompt_tokens": int, "max_error_rate": (int, float), "target": (int, float), "model": str,
}  # fmt: skip


def _line_of(text: str, key: str, table_index: int | None) -> int | None:
    """1-based line of ``key = ...`` inside the ``table_index``-th [[objective]] (None: top level)."""
    seen = -1
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"\s*\[\[\s*objective\s*\]\]", line):
            seen += 1
        elif re.match(rf"\s*{re.escape(key)}\s*=", line) and seen == (
            -1 if table_index is None else table_index
        ):
            return number
    return None


def _where(path: Path, text: str, key: str, index: int | None) -> str:
    line = _line_of(text, key, index) or (_line_of(text, "name", index) if index is not None else None)
    table = f" (objective {index + 1})" if index is not None else ""
    return f"{path}, line {line}{table}" if line else f"{path}{table}"


def _objective(raw: dict[str, Any]) -> Objective:
    unknown = set(raw) - set(_EXPECTED)
    if unknown:
        raise KeyError(sorted(unknown)[0])
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    value = raw.get(_TARGET_FIELD[kind])
    if value is None:
        raise LookupError(_TARGET_FIELD[kind])
    target = {"latency": value / 100, "error_rate": 1 - value, "availability": value}[kind]
    keep = {f.name for f in fields(Objective)} - {"target", "kind"}
    return Objective(
        kind=kind, target=target, name=raw.get("name", ""), **{k: raw[k] for k in keep & set(raw) - {"name"}}
    )


def _field_of(message: str) -> str:
    return message.split(" ", 1)[0]  # Objective's messages start with the field they are about


def load_slo(path: str | Path) -> SLOConfig:
    """Read and check an SLO file; every problem is an :class:`SLOFileError` naming line and field."""
    path = Path(path)
    try:
        text = path.read_text()
        data = tomllib.loads(text)
    except OSError as exc:
        raise SLOFileError(f"{path}: cannot read the SLO file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SLOFileError(f"{path}: not valid TOML: {exc}") from exc
    period_text = data.pop("period", "30d")
    try:
        period_s = parse_duration(str(period_text))
    except ValueError as exc:
        raise SLOFileError(f"{_where(path, text, 'period', None)}: field 'period': {exc}") from exc
    if set(data) - {"objective"}:
        key = sorted(set(data) - {"objective"})[0]
        raise SLOFileError(
            f"{_where(path, text, key, None)}: unknown field {key!r} (expected period, [[objective]])"
        )
    objectives = []
    for index, raw in enumerate(data.get("objective", [])):
        for key, value in raw.items():
            expected = _EXPECTED.get(key)
            if expected is not None and (not isinstance(value, expected) or isinstance(value, bool)):
                raise SLOFileError(
                    f"{_where(path, text, key, index)}: field {key!r} has the wrong type ({value!r})"
                )
        try:
            objectives.append(_objective(raw))
        except KeyError as exc:
            key = exc.args[0]
            raise SLOFileError(
                f"{_where(path, text, key, index)}: unknown field {key!r} (expected one of {', '.join(_EXPECTED)})"
            ) from exc
        except LookupError as exc:
            raise SLOFileError(
                f"{_where(path, text, 'kind', index)}: field {exc.args[0]!r} is required"
            ) from exc
        except ValueError as exc:
            key = _field_of(str(exc))
            raise SLOFileError(f"{_where(path, text, key, index)}: field {key!r}: {exc}") from exc
    try:
        return SLOConfig(period_s, tuple(objectives), str(period_text))
    except ValueError as exc:
        raise SLOFileError(f"{path}: {exc}") from exc
