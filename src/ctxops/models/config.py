"""What a model is, read from a Hugging Face ``config.json``.

``ModelConfig`` is the one parser of model configs in ctxops: the engine builds its transformer from it and the
planner computes memory from it. It imports no torch, so ``ctxops plan`` stays instant.

It knows shapes, attention layout, RoPE and the planner's extras (MLA, MoE, sliding-window layers, weight
quantization). It does not know weights, tokenizers or devices. Whether the *engine* can run a config is a separate
question, answered by :meth:`ModelConfig.check_engine_support`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class ModelConfigError(ValueError):
    """A config.json that is missing, unreadable or inconsistent; the message names the file and field."""


class UnsupportedModelError(ModelConfigError):
    """A valid config that the embedded engine cannot run (architecture or attention variant)."""


class RopeType(StrEnum):
    """RoPE scaling families, named as in Hugging Face ``rope_type``."""

    DEFAULT = "default"
    LINEAR = "linear"
    DYNAMIC = "dynamic"
    YARN = "yarn"
    LLAMA3 = "llama3"
    LONGROPE = "longrope"


# model_type -> the architecture class name the engine implements.
ENGINE_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}
ENGINE_ROPE_TYPES = (RopeType.DEFAULT, RopeType.LINEAR, RopeType.DYNAMIC, RopeType.YARN, RopeType.LLAMA3)


@dataclass(frozen=True, slots=True)
class RopeConfig:
    """Rotary embedding parameters.

    Normalised from either the old (``rope_theta`` + ``rope_scaling``) or the transformers-5 (``rope_parameters``)
    layout.
    """

    theta: float = 10000.0
    type: RopeType = RopeType.DEFAULT
    factor: float = 1.0
    original_max_position_embeddings: int | None = None  # pretraining length (yarn, llama3, longrope)
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    attention_factor: float | None = None  # yarn: scales cos/sin; None = derived from factor
    mscale: float | None = None  # yarn (DeepSeek)
    mscale_all_dim: float | None = None  # yarn (DeepSeek)
    truncate: bool = True  # yarn: round the correction range to whole dims
    partial_rotary_factor: float = 1.0


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """A decoder-only transformer's shape, parsed once from ``config.json`` and validated."""

    architecture: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    rope: RopeConfig = field(default_factory=RopeConfig)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # bias on q/k/v projections (Qwen2 always; Llama with attention_bias)
    o_bias: bool = False  # bias on the output projection (Llama with attention_bias)
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3: RMSNorm on each head of q and k before RoPE
    hidden_act: str = "silu"
    torch_dtype: str | None = None  # the dtype the checkpoint was saved in, e.g. "bfloat16"
    bos_token_id: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    # Sliding window: the window in tokens, and which layers use it (empty = none do).
    sliding_window: int | None = None
    sliding_window_layers: tuple[int, ...] = ()
    # MLA (DeepSeek-V2/V3): the KV cache holds a compressed latent plus a shared rope key per token.
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None  # None = queries projected directly from the hidden state
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    # Mixture of experts.
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None
    num_shared_experts: int = 0
    first_k_dense_layers: int = 0
    # Weight quantization declared by the checkpoint (quant_method, bits, group_size), if any.
    quantization: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ModelConfigError(f"config.json: {name} must be positive, got {getattr(self, name)}")
        if self.num_key_value_heads <= 0 or self.num_attention_heads % self.num_key_value_heads:
            raise ModelConfigError(
                f"config.json: num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.max_position_embeddings <= 0:
            raise ModelConfigError("config.json: max_position_embeddings must be positive")

    # ---- derived facts -------------------------------------------------------------------------------------
    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)

    @property
    def num_queries_per_kv(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    # ---- parsing -------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Parse a config dict as Hugging Face writes it; ``source`` names the file in error messages."""
        return _parse(raw, source)

    @classmethod
    def from_path(cls, path: str | Path) -> ModelConfig:
        """Read ``config.json`` from a model directory or a path to the file itself."""
        path = Path(path)
        file = path / "config.json" if path.is_dir() else path
        if not file.is_file():
            raise ModelConfigError(f"{file}: not found; a model directory must contain config.json")
        return _parse(read_json_object(file), str(file))

    def check_engine_support(self, max_model_len: int | None = None) -> None:
        """Raise :class:`UnsupportedModelError` unless the embedded engine can run this model exactly.

        Sliding-window layers are accepted only when ``max_model_len`` fits inside the window, where they are
        exactly full attention.
        """
        supported = ", ".join(sorted(ENGINE_ARCHITECTURES.values()))
        if ENGINE_ARCHITECTURES.get(self.model_type) != self.architecture:
            raise UnsupportedModelError(
                f"architecture {self.architecture} (model_type {self.model_type!r}) is not supported by the "
                f"embedded engine; supported: {supported}. Serve it with vLLM or SGLang and use "
                "`ctxops serve --upstream` instead."
            )
        if self.is_mla or self.is_moe:
            raise UnsupportedModelError(
                f"{self.architecture} with MLA or MoE layers is not supported by the engine"
            )
        if self.rope.type not in ENGINE_ROPE_TYPES:
            names = ", ".join(t.value for t in ENGINE_ROPE_TYPES)
            raise UnsupportedModelError(
                f"rope_type {self.rope.type.value!r} is not supported; supported: {names}"
            )
        if self.hidden_act != "silu":
            raise UnsupportedModelError(f"hidden_act {self.hidden_act!r} is not supported; supported: silu")
        if self.sliding_window_layers and (
            max_model_len is None or max_model_len > (self.sliding_window or 0)
        ):
            raise UnsupportedModelError(
                f"config.json enables sliding-window attention (window {self.sliding_window} on "
                f"{len(self.sliding_window_layers)} layers), which the engine does not implement; supported is full "
                f"attention only. Set max_model_len <= {self.sliding_window} (the window then never engages) or "
                "disable the window in config.json (use_sliding_window: false / sliding_window: null)."
            )


def read_json_object(file: Path) -> dict[str, Any]:
    """A JSON file that must hold an object; errors name the file."""
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(f"{file}: expected a JSON object")
    return data


# ---- the parser -------------------------------------------------------------------------------------------------


def _require(raw: dict[str, Any], key: str, source: str, kind: type = int) -> Any:
    if key not in raw or raw[key] is None:
        raise ModelConfigError(f"{source}: missing required field {key!r}")
    value = raw[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ModelConfigError(f"{source}: field {key!r} must be an integer, got {value!r}")
    return value


def _architecture(raw: dict[str, Any], source: str) -> str:
    archs = raw.get("architectures")
    if isinstance(archs, list) and archs:
        return str(archs[0])
    model_type = raw.get("model_type")
    if model_type in ENGINE_ARCHITECTURES:
        return ENGINE_ARCHITECTURES[model_type]
    raise ModelConfigError(
        f"{source}: missing 'architectures' (e.g. [\"LlamaForCausalLM\"]) and 'model_type'"
    )


def _rope(raw: dict[str, Any], max_position_embeddings: int, source: str) -> RopeConfig:
    params = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise ModelConfigError(f"{source}: rope_scaling must be an object or null, got {params!r}")
    theta = params.get("rope_theta", raw.get("rope_theta", 10000.0))
    type_name = params.get("rope_type", params.get("type", "default"))
    if type_name == "su":  # old Phi-3 name
        type_name = "longrope"
    try:
        rope_type = RopeType(type_name)
    except ValueError:
        names = ", ".join(t.value for t in RopeType)
        raise ModelConfigError(f"{source}: unknown rope_type {type_name!r}; known: {names}") from None
    factor = params.get("factor")
    if rope_type in (RopeType.LINEAR, RopeType.DYNAMIC, RopeType.LLAMA3) and factor is None:
        raise ModelConfigError(f"{source}: rope_scaling of type {type_name!r} needs a 'factor'")
    original = params.get("original_max_position_embeddings", raw.get("original_max_position_embeddings"))
    if rope_type in (RopeType.YARN, RopeType.LLAMA3, RopeType.LONGROPE) and original is None:
        original = max_position_embeddings
    if rope_type == RopeType.YARN and factor is None:
        factor = max_position_embeddings / original
    return RopeConfig(
        theta=float(theta),
        type=rope_type,
        factor=float(factor) if factor is not None else 1.0,
        original_max_position_embeddings=original,
        low_freq_factor=float(params.get("low_freq_factor", 1.0)),
        high_freq_factor=float(params.get("high_freq_factor", 4.0)),
        beta_fast=float(params.get("beta_fast") or 32.0),
        beta_slow=float(params.get("beta_slow") or 1.0),
        attention_factor=params.get("attention_factor"),
        mscale=params.get("mscale"),
        mscale_all_dim=params.get("mscale_all_dim"),
        truncate=bool(params.get("truncate", True)),
        partial_rotary_factor=float(
            params.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0))
        ),
    )


def _sliding_layers(raw: dict[str, Any], num_layers: int) -> tuple[int | None, tuple[int, ...]]:
    window = raw.get("sliding_window")
    layer_types = raw.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        layers = tuple(i for i, t in enumerate(layer_types) if t == "sliding_attention")
        return (window if layers else None), layers
    if window is None or raw.get("use_sliding_window") is False:
        return None, ()
    if window >= raw.get("max_position_embeddings", window + 1):
        return None, ()  # a window no sequence can exceed never engages (Phi-3-mini-128k: 262144)
    model_type = raw.get("model_type")
    if model_type in ("qwen2", "qwen3"):
        # Qwen applies the window to layers at or above max_window_layers.
        first = int(raw.get("max_window_layers", num_layers))
        layers = tuple(range(first, num_layers))
    elif model_type == "gemma2":
        layers = tuple(range(0, num_layers, 2))  # even layers local, odd layers global
    elif model_type in ("gemma3", "gemma3_text"):
        pattern = int(raw.get("sliding_window_pattern", 6))  # every pattern-th layer is global
        layers = tuple(i for i in range(num_layers) if (i + 1) % pattern)
    else:
        layers = tuple(range(num_layers))
    return (window if layers else None), layers


def _eos_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _parse(raw: dict[str, Any], source: str) -> ModelConfig:
    raw = {**raw, **(raw.get("text_config") or {})}  # multimodal wrappers keep the LM under text_config
    architecture = _architecture(raw, source)
    model_type = str(raw.get("model_type", ""))
    hidden = _require(raw, "hidden_size", source)
    heads = _require(raw, "num_attention_heads", source)
    layers = _require(raw, "num_hidden_layers", source)
    kv_heads = raw.get("num_key_value_heads") or heads
    head_dim = raw.get("head_dim") or hidden // heads
    max_pos = _require(raw, "max_position_embeddings", source)
    window, window_layers = _sliding_layers(raw, layers)
    n_experts = raw.get("n_routed_experts") or raw.get("num_local_experts") or raw.get("num_experts")
    return ModelConfig(
        architecture=architecture,
        model_type=model_type,
        vocab_size=_require(raw, "vocab_size", source),
        hidden_size=hidden,
        intermediate_size=raw.get("intermediate_size") or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=int(kv_heads),
        head_dim=int(head_dim),
        max_position_embeddings=max_pos,
        rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
        rope=_rope(raw, max_pos, source),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2" or bool(raw.get("attention_bias", False)),
        o_bias=model_type != "qwen2" and bool(raw.get("attention_bias", False)),
        mlp_bias=bool(raw.get("mlp_bias", False)),
        qk_norm=model_type == "qwen3",
        hidden_act=str(raw.get("hidden_act", "silu")),
        torch_dtype=raw.get("torch_dtype") or raw.get("dtype"),
        bos_token_id=raw.get("bos_token_id"),
        eos_token_ids=_eos_ids(raw.get("eos_token_id")),
        sliding_window=window,
        sliding_window_layers=window_layers,
        kv_lora_rank=raw.get("kv_lora_rank"),
        q_lora_rank=raw.get("q_lora_rank"),
        qk_rope_head_dim=raw.get("qk_rope_head_dim"),
        qk_nope_head_dim=raw.get("qk_nope_head_dim"),
        v_head_dim=raw.get("v_head_dim"),
        num_experts=n_experts,
        num_experts_per_tok=raw.get("num_experts_per_tok"),
        moe_intermediate_size=raw.get("moe_intermediate_size"),
        num_shared_experts=int(raw.get("n_shared_experts") or 0),
        first_k_dense_layers=int(raw.get("first_k_dense_replace") or 0),
        quantization=raw.get("quantization_config"),
    )
