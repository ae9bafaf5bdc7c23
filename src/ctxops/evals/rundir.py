"""A run directory on disk and the files in it.

``run.json`` (provenance), ``samples.jsonl`` (one line per finished sample), ``latency.jsonl`` (the samples sent
again one at a time by ``--latency-samples``), and the ``summary.json`` / ``report.html`` derived from them.

Records are appended and flushed one at a time, so a run killed at any moment leaves a valid partial run. Readers
skip a line that holds no record (a torn last line: the process died mid-write; or a corrupt line anywhere) and
report it as a :class:`BadLine`, never silently. Before a resumed run appends, :meth:`RunDir.repair` moves such
lines into ``samples.rejected.txt`` (nothing is thrown away) and leaves ``samples.jsonl`` valid JSONL, so the
samples they held are run again, once. This module knows files and JSON, not models or statistics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
LATENCY_FILE = "latency.jsonl"
REJECTED_FILE = "samples.rejected.txt"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
_SHOWN_LINES = 10  # bad line numbers a message lists before "..."
TORN = "cut short (the run stopped mid-write)"  # the reason given for an unterminated, unreadable last line


class RunDirError(ValueError):
    """The path is not a usable run directory."""


def record_key(record: dict[str, Any]) -> tuple:
    """The (task, length, depth, seed) key of a samples.jsonl record, then its variant when it has one."""
    depth = record.get("depth")
    key = (
        record["task"],
        int(record["length"]),
        None if depth is None else round(float(depth), 6),
        int(record["seed"]),
    )
    return (*key, record["variant"]) if record.get("variant") else key


@dataclass(frozen=True, slots=True)
class BadLine:
    """A ``samples.jsonl`` line that holds no record."""

    number: int  # 1-based line number
    reason: str
    text: bytes  # the line as it was on disk, without its newline

    @property
    def torn(self) -> bool:
        """The unterminated last line: a write cut short when the run was killed."""
        return self.reason == TORN


@dataclass(frozen=True, slots=True)
class Samples:
    """What ``samples.jsonl`` holds: its records in file order, and the lines that hold none."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)


def describe_bad_lines(path: Path, bad_lines: list[BadLine], consequence: str) -> str | None:
    """One message naming the lines of ``path`` without a record and why, then ``consequence``; None if none."""
    if not bad_lines:
        return None
    shown = "; ".join(f"line {b.number}: {b.reason}" for b in bad_lines[:_SHOWN_LINES])
    if len(bad_lines) > _SHOWN_LINES:
        shown += f"; and {len(bad_lines) - _SHOWN_LINES} more"
    count = f"{len(bad_lines)} line{'s' if len(bad_lines) > 1 else ''}"
    return f"{path}: {count} without a sample record ({shown}); {consequence}"


def parse_samples(data: bytes) -> Samples:
    """Split ``samples.jsonl`` bytes into records and bad lines (a torn last line is one of them)."""
    lines = data.split(b"\n")
    samples = Samples()
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        last = number == len(lines)  # no newline after it
        try:
            record = json.loads(raw.decode("utf-8"))
            record_key(record)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = TORN if last else f"not JSON ({exc})"
            samples.bad_lines.append(BadLine(number, reason, raw))
        except (KeyError, TypeError, ValueError, AttributeError):
            reason = "JSON but not a sample record (task, length, depth and seed are required)"
            samples.bad_lines.append(BadLine(number, reason, raw))
        else:
            samples.records.append(record)
    return samples


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
    def read_samples(self, name: str = SAMPLES_FILE) -> Samples:
        """Every record of ``samples.jsonl`` (or ``name``) in file order, and the lines that hold none."""
        path = self.path / name
        if not path.is_file():
            return Samples()
        return parse_samples(path.read_bytes())

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record in file order; lines without one are skipped (see :meth:`read_samples`)."""
        yield from self.read_samples().records

    def finished_keys(self, name: str = SAMPLES_FILE) -> set[tuple]:
        """Keys of the samples already recorded in ``samples.jsonl`` (or ``name``)."""
        return {record_key(r) for r in self.read_samples(name).records}

    def repair(self, name: str = SAMPLES_FILE) -> list[BadLine]:
        """Make ``samples.jsonl`` (or ``name``) valid JSONL before appending; returns the lines it took out.

        Lines without a record (a torn tail, a corrupt line) are appended to ``samples.rejected.txt`` and the
        file is rewritten without them, atomically; a complete last record that only lacks its newline gets one.
        """
        path = self.path / name
        if not path.is_file():
            return []
        data = path.read_bytes()
        samples = parse_samples(data)
        if not samples.bad_lines:
            if data and not data.endswith(b"\n"):
                with path.open("ab") as handle:  # the record is whole; only its newline was lost
                    handle.write(b"\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            return []
        with (self.path / REJECTED_FILE).open("ab") as handle:
            handle.write(b"".join(b.text + b"\n" for b in samples.bad_lines))
            handle.flush()
            os.fsync(handle.fileno())
        bad = {b.number for b in samples.bad_lines}
        kept = [line for n, line in enumerate(data.split(b"\n"), 1) if n not in bad and line.strip()]
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(b"".join(line + b"\n" for line in kept))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return samples.bad_lines

    def append(self, record: dict[str, Any], name: str = SAMPLES_FILE) -> None:
        """Append one record to ``samples.jsonl`` (or ``name``) and push it to disk."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / name).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
