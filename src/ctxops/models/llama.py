"""The Llama-family decoder (Llama 2/3.x, Mistral without sliding window, Qwen2/2.5, Qwen3).

One module covers the family because they differ only in switches that ``ModelConfig`` carries: q/k/v biases
(Qwen2), per-head q/k RMSNorm (Qwen3), tied embeddings, head_dim and the RoPE scaling. Parameter names match Hugging
Face checkpoints, so weights load by name.

The model works on a flattened batch: (T,) token ids and positions from any number of sequences, and attention
metadata that says where each token's keys live in the paged cache. It knows tensors, not sequences or sampling.
"""

from __future__ import annotations

import torch
from torch import nn

from ctxops.models.attention import AttentionMetadata, paged_attention
from ctxops.models.config import ModelConfig
from ctxops.models.native import cpu_has_bf16_matmul, for_decode_rows
from ctxops.models.rope import RotaryEmbedding, apply_rotary


class Linear(nn.Linear):
    """``nn.Linear``, fast for bf16 on any CPU.

    Few rows (a decode step) run on the native GEMV when it is built; many rows run as an fp32 GEMM on CPUs
    without bf16 hardware, where torch's bf16 GEMM is far slower.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.bfloat16 or self.weight.dtype != torch.bfloat16:
            return super().forward(x)
        native = for_decode_rows(x)
        if native is not None and self.out_features % 4 == 0 and self.weight.is_contiguous():
            return native.linear_bf16(x, self.weight, self.bias)
        if not cpu_has_bf16_matmul():  # fp32 sums either way: the same products, rounded once to bf16
            bias = None if self.bias is None else self.bias.float()
            return nn.functional.linear(x.float(), self.weight.float(), bias).to(torch.bfloat16)
        return super().forward(x)


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in fp32, cast back before the weight (as Hugging Face does)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        native = for_decode_rows(x)
        if (
            native is not None and self.weight.dtype == torch.bfloat16
        ):  # one native call instead of ~8 small ops
            return native.rms_norm_bf16(x, self.weight, self.eps)
        normed = nn.functional.rms_norm(x.float(), (x.shape[-1],), None, self.eps)  # one fused pass, in fp32
        return self.weight * normed.to(x.dtype)


class Attention(nn.Module):
    """Grouped-query attention with RoPE over the paged cache."""

    def __init__(self, config: ModelConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.layer_idx = layer_idx  # tells attention scorers (KV presses) which layer they observe
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        hidden = config.hidden_size
        self.q_proj = Linear(hidden, self.num_heads * self.head_dim, bias=config.qkv_bias)
        self.k_proj = Linear(hidden, self.num_kv_heads * self.head_dim, bias=config.qkv_bias)
        self.v_proj = Linear(hidden, self.num_kv_heads * self.head_dim, bias=config.qkv_bias)
        self.o_proj = Linear(self.num_heads * self.head_dim, hidden, bias=config.o_bias)
        self.qk_norm = config.qk_norm
        if self.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)

    def fuse(self) -> None:
        """Replace q/k/v by one (q+k+v) projection after loading: one matmul instead of three."""
        self.qkv_proj = _fuse_linears([self.q_proj, self.k_proj, self.v_proj])
        del self.q_proj, self.k_proj, self.v_proj

    def forward(
        self,
        x: torch.Tensor,  # (T, hidden)
        cos_sin: tuple[torch.Tensor, torch.Tensor],  # each (T, rot_dim), in the model dtype
        kv_cache: tuple[torch.Tensor, torch.Tensor],  # each (num_blocks, block_size, num_kv_heads, head_dim)
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        num_tokens = x.shape[0]
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        qkv = self.qkv_proj(x)
        cos, sin = cos_sin
        v = qkv[:, q_size + kv_size :].view(num_tokens, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            q = self.q_norm(qkv[:, :q_size].view(num_tokens, self.num_heads, self.head_dim))
            k = self.k_norm(
                qkv[:, q_size : q_size + kv_size].view(num_tokens, self.num_kv_heads, self.head_dim)
            )
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        else:  # rotate q and k heads together in one pass
            qk = qkv[:, : q_size + kv_size].view(
                num_tokens, self.num_heads + self.num_kv_heads, self.head_dim
            )
            q, k = apply_rotary(qk, cos, sin).split([self.num_heads, self.num_kv_heads], dim=1)
        out = paged_attention(q, k, v, kv_cache[0], kv_cache[1], meta, self.scale, self.layer_idx)
        return self.o_proj(out.view(num_tokens, self.num_heads * self.head_dim))


def _fuse_linears(linears: list[nn.Linear]) -> Linear:
    """Stack linears that read the same input into one; outputs come out concatenated in order."""
    weight = torch.cat([lin.weight.data for lin in linears])
    fused = Linear(weight.shape[1], weight.shape[0], bias=linears[0].bias is not None, dtype=weight.dtype)
    fused.weight.data = weight
    if fused.bias is not None:
        fused.bias.data = torch.cat([lin.bias.data for lin in linears])
    return fused


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        hidden, inter = config.hidden_size, config.intermediate_size
        self.gate_proj = Linear(hidden, inter, bias=config.mlp_bias)
        self.up_proj = Linear(hidden, inter, bias=config.mlp_bias)
        self.down_proj = Linear(inter, hidden, bias=config.mlp_bias)

    def fuse(self) -> None:
        """Replace gate/up by one projection after loading."""
        self.gate_up_proj = _fuse_linears([self.gate_proj, self.up_proj])
        del self.gate_proj, self.up_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(nn.functional.silu(gate).mul_(up))


class DecoderLayer(nn.Module):
    """Pre-norm attention and MLP blocks with residuals."""

    def __init__(self, config: ModelConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, cos_sin, kv_cache, meta: AttentionMetadata) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos_sin, kv_cache, meta)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    """Embeddings, decoder layers, final norm (the ``model.`` prefix of checkpoints)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    """The causal LM: hidden states for a flattened batch, logits for the rows that sample."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = LlamaModel(config)
        self.rotary = RotaryEmbedding(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(
        self,
        input_ids: torch.Tensor,  # (T,) long
        positions: torch.Tensor,  # (T,) long
        kv_caches: list[tuple[torch.Tensor, torch.Tensor]],  # one (k, v) pair per layer
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        """Hidden states after the final norm, (T, hidden)."""
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rotary.cos_sin(positions, meta.rope_seq_lens)
        cos_sin = (cos.to(x.dtype), sin.to(x.dtype))
        for layer, kv_cache in zip(self.model.layers, kv_caches, strict=True):
            x = layer(x, cos_sin, kv_cache, meta)
        return self.model.norm(x)

    def fuse_projections(self) -> None:
        """Fuse q/k/v and gate/up weights; call once after the checkpoint is loaded."""
        for layer in self.model.layers:
            layer.self_attn.fuse()
            layer.mlp.fuse()

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, hidden) -> (N, vocab) logits in fp32."""
        return self.lm_head(hidden).float()
