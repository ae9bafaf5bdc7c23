"""``monitor.toml``: what ``ctxops monitor run`` checks, how often, and whom it notifies.

    db = "ctxops-requests.db"        # optional; --db and CTXOPS_DB override it

    [drift]                          # each section is optional; a missing one is not run
    every = "10m"
    reference = "7d..1h"
    current = "1h.."
    # model = "llama"; by = "model"; alpha = 0.01; min_rows = 50

    [slo]
    every = "1m"
    file = "slo.toml"                # relative paths are relative to monitor.toml

    [error_spike]
    every = "1m"
    window = "5m"
    max_error_rate = 0.05
    min_errors = 10

    [[webhook]]
    url = "https://hooks.example.com/T000/B000"
    format = "slack"                 # json (default) | slack

This module knows the file format, not the store.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ctxops.monitor.drift import DriftConfig
from ctxops.monitor.notify import Webhook
from ctxops.monitor.slo_config import SLOConfig, load_slo
from ctxops.monitor.windows import parse_duration, parse_window


@dataclass(frozen=True, slots=True)
class DriftJob:
    """The drift check: windows relative to each run's now."""

    every_s: float
    reference: str
    current: str
    model: str | None = None
    by: str | None = None
    config: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        parse_window(self.reference), parse_window(self.current)  # fail now, not at the first run
        if self.by not in (None, "model", "upstream"):
            raise ValueError(f"by must be model or upstream, got {self.by!r}")


@dataclass(frozen=True, slots=True)
class ErrorSpikeJob:
    """The error-spike check over the last ``window_s`` seconds."""

    every_s: float
    window_s: float
    max_error_rate: float = 0.05
    min_errors: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.max_error_rate < 1 or self.min_errors < 1:
            raise ValueError("max_error_rate must be in (0, 1) and min_errors >= 1")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Everything ``monitor run`` does."""

    db: str | None = None
    drift: DriftJob | None = None
    slo: SLOConfig | None = None
    slo_every_s: float = 60.0
    error_spike: ErrorSpikeJob | None = None
    webhooks: tuple[Webhook, ...] = ()
    deliver_every_s: float = 5.0

    def __post_init__(self) -> None:
        if not (self.drift or self.slo or self.error_spike):
            raise ValueError("nothing to run: add a [drift], [slo] or [error_spike] section")


def _section(data: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any] | None:
    section = data.get(name)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValueError(f"[{name}] must be a table")
    unknown = set(section) - allowed
    if unknown:
        raise ValueError(
            f"[{name}]: unknown field {sorted(unknown)[0]!r} (expected {', '.join(sorted(allowed))})"
        )
    return section


def _duration(section: dict[str, Any] | None, name: str, key: str, default: str) -> float:
    """``section[key]`` as seconds, or a ValueError naming ``[name] key``."""
    try:
        return parse_duration((section or {}).get(key, default))
    except ValueError as exc:
        raise ValueError(f"[{name}] {key}: {exc}") from exc


def _drift(data: dict[str, Any]) -> DriftJob | None:
    names = {f.name for f in fields(DriftConfig)}
    section = _section(data, "drift", {"every", "reference", "current", "model", "by"} | names)
    if section is None:
        return None
    config = DriftConfig(**{k: v for k, v in section.items() if k in names})
    return DriftJob(_duration(section, "drift", "every", "10m"), section.get("reference", "7d..1h"),
                    section.get("current", "1h.."), section.get("model"), section.get("by"), config)  # fmt: skip


def load_monitor_config(path: str | Path) -> MonitorConfig:
    """Read and check ``monitor.toml``; problems are ValueErrors naming the file and the section."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
        unknown = set(data) - {"db", "drift", "slo", "error_spike", "webhook", "deliver_every"}
        if unknown:
            raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
        slo = _section(data, "slo", {"every", "file"})
        spike = _section(data, "error_spike", {"every", "window", "max_error_rate", "min_errors"})
        hooks = data.get("webhook", [])
        return MonitorConfig(
            db=data.get("db"),
            drift=_drift(data),
            slo=load_slo(path.parent / slo["file"]) if slo and "file" in slo else None,
            slo_every_s=_duration(slo, "slo", "every", "1m"),
            error_spike=ErrorSpikeJob(_duration(spike, "error_spike", "every", "1m"),
                                      _duration(spike, "error_spike", "window", "5m"),
                                      spike.get("max_error_rate", 0.05), spike.get("min_errors", 10)) if spike else None,
            webhooks=tuple(Webhook(**hook) for hook in hooks),
            deliver_every_s=_duration(data, "top level", "deliver_every", "5s"),
        )  # fmt: skip
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
