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
        return self.forward_with_hidden(ids, None)[0]

    def forward_with_hidden(
        self, ids: torch.Tensor, layer_index: int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, seq, vocab) and the hidden state after layer ``layer_index`` (1-based; None: not kept)."""
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        x = self.model.embed_tokens(ids)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        hidden = None
        for i, layer in enumerate(self.model.layers, start=1):
            x = layer(x, cos, sin)
            if i == layer_index:
                hidden = x
        return self.lm_head(self.model.norm(x)), hidden


class KeyProbe(nn.Module):
    """Training-only heads that read a needle's key (its adjective and noun) from one layer's hidden state.

    Marks put the key where retrieval needs it: on each needle's first value token and on the two tokens before
    each value of an answer. Without this the model never carries a key past its own tokens (a linear probe of
    v2 reads it at 0.01 accuracy anywhere else) and multi-key retrieval stays at chance; with it, key matching
    forms within about a million tokens. Never exported: the shipped model is a plain Llama.
    """

    def __init__(self, hidden_size: int, num_adjectives: int, num_nouns: int) -> None:
        super().__init__()
        self.adjective = nn.Linear(hidden_size, num_adjectives)
        self.noun = nn.Linear(hidden_size, num_nouns)

    def forward(self, hidden: torch.Tensor, marks: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of both heads at ``marks`` (M, 4): rows of (doc, position, adjective, noun)."""
        h = hidden[marks[:, 0], marks[:, 1]].float()
        return F.cross_entropy(self.adjective(h), marks[:, 2]) + F.cross_entropy(self.noun(h), marks[:, 3])


def weighted_loss(
    model: Llama,
    ids: torch.Tensor,
    weights: torch.Tensor,
    marks: torch.Tensor | None = None,
    probe: KeyProbe | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weighted loss + key-probe loss, answer-token loss, key-probe loss) for next-token prediction.

    The probe's loss is weighted by ``recipe.key_aux`` and read at layer ``recipe.key_aux_layer``.
    """
    r = model.recipe
    use_probe = probe is not None and marks is not None and r.key_aux > 0 and len(marks) > 0
    with torch.autocast(ids.device.type, dtype=torch.bfloat16):
        logits, hidden = model.forward_with_hidden(ids[:, :-1], r.key_aux_layer if use_probe else None)
    nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    w = weights[:, 1:]
    loss = (nll * w).sum() / w.sum().clamp(min=1)
    ans = (w == 1.0).float()  # no data-dependent branch: no device sync
    aux = probe(hidden, marks) if use_probe else torch.zeros((), device=ids.device)
    return loss + r.key_aux * aux, ((nll * ans).sum() / ans.sum().clamp(min=1)).detach(), aux.detach()
