"""Rotary position embeddings and their long-context scalings (linear, dynamic NTK, YaRN, Llama 3).

The rotary layer turns positions into cos/sin tables and rotates q and k with them, in the "rotate half" layout
Hugging Face checkpoints use. It knows positions and frequencies, not sequences or caches: the caller passes, per
token, its position and (for dynamic NTK only) the length of its sequence at the time the token is computed.
"""

from __future__ import annotations

import math

import torch

from ctxops.models.config import ModelConfig, RopeConfig, RopeType


def base_inv_freq(theta: float | torch.Tensor, dim: int) -> torch.Tensor:
    """Unscaled inverse frequencies; ``theta`` may be a (T,) tensor, giving (T, dim/2)."""
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim  # (dim/2,)
    if isinstance(theta, torch.Tensor):
        return 1.0 / (theta[:, None] ** exponents[None, :])
    return 1.0 / (theta**exponents)


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_inv_freq(rope: RopeConfig, dim: int) -> tuple[torch.Tensor, float]:
    """YaRN: interpolate low frequencies, keep high ones, ramp between; returns (inv_freq, attention scale)."""
    factor = rope.factor
    if rope.attention_factor is not None:
        attention = float(rope.attention_factor)
    elif rope.mscale and rope.mscale_all_dim:
        attention = _yarn_mscale(factor, rope.mscale) / _yarn_mscale(factor, rope.mscale_all_dim)
    else:
        attention = _yarn_mscale(factor)
    original = rope.original_max_position_embeddings
    assert original is not None  # the parser fills it for yarn

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(rope.theta))

    low, high = correction_dim(rope.beta_fast), correction_dim(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    extrapolation = base_inv_freq(rope.theta, dim)
    interpolation = extrapolation / factor
    keep = 1 - ramp  # 1 where the frequency is high enough to keep as is
    return interpolation * (1 - keep) + extrapolation * keep, attention


def llama3_inv_freq(rope: RopeConfig, dim: int) -> torch.Tensor:
    """Llama 3.1: divide low frequencies by ``factor``, keep high ones, blend smoothly between."""
    inv_freq = base_inv_freq(rope.theta, dim)
    original = rope.original_max_position_embeddings
    assert original is not None
    low_wavelen = original / rope.low_freq_factor
    high_wavelen = original / rope.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq)
    smooth = (original / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
    smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled
    is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(is_medium, smoothed, scaled)


class RotaryEmbedding(torch.nn.Module):
    """Computes cos/sin per token and rotates q and k in place of Hugging Face's rotary module."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.rope = config.rope
        self.dim = int(config.head_dim * config.rope.partial_rotary_factor)
        self.max_position_embeddings = config.max_position_embeddings
        self.attention_scaling = 1.0
        match self.rope.type:
            case RopeType.DEFAULT | RopeType.DYNAMIC:
                inv_freq = base_inv_freq(self.rope.theta, self.dim)
            case RopeType.LINEAR:
                inv_freq = base_inv_freq(self.rope.theta, self.dim) / self.rope.factor
            case RopeType.YARN:
                inv_freq, self.attention_scaling = yarn_inv_freq(self.rope, self.dim)
            case RopeType.LLAMA3:
                inv_freq = llama3_inv_freq(self.rope, self.dim)
            case _:
                raise ValueError(f"rope_type {self.rope.type.value!r} is not implemented")
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (dim/2,) fp32

    def dynamic_inv_freq(self, seq_lens: torch.Tensor) -> torch.Tensor:
        """Dynamic NTK: the base grows with the sequence length once it passes the trained length. (T, dim/2)."""
        factor = self.rope.factor
        max_pos = self.max_position_embeddings
        lens = torch.clamp(seq_lens.double(), min=max_pos)
        theta = self.rope.theta * ((factor * lens / max_pos) - (factor - 1)) ** (self.dim / (self.dim - 2))
        return base_inv_freq(theta.float(), self.dim)

    def cos_sin(
        self, positions: torch.Tensor, seq_lens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Cos/sin tables for (T,) positions, each (T, dim) in fp32."""
        if self.rope.type == RopeType.DYNAMIC:
            assert seq_lens is not None, "dynamic NTK needs each token's sequence length"
            freqs = positions.float()[:, None] * self.dynamic_inv_freq(seq_lens)
        else:
            freqs = positions.float()[:, None] * self.inv_freq[None, :]  # (T, dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dim, the pairing HF checkpoints use."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (T, heads, head_dim) by (T, rot_dim) tables in x's dtype; dims past rot_dim pass through."""
    rot = cos.shape[-1]
    cos, sin = cos[:, None, :], sin[:, None, :]
    if rot == x.shape[-1]:
        # x * cos + rotate_half(x) * sin, in two passes instead of five
        half = rot // 2
        out = x * cos
        out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
        out[..., half:].addcmul_(x[..., :half], sin[..., half:])
        return out
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + rotate_half(x_rot) * sin, x_pass), dim=-1)
