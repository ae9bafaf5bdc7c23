"""Which model to plan for: a preset name, a Hugging Face id, a ``config.json``, a model directory or ``builtin``.

Presets are Hugging Face ``config.json`` files shipped as data under ``presets/`` (file name = preset name, the
``_name_or_path`` field = the Hub id); every source is parsed by the engine's one :class:`ModelConfig` parser.

The planner's formulas model decoder-only transformers: GQA/MQA or MLA attention, gated MLPs (dense or mixture of
experts), sliding-window layers. A config of another family (a state-space model such as Mamba, a hybrid such as
Jamba, a layout the parser does not read) would still parse into *some* numbers, wrong ones, so a local config
whose family is not in :data:`PLANNED_ARCHITECTURES` is refused unless the caller asks to plan it as a dense
decoder anyway; the source then carries a warning for the report.

This module knows where configs come from; it does not know memory or devices, and it downloads nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from ctxops.models.config import ENGINE_ARCHITECTURES, ModelConfig, ModelConfigError, read_json_object

BUILTIN = "builtin"

# model_type -> architecture class: the families whose memory the planner's formulas describe (every preset's is
# here; the engine runs the subset in ENGINE_ARCHITECTURES).
PLANNED_ARCHITECTURES = {
    **ENGINE_ARCHITECTURES,
    "mixtral": "MixtralForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "deepseek_v2": "DeepseekV2ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
}


class UnknownModelError(ValueError):
    """MODEL is neither a preset, a Hub id of a preset, a path to a config, nor ``builtin``."""


class UnknownArchitectureError(ModelConfigError):
    """A config.json of a model family the planner cannot size; the message names it and the known families."""

    def __init__(self, message: str, architecture: str) -> None:
        super().__init__(message)
        self.architecture = architecture


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A resolved model: its display name, its parsed config and, for local models, the directory."""

    name: str
    config: ModelConfig
    directory: Path | None = None  # a local model directory (weights may be there); None for presets
    warnings: tuple[str, ...] = ()  # caveats the report must show (an unknown family planned as dense)

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


def resolve_model(model: str, assume_dense: bool = False) -> ModelSource:
    """Resolve the MODEL argument of ``ctxops plan``.

    Args:
        model: a preset name (``llama-3.1-8b``, any case), a Hub id of a preset (``meta-llama/Llama-3.1-8B``),
            a path to a ``config.json`` or to a model directory, or ``builtin``.
        assume_dense: plan a local config of an unknown family as a dense decoder, with a warning, instead of
            refusing it.

    Returns:
        The resolved source.

    Raises:
        UnknownModelError: nothing matches; the message lists the presets.
        UnknownArchitectureError: a local config of a family the planner does not know, without ``assume_dense``.
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
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise ModelConfigError(f"{file}: not found; a model directory must contain config.json")
        raw = read_json_object(file)
        warnings = _check_family(raw, str(file), assume_dense)
        try:
            config = ModelConfig.from_dict(raw, source=str(file))
        except ModelConfigError as exc:
            if not warnings:
                raise
            raise ModelConfigError(
                f"{exc}. It cannot be planned as a dense decoder: {_family_name(raw)} does not describe "
                "attention layers the way Llama-style configs do"
            ) from exc
        directory = path if path.is_dir() else path.parent
        return ModelSource(str(path), config, directory, warnings)
    raise UnknownModelError(
        f"unknown model {model!r}: not a preset, a Hugging Face id of a preset, or an existing path. "
        f"Presets: {', '.join(preset_names())}. Hub ids: {', '.join(sorted(hub_ids()))}"
    )


def _family(raw: dict) -> tuple[str, str]:
    """(architecture class, model_type) of a raw config; multimodal wrappers: the language model's model_type."""
    archs = raw.get("architectures")
    architecture = str(archs[0]) if isinstance(archs, list) and archs else ""
    text = raw.get("text_config")
    model_type = (text if isinstance(text, dict) and "model_type" in text else raw).get("model_type")
    return architecture, str(model_type or "")


def _family_name(raw: dict) -> str:
    architecture, model_type = _family(raw)
    return f"{architecture or 'no architectures entry'} (model_type {model_type!r})"


def _check_family(raw: dict, source: str, assume_dense: bool) -> tuple[str, ...]:
    """No warnings for a known family; one warning when ``assume_dense`` lets an unknown one through."""
    architecture, model_type = _family(raw)
    if model_type in PLANNED_ARCHITECTURES or (
        not model_type and architecture in PLANNED_ARCHITECTURES.values()
    ):
        return ()
    name = _family_name(raw)
    if assume_dense:
        return (
            f"{name} is not a family the planner knows; planned as a dense decoder because of --assume-dense, "
            "so memory and speed are estimates that may be far off (state-space, hybrid or unusual layers)",
        )
    known = ", ".join(sorted(set(PLANNED_ARCHITECTURES.values())))
    raise UnknownArchitectureError(
        f"{source}: architecture {name} is not one the planner can size; it knows {known}. Its memory may not "
        "follow a dense decoder's (state-space or hybrid layers, other attention layouts)",
        architecture or model_type,
    )


__all__ = [
    "BUILTIN",
    "PLANNED_ARCHITECTURES",
    "ModelConfigError",
    "ModelSource",
    "UnknownArchitectureError",
    "UnknownModelError",
    "preset_names",
    "resolve_model",
]
