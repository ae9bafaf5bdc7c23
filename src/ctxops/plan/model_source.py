"""Which model to plan for: a preset name, a Hugging Face id, a ``config.json``, a model directory or ``builtin``.

Presets are Hugging Face ``config.json`` files shipped as data under ``presets/`` (file name = preset name, the
``_name_or_path`` field = the Hub id); every source is parsed by the engine's one :class:`ModelConfig` parser.
This module knows where configs come from; it does not know memory or devices, and it downloads nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ctxops.models.config import ModelConfig, ModelConfigError

BUILTIN = "builtin"


class UnknownModelError(ValueError):
    """MODEL is neither a preset, a Hub id of a preset, a path to a config, nor ``builtin``."""


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A resolved model: its display name, its parsed config and, for local models, the directory."""

    name: str
    config: ModelConfig
    directory: Path | None = None  # a local model directory (weights may be there); None for presets

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a model source needs a name")


@cache
def _preset_files() -> dict[str, dict]:
    """Preset name -> raw config.json dict, read once from the package data."""
    folder = resources.files("ctxops.plan") / "presets"
    presets = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            presets[entry.name.removesuffix(".json")] = json.loads(entry.read_text())
    return presets


def preset_names() -> list[str]:
    """The shipped preset names, sorted."""
    return sorted(_preset_files())


def hub_ids() -> dict[str, str]:
    """Lower-cased Hugging Face id -> preset name."""
    return {
        raw["_name_or_path"].lower(): name for name, raw in _preset_files().items() if "_name_or_path" in raw
    }


def _builtin_directory() -> Path:
    return Path(str(resources.files("ctxops.models"))) / "builtin"


def resolve_model(model: str) -> ModelSource:
    """Resolve the MODEL argument of ``ctxops plan``.

    Args:
        model: a preset name (``llama-3.1-8b``, any case), a Hub id of a preset (``meta-llama/Llama-3.1-8B``),
            a path to a ``config.json`` or to a model directory, or ``builtin``.

    Returns:
        The resolved source.

    Raises:
        UnknownModelError: nothing matches; the message lists the presets.
        ModelConfigError: the config exists but is invalid (the message names the field).
    """
    key = model.strip().lower()
    presets = _preset_files()
    if key in presets:
        return ModelSource(key, ModelConfig.from_dict(presets[key], source=f"preset {key}"))
    if key in hub_ids():
        name = hub_ids()[key]
        return ModelSource(name, ModelConfig.from_dict(presets[name], source=f"preset {name}"))
    if key == BUILTIN:
        directory = _builtin_directory()
        if not (directory / "config.json").is_file():
            raise UnknownModelError(
                "the builtin model is not shipped in this install yet; pass a preset or a model directory. "
                f"Presets: {', '.join(preset_names())}"
            )
        return ModelSource(BUILTIN, ModelConfig.from_path(directory), directory)
    path = Path(model).expanduser()
    if path.exists():
        config = ModelConfig.from_path(path)
        directory = path if path.is_dir() else path.parent
        return ModelSource(str(path), config, directory)
    raise UnknownModelError(
        f"unknown model {model!r}: not a preset, a Hugging Face id of a preset, or an existing path. "
        f"Presets: {', '.join(preset_names())}. Hub ids: {', '.join(sorted(hub_ids()))}"
    )


__all__ = ["BUILTIN", "ModelConfigError", "ModelSource", "UnknownModelError", "preset_names", "resolve_model"]
