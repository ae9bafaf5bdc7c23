"""Write GGUF files from Hugging Face model directories with the ``gguf`` package's writer, for tests.

``convert_to_gguf`` does what llama.cpp's converter does for the Llama family, for the tiny random models the tests
build: tensors under GGUF names (for ``llama``, query and key rows reordered from Hugging Face's rotate-half layout
to llama.cpp's interleaved pairs), F32/F16 or quantized with ``gguf.quants``, RoPE scaling as metadata (Llama 3's
as a ``rope_freqs`` tensor), the byte-level BPE vocabulary and merges as a ``gpt2`` tokenizer, and the chat
template. ``write_minimal_gguf`` writes a file of any architecture with a single tensor, to test refusals.

``real_model_dir`` is the way to a real instruction-tuned model in tests (scans, rollouts, robustness): the catalogue
model imported into the per-user cache, or a skip when it cannot be obtained. Use it from ``slow``-marked tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np

Q = gguf.GGMLQuantizationType
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}


def interleave_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Per head, rows (i, i + d/2) rotate together in HF's layout and rows (2i, 2i + 1) in llama.cpp's."""
    d = weight.shape[0] // heads
    return weight.reshape(heads, 2, d // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama3_rope_freqs(rope: dict, theta: float, head_dim: int) -> np.ndarray:
    """The per-dimension divisors llama.cpp stores for Llama 3 RoPE scaling (written out long-hand here)."""
    factor, low, high = rope["factor"], rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    original = rope["original_max_position_embeddings"]
    out = []
    for i in range(0, head_dim, 2):
        wavelength = 2 * math.pi * theta ** (i / head_dim)
        if wavelength < original / high:
            out.append(1.0)
        elif wavelength > original / low:
            out.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def _file_type(qtype: gguf.GGMLQuantizationType) -> gguf.LlamaFileType:
    return gguf.LlamaFileType.ALL_F32 if qtype == Q.F32 else gguf.LlamaFileType[f"MOSTLY_{qtype.name}"]


def _encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> tuple[np.ndarray, Q | None]:
    if qtype == Q.F32:
        return data, None
    if qtype == Q.F16:
        return data.astype(np.float16), None
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except NotImplementedError:  # a type the gguf package cannot write (Q8_1): zero bytes of the right size
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        return np.zeros((*data.shape[:-1], data.shape[-1] // block * size), dtype=np.uint8), qtype


def convert_to_gguf(
    model_dir: Path,
    out: Path,
    qtype: gguf.GGMLQuantizationType = Q.F32,
    tokenizer_pre: str = "gpt-2",
    types: dict[str, gguf.GGMLQuantizationType] | None = None,
) -> Path:
    """A GGUF of an HF Llama-family directory (config.json, model.safetensors, tokenizer.json).

    ``qtype`` is the type of the 2-D weights (norms stay F32, as llama.cpp keeps them); ``types`` overrides it
    per GGUF tensor name.
    """
    from safetensors.torch import load_file  # numpy has no bfloat16: read with torch, widen to fp32

    config = json.loads((model_dir / "config.json").read_text())
    arch = GGUF_ARCH[config["model_type"]]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    layers = config["num_hidden_layers"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name("ctxops tiny random llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    rope = (
        config.get("rope_parameters") or config.get("rope_scaling") or {}
    )  # transformers 5 keeps theta in it
    theta = config.get("rope_theta") or rope.get("rope_theta") or 10000.0
    writer.add_rope_freq_base(theta)
    rope_type = rope.get("rope_type", "default")
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif rope_type == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(rope["factor"])
        writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    elif rope_type == "llama3":
        writer.add_tensor("rope_freqs.weight", llama3_rope_freqs(rope, theta, head_dim))
    elif rope_type != "default":
        raise NotImplementedError(f"GGUF has no {rope_type} RoPE scaling")
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(_file_type(qtype))

    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    ids = dict(tokenizer["model"]["vocab"])
    special = {added["content"] for added in tokenizer["added_tokens"] if added["special"]}
    ids.update({added["content"]: added["id"] for added in tokenizer["added_tokens"]})
    tokens = sorted(ids, key=ids.__getitem__)
    assert [ids[t] for t in tokens] == list(range(len(tokens))), "token ids must be dense"
    token_types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    # a random benchmark model may have more embedding rows than its little tokenizer has tokens: llama.cpp
    # wants one token per row, so the rest are listed as unused padding
    padding = config["vocab_size"] - len(tokens)
    tokens += [f"<pad_{i}>" for i in range(padding)]
    token_types += [gguf.TokenType.UNUSED] * padding
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")  # byte-level BPE
    writer.add_tokenizer_pre(tokenizer_pre)  # "gpt-2": GPT-2's regex, as ByteLevel(use_regex=True) splits
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    # merges, bos/eos ids, add_bos_token (read from the post-processor that prepends <|begin_of_text|>), chat template
    gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer)

    gguf_arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch)
    names = gguf.get_tensor_name_map(gguf_arch, layers)
    for name, tensor in load_file(str(model_dir / "model.safetensors")).items():
        data = tensor.float().numpy()
        if arch == "llama" and ".q_proj." in name:
            data = interleave_rope_rows(data, heads)
        elif arch == "llama" and ".k_proj." in name:
            data = interleave_rope_rows(data, kv_heads)
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        kind = (types or {}).get(gguf_name, Q.F32 if data.ndim == 1 else qtype)
        encoded, raw_dtype = _encode(data, kind)
        writer.add_tensor(gguf_name, encoded, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def real_model_dir(name: str = "smollm2-135m-instruct", dtype: str = "bfloat16") -> Path:
    """The catalogue model ``name`` imported into the per-user cache (downloaded once); skips the test without it."""
    import pytest

    from ctxops.models.model_catalog import CatalogError, get_model

    try:
        return get_model(name, dtype=dtype).directory
    except CatalogError as exc:
        pytest.skip(f"cannot obtain {name}: {exc}")


def write_minimal_gguf(out: Path, arch: str) -> Path:
    """A GGUF with the given architecture name, a little metadata and one tensor (``token_embd.weight``)."""
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_context_length(64)
    writer.add_embedding_length(32)
    writer.add_block_count(0)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b"])
    writer.add_token_merges(["a b"])
    writer.add_tensor("token_embd.weight", np.zeros((2, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
