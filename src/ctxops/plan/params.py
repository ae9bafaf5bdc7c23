"""Parameter counts of a decoder-only transformer, from its :class:`ModelConfig` alone.

Counts follow the Hugging Face module layout: GQA/MQA or MLA attention, dense or mixture-of-experts MLPs, tied or
separate embeddings, and the small tensors (norms, biases, routers) that a quantized checkpoint keeps 16-bit.
This module knows shapes, not dtypes or devices; head_dim is read from the config, never derived as
hidden / heads (wrong for Gemma-2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctxops.models.config import ModelConfig

# model_type -> RMSNorms per decoder layer (Gemma-2/3 add post-attention and post-feedforward norms)
_NORMS_PER_LAYER = {"gemma2": 4, "gemma3": 4, "gemma3_text": 4}


@dataclass(frozen=True, slots=True)
class ParamCount:
    """Parameters by role; every field is a count of scalars."""

    embedding: int  # embed_tokens + lm_head (once if tied)
    attention: int  # q/k/v/o projections (MLA: the low-rank a/b projections), all layers
    dense_mlp: int  # dense feed-forward blocks, all dense layers
    experts: int  # routed experts, all MoE layers
    active_experts: int  # routed experts a token passes through (top-k per MoE layer)
    shared: int  # shared experts, routers and their biases
    small: int  # norms and biases, kept 16-bit by quantized checkpoints

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def total(self) -> int:
        """Every parameter of the checkpoint (MTP heads excluded)."""
        return self.embedding + self.attention + self.dense_mlp + self.experts + self.shared + self.small

    @property
    def active(self) -> int:
        """Parameters one token reads: the total minus the routed experts it is not sent to."""
        return self.total - self.experts + self.active_experts

    @property
    def quantizable(self) -> int:
        """Linear-layer weights a quantized checkpoint stores in low precision."""
        return self.attention + self.dense_mlp + self.experts + self.shared


def count_params(config: ModelConfig) -> ParamCount:
    """Count the parameters of ``config``'s model.

    Args:
        config: the parsed ``config.json``.

    Returns:
        The counts by role; ``total`` matches published parameter counts within about 0.1% for the presets.
    """
    h, layers = config.hidden_size, config.num_hidden_layers
    embedding = config.vocab_size * h * (1 if config.tie_word_embeddings else 2)
    attention, attention_small = _attention_params(config)
    num_moe = layers - config.first_k_dense_layers if config.is_moe else 0
    dense_mlp = (layers - num_moe) * 3 * h * config.intermediate_size  # gate, up, down
    experts = active_experts = shared = 0
    if config.is_moe:
        expert = 3 * h * (config.moe_intermediate_size or config.intermediate_size)
        experts = num_moe * config.num_experts * expert
        active_experts = num_moe * (config.num_experts_per_tok or 1) * expert
        router = config.num_experts * h + (config.num_experts if config.num_shared_experts else 0)
        shared = num_moe * (config.num_shared_experts * expert + router)
    norms = layers * _NORMS_PER_LAYER.get(config.model_type, 2) * h + h  # + the final norm
    mlp_bias = (layers - num_moe) * (2 * config.intermediate_size + h) if config.mlp_bias else 0
    return ParamCount(
        embedding=embedding,
        attention=layers * attention,
        dense_mlp=dense_mlp,
        experts=experts,
        active_experts=active_experts,
        shared=shared,
        small=norms + layers * attention_small + mlp_bias,
    )


def _attention_params(config: ModelConfig) -> tuple[int, int]:
    """(projection weights, norms and biases) of one attention layer."""
    h, heads = config.hidden_size, config.num_attention_heads
    if config.is_mla:
        rope, nope = config.qk_rope_head_dim or 0, config.qk_nope_head_dim or 0
        v_dim, rank = config.v_head_dim or config.head_dim, config.kv_lora_rank or 0
        q_dim = heads * (nope + rope)
        q_rank = config.q_lora_rank
        q = h * q_rank + q_rank * q_dim if q_rank else h * q_dim  # low-rank or direct query projection
        kv = h * (rank + rope) + rank * heads * (nope + v_dim)  # compress to the latent, then expand
        norms = rank + (config.q_lora_rank or 0)
        return q + kv + heads * v_dim * h, norms
    q_dim = heads * config.head_dim
    kv_dim = config.num_key_value_heads * config.head_dim
    weights = 2 * h * q_dim + 2 * h * kv_dim  # q, o, k, v
    small = (q_dim + 2 * kv_dim) if config.qkv_bias else 0
    small += h if config.o_bias else 0
    small += 2 * config.head_dim if config.qk_norm else 0
    return weights, small
