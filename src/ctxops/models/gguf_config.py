"""``config.json`` and ``generation_config.json`` for a GGUF's model, from its ``{arch}.*`` metadata and tensors.

Shapes come from the metadata (``embedding_length``, ``block_count``, head counts, ``key_length``) and the vocabulary
size from ``token_embd.weight``; a missing ``output.weight`` means tied embeddings. RoPE: ``rope.freq_base`` is the
theta; ``rope.scaling.type`` linear and yarn carry over; Llama 3's scaling, which llama.cpp stores as per-dimension
factors in a ``rope_freqs`` tensor, is recognised by recomputing those factors and written back as a ``llama3``
``rope_scaling``. What cannot be expressed (per-layer head counts, partial rotary, unknown scalings) is refused.
It knows metadata, not tensors' contents or tokenizers.
"""

from __future__ import annotations

from typing import Any

import gguf
import numpy as np

from ctxops.models.gguf_file import SUPPORTED_ARCHITECTURES, GGUFFile, GGUFImportError

ROPE_FREQS = "rope_freqs.weight"


def build_config(file: GGUFFile, dtype: str) -> dict[str, Any]:
    """``config.json`` for the GGUF's model, from its ``{arch}.*`` metadata and tensor shapes."""
    arch = file.architecture
    model_type, hf_class, _ = SUPPORTED_ARCHITECTURES[arch]
    if "token_embd.weight" not in file.tensors:
        raise GGUFImportError(f"{file.path}: no token_embd.weight tensor; is this a language model?")
    hidden = _scalar(file, "embedding_length", required=True)
    heads = _scalar(file, "attention.head_count", required=True)
    if hidden <= 0 or heads <= 0:
        raise GGUFImportError(
            f"{file.path}: {arch}.embedding_length and attention.head_count must be positive"
        )
    kv_heads = _scalar(file, "attention.head_count_kv", heads)
    head_dim = _scalar(file, "attention.key_length", hidden // heads)
    value_dim = _scalar(file, "attention.value_length", head_dim)
    if value_dim != head_dim:
        raise GGUFImportError(
            f"{file.path}: {arch}.attention.value_length ({value_dim}) differs from key_length ({head_dim}); "
            "the engine needs equal query/key and value head sizes"
        )
    rope_dims = _scalar(file, "rope.dimension_count", head_dim)
    if rope_dims != head_dim:
        raise GGUFImportError(
            f"{file.path}: {arch}.rope.dimension_count ({rope_dims}) is not the head size ({head_dim}); "
            "partial rotary embeddings are not supported by the importer"
        )
    theta = _f32(file.arch_field("rope.freq_base", 10000.0))
    context = _scalar(file, "context_length", required=True)
    window = file.arch_field("attention.sliding_window")
    config: dict[str, Any] = {
        "architectures": [hf_class],
        "model_type": model_type,
        "vocab_size": int(file.tensors["token_embd.weight"].shape[-1]),
        "hidden_size": hidden,
        "intermediate_size": _scalar(file, "feed_forward_length", required=True),
        "num_hidden_layers": _scalar(file, "block_count", required=True),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": context,
        "rms_norm_eps": _f32(file.arch_field("attention.layer_norm_rms_epsilon", required=True)),
        "rope_theta": theta,
        "rope_scaling": _rope_scaling(file, theta, head_dim, context),
        "hidden_act": "silu",
        "tie_word_embeddings": "output.weight" not in file.tensors,
        "torch_dtype": dtype,
        "bos_token_id": file.fields.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": file.fields.get("tokenizer.ggml.eos_token_id"),
    }
    if arch in ("llama", "mistral"):
        config["attention_bias"] = "blk.0.attn_q.bias" in file.tensors
        config["mlp_bias"] = False
        if arch == "mistral":
            config["sliding_window"] = window
    else:  # Qwen: biases (qwen2) and q/k norms (qwen3) are implied by the model type
        config["use_sliding_window"] = window is not None
        config["sliding_window"] = window
        config["max_window_layers"] = config["num_hidden_layers"]
    return config


def _f32(value: float) -> float:
    """A float GGUF stored in 32 bits, as its shortest decimal (1e-05, not 9.999999747378752e-06)."""
    return float(str(np.float32(value)))


def _scalar(file: GGUFFile, name: str, default: Any = None, *, required: bool = False) -> int:
    """An integer hyperparameter; a per-layer list is accepted when all its entries are equal."""
    value = file.arch_field(name, default, required=required)
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise GGUFImportError(
                f"{file.path}: {file.architecture}.{name} differs between layers ({sorted(set(value))}); "
                "the engine needs the same value in every layer"
            )
        value = value[0]
    return int(value)


def _rope_scaling(file: GGUFFile, theta: float, head_dim: int, context: int) -> dict[str, Any] | None:
    kind = file.arch_field("rope.scaling.type", "none")
    factor = file.arch_field("rope.scaling.factor")
    original = file.arch_field("rope.scaling.original_context_length")
    if ROPE_FREQS in file.tensors:
        if kind not in ("none", None):
            raise GGUFImportError(
                f"{file.path}: both rope_freqs.weight and rope.scaling.type {kind!r} are set"
            )
        freqs = gguf.quants.dequantize(file.tensors[ROPE_FREQS].data, file.tensors[ROPE_FREQS].tensor_type)
        return _llama3_scaling(file, np.asarray(freqs, dtype=np.float64).reshape(-1), theta, head_dim)
    if kind in ("none", None) or (kind == "linear" and factor in (None, 1.0)):
        return None
    if file.arch_field("rope.scaling.attn_factor") is not None:
        raise GGUFImportError(
            f"{file.path}: {file.architecture}.rope.scaling.attn_factor is set; the importer does not carry it"
        )
    if kind == "linear":
        return {"rope_type": "linear", "factor": _f32(factor)}
    if kind == "yarn":
        scaling: dict[str, Any] = {
            "rope_type": "yarn",
            "factor": _f32(factor if factor is not None else 1.0),
            "original_max_position_embeddings": int(original or context),
        }
        for key, name in (("beta_fast", "yarn_beta_fast"), ("beta_slow", "yarn_beta_slow")):
            value = file.arch_field(f"rope.scaling.{name}")
            if value is not None:
                scaling[key] = _f32(value)
        return scaling
    raise GGUFImportError(
        f"{file.path}: {file.architecture}.rope.scaling.type {kind!r} is not supported; supported: none, "
        "linear, yarn, and Llama 3's rope_freqs"
    )


def llama3_rope_factors(
    theta: float, head_dim: int, factor: float, low: float, high: float, original: int
) -> np.ndarray:
    """How much Llama 3 scaling divides each RoPE frequency by (1 for high frequencies, ``factor`` for low ones)."""
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * np.pi / inv_freq
    smooth = (original / wavelen - low) / (high - low)
    medium = 1.0 / ((1 - smooth) / factor + smooth)
    return np.where(wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, medium))


def _llama3_scaling(file: GGUFFile, freqs: np.ndarray, theta: float, head_dim: int) -> dict[str, Any]:
    factor = _f32(freqs.max())
    for exponent in range(4, 21):  # pretraining lengths 16 .. 1M tokens
        for low, high in ((1.0, 4.0), (1.0, 2.0), (1.0, 8.0)):
            expected = llama3_rope_factors(theta, head_dim, factor, low, high, 2**exponent)
            if expected.shape == freqs.shape and np.allclose(expected, freqs, rtol=1e-4):
                return {
                    "rope_type": "llama3",
                    "factor": factor,
                    "low_freq_factor": low,
                    "high_freq_factor": high,
                    "original_max_position_embeddings": 2**exponent,
                }
    raise GGUFImportError(
        f"{file.path}: rope_freqs.weight holds per-dimension RoPE factors that match no Llama 3 scaling "
        "(factor = their maximum, low/high frequency factors 1/2..8, pretraining length a power of two); "
        "the importer cannot express them in config.json"
    )


def generation_config(file: GGUFFile, bos: int | None, eos: list[int], pad: int | None) -> dict[str, Any]:
    """``generation_config.json``: BOS, every end-of-turn id, padding, and sampling defaults the GGUF recommends."""
    config: dict[str, Any] = {"bos_token_id": bos, "eos_token_id": eos[0] if len(eos) == 1 else eos}
    if pad is not None:
        config["pad_token_id"] = pad
    sampling = {
        "temperature": file.fields.get("general.sampling.temp"),
        "top_k": file.fields.get("general.sampling.top_k"),
        "top_p": file.fields.get("general.sampling.top_p"),
    }
    if any(v is not None for v in sampling.values()):
        config["do_sample"] = True
        config.update({k: v for k, v in sampling.items() if v is not None})
    return {k: v for k, v in config.items() if v is not None and v != []}
