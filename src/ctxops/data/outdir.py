"""The output directory of a ``ctxops data`` command: whole files written atomically, and a resumable checkpoint.

Every file is written to a temporary name, flushed to disk and renamed over the old one, so a reader (or a run
killed at any moment) never sees half a file. A checkpoint (``state.json`` plus optional numpy arrays) carries a
*fingerprint* of the inputs and settings; resuming into a directory whose checkpoint has another fingerprint is
refused rather than mixing two runs. This module knows files, not what is in them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "state.json"


class OutDirError(ValueError):
    """The output directory holds another run's checkpoint, or cannot be written."""


def fingerprint(*parts: Any) -> str:
    """sha256 (first 16 hex digits) of the JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_signature(path: Path) -> list[Any]:
    """What identifies a corpus file cheaply: path, size, modification time."""
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


class OutDir:
    """One command's output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise OutDirError(f"{self.path}: exists and is not a directory; pass a directory to --out")

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``name`` atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        return target

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, data: Any) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")

    def write_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> Path:
        lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        return self.write_text(name, lines)

    def save_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the checkpoint: arrays first, then ``state.json`` (the commit point)."""
        for name, array in (arrays or {}).items():
            buffer = _npy_bytes(array)
            self.write_bytes(f"state.{name}.npy", buffer)
        self.write_json(STATE_FILE, state)

    def load_state(
        self, expected: str, array_names: Iterable[str] = ()
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The checkpoint of a run with fingerprint ``expected``; None when there is none (a fresh start)."""
        file = self.path / STATE_FILE
        if not file.is_file():
            return None
        try:
            state = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise OutDirError(f"{file}: not valid JSON ({exc}); delete the directory to start over") from exc
        if state.get("fingerprint") != expected:
            raise OutDirError(
                f"{self.path} holds a run with other inputs or settings (fingerprint {state.get('fingerprint')}, "
                f"now {expected}); use a new --out directory, or rerun with the original inputs to resume"
            )
        arrays = {name: np.load(self.path / f"state.{name}.npy") for name in array_names}
        return state, arrays


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
