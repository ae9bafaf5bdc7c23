"""Weight-only int8 quantization of linear layers, per output channel.

Each output row of a weight gets one symmetric scale, ``s = absmax(row) / 127``, and its int8 codes
``round(w / s)``; activations stay in the model dtype. This halves weight bytes against bf16 (quarters against
fp32) at a per-element error of at most half a step. The matmul: for a few bf16 rows (decode), the native
kernel of :mod:`ctxops.models.native` when it is built, else in bf16/fp16 ``torch._weight_int8pack_mm``, a CPU
kernel that reads the int8 weight directly (measured 3x faster than the bf16 matmul at one row on this box, but 15x
slower at 1024 rows); without bf16 hardware many bf16 rows run as one fp32 GEMM; otherwise the weight is dequantized to the model dtype
for one dense matmul (fp32 has no fast int8 kernel on CPU torch 2.13: there int8 weights save memory, not time).

Quantized here: every linear of the decoder layers (fused q/k/v, o, fused gate/up, down). Not quantized: the
embeddings and the LM head (often tied to the embeddings; logits are the most sensitive place), norms and RoPE.

This module knows modules and tensors; it does not know checkpoints or the engine.
"""

from __future__ import annotations

import torch
from torch import nn

from ctxops.models.native import cpu_has_bf16_matmul, for_decode_rows

_HAS_INT8_MM = hasattr(torch, "_weight_int8pack_mm")
_INT8_MM_MAX_ROWS = 8  # beyond this many rows the int8 kernel loses to dequantize + dense matmul


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float weight -> int8 codes (out, in) and fp32 scales (out,), one per output channel."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).div_(127).clamp_min_(1e-12)
    codes = (w / scale[:, None]).round_().clamp_(-127, 127).to(torch.int8)
    return codes, scale


class Int8Linear(nn.Module):
    """A linear layer with int8 weights and per-output-channel scales; input and output in the model dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        codes, scale = quantize_weight(linear.weight)
        dtype = linear.weight.dtype
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", codes)  # (out, in) int8
        self.register_buffer("scale", scale.to(dtype))  # (out,) in the model dtype, as the kernel wants
        self.bias = (
            None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        native = for_decode_rows(x2)
        if native is not None and self.out_features % 4 == 0 and self.scale.dtype == torch.bfloat16:
            # a decode step: one pass over the int8 codes
            return native.linear_int8(x2, self.weight, self.scale, self.bias).view(
                *shape[:-1], self.out_features
            )
        if _HAS_INT8_MM and x.dtype in (torch.bfloat16, torch.float16) and x2.shape[0] <= _INT8_MM_MAX_ROWS:
            out = torch._weight_int8pack_mm(x2, self.weight, self.scale)
        elif x.dtype == torch.bfloat16 and not cpu_has_bf16_matmul():  # no bf16 hardware: an fp32 GEMM
            out = (nn.functional.linear(x2.float(), self.weight.float()) * self.scale.float()).to(x.dtype)
        else:  # dequantize for one dense matmul
            out = nn.functional.linear(x2, self.weight.to(x.dtype)) * self.scale
        if self.bias is not None:
            out = out + self.bias
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per output channel"


def quantize_linears(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` by an :class:`Int8Linear`; return how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            count += 1
        else:
            count += quantize_linears(child)
    return count


def weight_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer (tied tensors counted once)."""
    seen: dict[int, int] = {}
    for t in list(module.parameters()) + list(module.buffers()):
        seen[t.data_ptr()] = t.numel() * t.element_size()
    return sum(seen.values())
