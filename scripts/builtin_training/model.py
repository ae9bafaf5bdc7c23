"""The builtin model for training: a plain Llama with Hugging Face parameter names, and its weighted loss.

Exported weights load into ``ctxops.models.llama`` unchanged. It knows tensors, not data or files.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from builtin_training.recipe import Recipe


# ---------------------------------------------------------------------------------------------------------------
# model: a plain Llama with Hugging Face parameter names
# ---------------------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.heads, self.kv_heads = r.num_heads, r.num_kv_heads
        self.head_dim = r.hidden_size // r.num_heads
        self.q_proj = nn.Linear(r.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(r.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(r.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, r.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(r.hidden_size, r.intermediate_size, bias=False)
        self.up_proj = nn.Linear(r.hidden_size, r.intermediate_size, bias=False)
        self.down_proj = nn.Linear(r.intermediate_size, r.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(r.hidden_size)
        self.self_attn = Attention(r)
        self.post_attention_layernorm = RMSNorm(r.hidden_size)
        self.mlp = MLP(r)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, r: Recipe, vocab: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, r.hidden_size)
        self.layers = nn.ModuleList(Layer(r) for _ in range(r.num_layers))
        self.norm = RMSNorm(r.hidden_size)


class Llama(nn.Module):
    def __init__(self, r: Recipe, vocab: int) -> None:
        super().__init__()
        self.recipe = r
        self.model = Backbone(r, vocab)
        self.lm_head = nn.Linear(r.hidden_size, vocab, bias=False)
        head_dim = r.hidden_size // r.num_heads
        inv = 1.0 / (r.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        self.register_buffer("inv_freq", inv.float(), persistent=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
        for layer in self.model.layers:  # scaled init of residual outputs
            nn.init.normal_(layer.self_attn.o_proj.weight, std=0.02 / math.sqrt(2 * r.num_layers))
            nn.init.normal_(layer.mlp.down_proj.weight, std=0.02 / math.sqrt(2 * r.num_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        x = self.model.embed_tokens(ids)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def weighted_loss(
    model: Llama, ids: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted loss, answer-token loss) for next-token prediction."""
    with torch.autocast(ids.device.type, dtype=torch.bfloat16):
        logits = model(ids[:, :-1])
    nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    w = weights[:, 1:]
    loss = (nll * w).sum() / w.sum().clamp(min=1)
    ans = (w == 1.0).float()  # no data-dependent branch: no device sync
    return loss, ((nll * ans).sum() / ans.sum().clamp(min=1)).detach()
