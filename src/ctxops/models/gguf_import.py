"""Turn a GGUF file (llama.cpp's format) into a Hugging Face model directory.

The directory loads in ctxops' engine, in transformers and in the planner.

The file is read with the ``gguf`` package's ``GGUFReader`` and each tensor dequantized with ``gguf.quants``
(F32, F16, BF16, the legacy Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, the K-quants and the IQ types; whatever that package can
dequantize). Names go back from llama.cpp's (``blk.3.attn_q.weight``) to Hugging Face's
(``model.layers.3.self_attn.q_proj.weight``) through the package's own tensor-name tables, and for the ``llama``
architecture the query and key rows are put back in Hugging Face's rotate-half order (llama.cpp's converter
interleaves each head's two halves; Qwen GGUFs keep Hugging Face's order). A GGUF without ``output.weight`` reuses
the token embeddings as the output layer: the directory then has no ``lm_head`` and sets ``tie_word_embeddings``.
Llama 3's RoPE scaling, which llama.cpp stores as a per-dimension ``rope_freqs`` tensor, is recognised and written
back as a ``llama3`` ``rope_scaling``.

Written files: ``config.json``, ``model.safetensors`` (sharded above 2 GiB, with its index),
``tokenizer.json`` and ``tokenizer_config.json`` (see :mod:`ctxops.models.gguf_tokenizer`),
``generation_config.json`` and ``ctxops_import.json`` (where the directory came from). They are written to a staging
directory that is renamed into place at the end, so an interrupted import never leaves a half-written model.

It knows GGUF metadata and tensors of the architectures the engine runs (``llama`` -- Llama 2/3, Mistral --,
``qwen2``, ``qwen3``); anything else, and tensor types the ``gguf`` package cannot dequantize, is refused with an
error naming it. It does not download anything and does not know the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from safetensors.torch import save_file

from ctxops import __version__
from ctxops.models.config import ModelConfig
from ctxops.models.gguf_config import ROPE_FREQS, build_config, generation_config
from ctxops.models.gguf_file import SUPPORTED_ARCHITECTURES, GGUFFile, GGUFImportError, gguf_version
from ctxops.models.gguf_tokenizer import build_tokenizer, tokenizer_config, vocab_from_fields
from ctxops.models.llama import LlamaForCausalLM

IMPORT_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float32": torch.float32}
MARKER_FILE = "ctxops_import.json"
SHARD_BYTES = 2 * 1024**3
ProgressCallback = Callable[[int, int], None]  # (bytes written so far, total bytes)

__all__ = ["IMPORT_DTYPES", "MARKER_FILE", "GGUFImportError", "ImportSummary", "import_gguf"]


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import wrote."""

    directory: Path
    architecture: str
    parameters: int
    tensor_types: dict[str, int]
    dtype: str
    tied_embeddings: bool
    seconds: float
    files: tuple[str, ...] = field(default=())


def import_gguf(
    source: str | Path,
    out: str | Path,
    dtype: str = "bfloat16",
    *,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    provenance: dict[str, Any] | None = None,
) -> ImportSummary:
    """Write ``out`` as a Hugging Face directory holding the model in the GGUF file ``source``.

    ``dtype`` is the dtype of the written weights (``bfloat16`` or ``float32``; quantized tensors are dequantized).
    ``out`` must not exist or be empty unless ``overwrite``. ``provenance`` is added to ``ctxops_import.json``.
    """
    if dtype not in IMPORT_DTYPES:
        raise GGUFImportError(f"dtype must be one of {', '.join(IMPORT_DTYPES)}; got {dtype!r}")
    started = time.monotonic()
    out = Path(out).expanduser().resolve()
    _check_destination(out, overwrite)
    file = GGUFFile(source)
    config = build_config(file, dtype)
    model_config = ModelConfig.from_dict(config, str(file.path))
    names = _tensor_names(file, model_config)
    types = Counter(file.tensors[g].tensor_type.name for g in names.values())
    _check_tensor_types(file, names)
    vocab = vocab_from_fields(file.fields)
    if len(vocab.tokens) > model_config.vocab_size:
        raise GGUFImportError(
            f"{file.path}: the vocabulary has {len(vocab.tokens)} tokens but token_embd.weight only "
            f"{model_config.vocab_size} rows"
        )
    tokenizer = build_tokenizer(vocab)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write_weights(file, names, model_config, IMPORT_DTYPES[dtype], staging, on_progress)
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(str(staging / "tokenizer.json"))
        tok_config = tokenizer_config(vocab, model_config.max_position_embeddings)
        (staging / "tokenizer_config.json").write_text(
            json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n"
        )
        generation = generation_config(file, vocab.bos_id, vocab.eos_ids, vocab.pad_id)
        (staging / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        marker = {
            "importer": "ctxops models import",
            "ctxops_version": __version__,
            "gguf_version": gguf_version(),
            "source": file.path.name,
            "source_bytes": file.path.stat().st_size,
            "name": file.fields.get("general.name"),
            "architecture": file.architecture,
            "tensor_types": dict(types),
            "dtype": dtype,
            **(provenance or {}),
        }
        (staging / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    parameters = sum(int(np.prod([int(d) for d in file.tensors[g].shape])) for g in names.values())
    return ImportSummary(
        directory=out,
        architecture=file.architecture,
        parameters=parameters,
        tensor_types=dict(types),
        dtype=dtype,
        tied_embeddings=model_config.tie_word_embeddings,
        seconds=time.monotonic() - started,
        files=tuple(sorted(p.name for p in out.iterdir())),
    )


def _check_destination(out: Path, overwrite: bool) -> None:
    if out.is_file():
        raise GGUFImportError(f"{out}: is a file; --out must name a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GGUFImportError(
            f"{out}: already exists and is not empty; choose another directory or pass --force to replace it"
        )


# ---- tensors --------------------------------------------------------------------------------------------------


def _tensor_names(file: GGUFFile, config: ModelConfig) -> dict[str, str]:
    """{Hugging Face name: GGUF name} for every parameter the model needs; refuses missing and unknown tensors."""
    with torch.device("meta"):
        expected = [name for name, _ in LlamaForCausalLM(config).named_parameters()]
    arch = gguf.MODEL_ARCH.LLAMA if file.architecture in ("llama", "mistral") else None
    if arch is None:
        arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == file.architecture)
    table = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    names: dict[str, str] = {}
    for hf_name in expected:
        gguf_name = table.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None or gguf_name not in file.tensors:
            raise GGUFImportError(
                f"{file.path}: tensor {gguf_name or hf_name!r} (Hugging Face {hf_name}) is missing; the "
                "metadata promises it"
            )
        names[hf_name] = gguf_name
    unknown = sorted(set(file.tensors) - set(names.values()) - {ROPE_FREQS})
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise GGUFImportError(
            f"{file.path}: {len(unknown)} tensors have no place in a {file.architecture} model: {shown}"
        )
    return names


def supported_tensor_types() -> list[str]:
    """The tensor types this installation of ``gguf`` can dequantize."""
    traits = getattr(gguf.quants, "_type_traits", {})
    kinds = [gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, *traits]
    return [k.name for k in kinds]


def _check_tensor_types(file: GGUFFile, names: dict[str, str]) -> None:
    """Dequantize one row of each tensor type first, so an unsupported type fails before anything is written."""
    seen: set[gguf.GGMLQuantizationType] = set()
    for gguf_name in names.values():
        tensor = file.tensors[gguf_name]
        if tensor.tensor_type in seen:
            continue
        seen.add(tensor.tensor_type)
        sample = tensor.data[:1] if tensor.data.ndim > 1 else tensor.data
        try:
            gguf.quants.dequantize(sample, tensor.tensor_type)
        except NotImplementedError:
            raise GGUFImportError(
                f"{file.path}: tensor {gguf_name} is of type {tensor.tensor_type.name}, which gguf "
                f"{gguf_version()} cannot dequantize; supported: {', '.join(supported_tensor_types())}. "
                "Re-quantize the model with llama.cpp (`llama-quantize --allow-requantize IN OUT Q8_0`) or "
                "convert it from the original weights"
            ) from None


def _unpermute_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp pairs rows (2i, 2i+1) of each head for RoPE; Hugging Face pairs (i, i + d/2): undo the former."""
    d = weight.shape[0] // heads
    rest = weight.shape[1:]
    return weight.reshape(heads, d // 2, 2, *rest).swapaxes(1, 2).reshape(weight.shape)


def _read_tensor(
    file: GGUFFile, hf_name: str, gguf_name: str, config: ModelConfig, interleaved: bool
) -> np.ndarray:
    tensor = file.tensors[gguf_name]
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    array = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
    array = array.reshape(shape)
    if interleaved and ".self_attn.q_proj." in hf_name:
        array = _unpermute_rope_rows(array, config.num_attention_heads)
    elif interleaved and ".self_attn.k_proj." in hf_name:
        array = _unpermute_rope_rows(array, config.num_key_value_heads)
    return np.array(array, dtype=np.float32, copy=True)  # own the memory (the reader's arrays map the file)


def _write_weights(
    file: GGUFFile,
    names: dict[str, str],
    config: ModelConfig,
    dtype: torch.dtype,
    directory: Path,
    on_progress: ProgressCallback | None,
) -> list[str]:
    """Dequantize tensor by tensor into safetensors shards of at most ``SHARD_BYTES``; returns the file names."""
    with torch.device("meta"):
        shapes = {name: tuple(p.shape) for name, p in LlamaForCausalLM(config).named_parameters()}
    itemsize = torch.empty((), dtype=dtype).element_size()
    sizes = {name: int(np.prod(shapes[name])) * itemsize for name in names}
    shards: list[list[str]] = [[]]
    shard_bytes = 0
    for name in names:
        if shards[-1] and shard_bytes + sizes[name] > SHARD_BYTES:
            shards.append([])
            shard_bytes = 0
        shards[-1].append(name)
        shard_bytes += sizes[name]
    total = sum(sizes.values())
    interleaved = SUPPORTED_ARCHITECTURES[file.architecture][2]
    files = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    done = 0
    weight_map: dict[str, str] = {}
    for shard, file_name in zip(shards, files, strict=True):
        tensors: dict[str, torch.Tensor] = {}
        for hf_name in shard:
            array = _read_tensor(file, hf_name, names[hf_name], config, interleaved)
            if array.shape != shapes[hf_name]:
                raise GGUFImportError(
                    f"{file.path}: tensor {names[hf_name]} has shape {array.shape}, the metadata implies "
                    f"{shapes[hf_name]} for {hf_name}"
                )
            tensors[hf_name] = torch.from_numpy(array).to(dtype).contiguous()
            weight_map[hf_name] = file_name
            done += sizes[hf_name]
            if on_progress is not None:
                on_progress(done, total)
        save_file(tensors, str(directory / file_name), metadata={"format": "pt"})
        del tensors
    if len(files) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files
