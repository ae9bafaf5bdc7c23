"""A run directory on disk and the files in it.

``run.json`` (provenance), ``samples.jsonl`` (one line per finished sample), and the ``summary.json`` / ``report.html`` derived from them.

Records are appended and flushed one at a time, so a run killed at any moment leaves a valid partial run; a torn
last line (the process died mid-write) is cut off before the next append. This module knows files and JSON, not
models or statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


class RunDirError(ValueError):
    """The path is not a usable run directory."""


def record_key(record: dict[str, Any]) -> tuple[str, int, float | None, int]:
    """The (task, length, depth, seed) key of a samples.jsonl record."""
    depth = record.get("depth")
    return (
        record["task"],
        int(record["length"]),
        None if depth is None else round(float(depth), 6),
        int(record["seed"]),
    )


class RunDir:
    """Read and write one run's files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """Open a finished or partial run for reading; a directory that is not one raises RunDirError."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(
                f"{run.path}: no such directory; pass the --out directory of a `ctxops eval` run"
            )
        if not (run.path / RUN_FILE).is_file():
            raise RunDirError(
                f"{run.path}: not a ctxops eval run (no {RUN_FILE}); pass the --out directory of a `ctxops eval` run"
            )
        return run

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES_FILE

    def file(self, name: str) -> Path:
        return self.path / name

    # ---- run.json -------------------------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        """The provenance record (``{}`` when the run has not started)."""
        file = self.path / RUN_FILE
        if not file.is_file():
            return {}
        try:
            return json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{file}: not valid JSON ({exc}); was it edited by hand?") from exc

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write ``name`` atomically (a reader never sees half a file)."""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / name
        tmp = file.with_suffix(file.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, file)
        return file

    # ---- samples.jsonl --------------------------------------------------------------------------------------
    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record in file order (a torn last line is skipped; a bad line elsewhere raises)."""
        if not self.samples_path.is_file():
            return
        lines = self.samples_path.read_text(encoding="utf-8").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines):  # the last line, unterminated: a write that was cut short
                    return
                raise RunDirError(f"{self.samples_path}:{number}: not a JSON record ({exc})") from exc

    def finished_keys(self) -> set[tuple[str, int, float | None, int]]:
        """Keys of the samples already recorded."""
        return {record_key(r) for r in self.records()}

    def repair(self) -> None:
        """Cut a torn last line so the next append starts on a fresh line."""
        path = self.samples_path
        if not path.is_file() or path.stat().st_size == 0:
            return
        data = path.read_bytes()
        if not data.endswith(b"\n"):
            with path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def append(self, record: dict[str, Any]) -> None:
        """Append one record and push it to disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.samples_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
