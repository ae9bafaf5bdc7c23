"""Writing a compressed model as an ordinary Hugging Face directory the engine and transformers both load.

config.json (the source's, with the changed sizes), model.safetensors, and the source's tokenizer files copied
unchanged (a pruned or distilled model reads text exactly as its source does). This module knows files; it does
not know how the weights were made.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
)


def read_config(path: Path) -> dict:
    """A model directory's config.json as Hugging Face wrote it (every field kept)."""
    return json.loads((path / "config.json").read_text())


def write_model_dir(out: Path, config: dict, state: dict[str, torch.Tensor], source: Path) -> None:
    """Write ``config`` and ``state`` under ``out``, with ``source``'s tokenizer files beside them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)


def count_parameters(state: dict[str, torch.Tensor]) -> int:
    """Elements over all tensors of a state dict."""
    return sum(t.numel() for t in state.values())
