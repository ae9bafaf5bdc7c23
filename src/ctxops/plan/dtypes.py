"""Storage formats the planner prices: weight formats (with their quantization metadata) and KV-cache dtypes.

This module knows bits and the bytes of scales and zero points. It does not know models or devices.
"""

from __future__ import annotations

from enum import StrEnum


class WeightDtype(StrEnum):
    """How linear-layer weights are stored. Embeddings, lm_head, norms and routers always stay 16-bit."""

    BF16 = "bf16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bits_per_weight(self) -> float:
        """Bits per quantized weight, group metadata included.

        int8 and int4 are GPTQ/AWQ-style groups of 128 with an fp16 scale, plus a packed zero point for int4
        (4 + 20/128 = 4.156 bits); fp8 uses a per-tensor or 128x128 block scale, small enough to ignore.
        """
        return _BITS_PER_WEIGHT[self]

    @classmethod
    def from_quantization_config(cls, quantization: dict | None) -> WeightDtype | None:
        """The format a checkpoint's ``quantization_config`` declares, or None if it declares none we price."""
        if not quantization:
            return None
        method = str(quantization.get("quant_method", "")).lower()
        bits = quantization.get("bits") or quantization.get("w_bit") or quantization.get("weight_bits")
        if method in ("fp8", "fbgemm_fp8") or "fp8" in str(quantization.get("fmt", "")):
            return cls.FP8
        if bits == 4 or method in ("awq", "bitsandbytes_4bit") or quantization.get("load_in_4bit"):
            return cls.INT4
        if bits == 8 or quantization.get("load_in_8bit"):
            return cls.INT8
        return None


_GROUP = 128  # weights per quantization group
_BITS_PER_WEIGHT = {
    WeightDtype.BF16: 16.0,
    WeightDtype.FP8: 8.0,
    WeightDtype.INT8: 8.0 + 16 / _GROUP,  # fp16 scale per group (symmetric)
    WeightDtype.INT4: 4.0 + (16 + 4) / _GROUP,  # fp16 scale + 4-bit zero per group
}


class KvDtype(StrEnum):
    """Element type of the KV cache, named as the engine names its cache formats."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bits(self) -> int:
        """Bits per cached element."""
        return {"bf16": 16, "fp16": 16, "fp32": 32, "fp8": 8, "int8": 8, "int4": 4}[self.value]

    @property
    def scale_bytes(self) -> int:
        """Bytes of scale per token of an MLA latent: fp32 for int8/int4.

        MHA/GQA int8/int4 use the engine's format instead (:class:`ctxops.models.kv_format.KVQuantFormat`).
        fp8 uses one per-tensor scale (0 bytes per token).
        """
        return 4 if self in (KvDtype.INT8, KvDtype.INT4) else 0

    @classmethod
    def from_torch_name(cls, name: str) -> KvDtype:
        """``"bfloat16"`` / ``"float32"`` / ``"float16"`` (as the engine's CacheInfo reports) -> KvDtype."""
        aliases = {
            "bfloat16": cls.BF16,
            "float16": cls.FP16,
            "half": cls.FP16,
            "float32": cls.FP32,
            "float": cls.FP32,
        }
        if name in aliases:
            return aliases[name]
        return cls(name)


def choices(enum: type[StrEnum]) -> list[str]:
    """The values of an enum, for click choices and error messages."""
    return [member.value for member in enum]
