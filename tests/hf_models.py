"""Build tiny random-weight Hugging Face checkpoints of every supported architecture, with transformers."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from ctxops.models.random_model import train_tokenizer

BASE = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-5,
    initializer_range=0.1,  # decisive logits, so greedy ties cannot flip tokens
)

ARCHITECTURES = {
    # name: (config class, model class, overrides)
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "llama2-mha": ("LlamaConfig", "LlamaForCausalLM", {"num_key_value_heads": 4}),
    "llama-bias-headdim": ("LlamaConfig", "LlamaForCausalLM", {"attention_bias": True, "head_dim": 32}),
    "llama3.2-tied": (
        "LlamaConfig",
        "LlamaForCausalLM",
        {"tie_word_embeddings": True, "rope_theta": 500000.0},
    ),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"use_sliding_window": False}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 32, "use_sliding_window": False}),
}

ROPE_SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32,
    },
}


def make_hf_model(directory: Path, arch: str = "llama", rope: str | None = None, **overrides) -> Path:
    """Save a random-weight model (config, safetensors, tokenizer) to ``directory`` and return it."""
    config_cls, model_cls, arch_overrides = ARCHITECTURES[arch]
    kwargs = {**BASE, **arch_overrides, **overrides}
    if rope is not None:
        kwargs["rope_parameters"] = {**ROPE_SCALINGS[rope], "rope_theta": kwargs.pop("rope_theta", 10000.0)}
    tok = train_tokenizer(directory, vocab_size=kwargs["vocab_size"])
    kwargs["vocab_size"] = tok.get_vocab_size()
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    model.save_pretrained(directory)
    return directory


def load_hf(directory: Path, dtype: torch.dtype = torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        directory, dtype=dtype, attn_implementation="eager"
    )
    return model.eval()
