"""RULER's own prepared data as a sample source, and RULER's prediction files written back from a run.

``ctxops eval --ruler-data [LENGTH=]DIR`` reads the output of RULER's ``prepare.py``: ``DIR/<task>/validation.jsonl``,
one sample a line with ``index``, ``input`` (the model's template already applied), ``outputs`` (the gold answers),
``length`` (input tokens plus the generation budget, as RULER's tokenizer counted them) and ``answer_prefix``. Each
line becomes one :class:`~ctxops.evals.sample.Sample` sent verbatim (``input + answer_prefix``, as RULER's
``call_api.py`` sends it) with RULER's generation budget and metric for its task (``TASK_SETTINGS``, from RULER's
``synthetic.yaml`` and data constants). A sample is keyed (task, LENGTH, depth, line number): RULER's ``index`` is
not unique in every file (its NIAH generator overwrites it with the answer's character offset); the depth is where
the answer sits (RULER's ``token_position_answer`` over the input tokens, in 5% steps; None where a line has none),
so RULER's NIAH data fills the depth × length grid.

LENGTH names the directory's sequence length; without ``LENGTH=`` it is read from the path (RULER's ``run.sh`` writes
``<root>/<length>/data``). After a run, :meth:`RulerData.write_predictions` writes ``OUT/ruler/<task>.jsonl``
(``OUT/ruler/<length>/<task>.jsonl`` with several directories) in RULER's prediction format, so RULER's
``evaluate.py`` scores the same outputs. This module knows files and RULER's schema, not engines or statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxops.evals.sample import Metric, Sample, SampleSpec

DATA_FILE = "validation.jsonl"
PREDICTIONS_DIR = "ruler"


@dataclass(frozen=True)
class RulerTask:
    """What RULER fixes per task: its generator family, generation budget and metric."""

    family: str
    max_tokens: int
    metric: Metric = Metric.ALL


_NIAH = RulerTask("niah", 128)
TASK_SETTINGS: dict[str, RulerTask] = {
    **{
        name: _NIAH
        for name in (
            "niah_single_1",
            "niah_single_2",
            "niah_single_3",
            "niah_multikey_1",
            "niah_multikey_2",
            "niah_multikey_3",
            "niah_multivalue",
            "niah_multiquery",
        )  # fmt: skip
    },
    "vt": RulerTask("variable_tracking", 30),
    "cwe": RulerTask("common_words_extraction", 120),
    "fwe": RulerTask("freq_words_extraction", 50),
    "qa_1": RulerTask("qa", 32, Metric.ANY),
    "qa_2": RulerTask("qa", 32, Metric.ANY),
}
RULER_13 = tuple(TASK_SETTINGS)  # the tasks behind RULER's published averages


class RulerDataError(ValueError):
    """A ``--ruler-data`` directory or one of its lines is not RULER's prepared data."""


@dataclass(frozen=True)
class RulerLine:
    """One line of a ``validation.jsonl``."""

    task: str
    length: int  # the directory's sequence length (LENGTH)
    line: int  # 1-based line number in the file
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def depth(self) -> float | None:
        """Where the answer sits, from RULER's ``token_position_answer`` (NIAH lines carry it), in steps of 5%."""
        position = self.data.get("token_position_answer")
        tokens = self.data["length"] - TASK_SETTINGS[self.task].max_tokens
        if not isinstance(position, int) or isinstance(position, bool) or tokens <= 0:
            return None
        return round(min(max(position / tokens, 0.0), 1.0) * 20) / 20

    @property
    def spec(self) -> SampleSpec:
        return SampleSpec(self.task, self.length, self.depth, self.line)


def parse_ruler_arg(text: str) -> tuple[int, Path]:
    """``"4096=DIR"`` or ``"DIR"`` (LENGTH read from a path component such as ``.../4096/data``)."""
    head, sep, tail = text.partition("=")
    if sep and head.strip().isdigit():
        return int(head), Path(tail)
    path = Path(text)
    for part in (path.name, path.parent.name):
        if part.isdigit():
            return int(part), path
    raise RulerDataError(
        f"--ruler-data {text}: cannot tell this directory's sequence length from its path; write it as "
        f"LENGTH=DIR, e.g. --ruler-data 4096={text}"
    )


def _check(path: Path, number: int, data: Any) -> dict[str, Any]:
    where = f"{path}:{number}"
    if not isinstance(data, dict):
        raise RulerDataError(f"{where}: expected a JSON object with index, input, outputs, length")
    for name, kind in (("index", int), ("input", str), ("outputs", list), ("length", int)):
        if name not in data:
            raise RulerDataError(
                f"{where}: no {name!r}; RULER's prepare.py writes index, input, outputs, length and "
                "answer_prefix on every line (regenerate the file, or fix this line)"
            )
        if not isinstance(data[name], kind) or isinstance(data[name], bool):
            raise RulerDataError(f"{where}: {name!r} must be {kind.__name__}, got {data[name]!r:.80}")
    outputs = data["outputs"]
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise RulerDataError(f"{where}: 'outputs' must be a non-empty list of answer strings")
    if not isinstance(data.get("answer_prefix", ""), str):
        raise RulerDataError(f"{where}: 'answer_prefix' must be a string")
    return data


def read_task_file(path: Path, task: str, length: int) -> list[RulerLine]:
    """Every line of one ``validation.jsonl``; a bad line raises RulerDataError naming the file and line."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RulerDataError(f"{path}:{number}: not JSON ({exc})") from exc
        lines.append(RulerLine(task, length, number, _check(path, number, data)))
    if not lines:
        raise RulerDataError(f"{path}: no samples in the file")
    return lines


class RulerData:
    """The lines of one or more ``--ruler-data`` directories, as a sample source for the runner."""

    def __init__(self, dirs: dict[int, Path], lines: list[RulerLine]) -> None:
        self.dirs = dirs
        self.lines = lines
        self._by_key = {line.spec.key: line for line in lines}

    @classmethod
    def load(cls, args: tuple[str, ...]) -> RulerData:
        """Read every ``[LENGTH=]DIR``; any problem raises RulerDataError saying what and where."""
        dirs: dict[int, Path] = {}
        lines: list[RulerLine] = []
        for arg in args:
            length, path = parse_ruler_arg(arg)
            if length in dirs:
                raise RulerDataError(
                    f"--ruler-data: two directories for length {length}: {dirs[length]}, {path}"
                )
            dirs[length] = path
            lines += _read_dir(path, length)
        return cls(dirs, lines)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks present, in RULER's order."""
        present = {line.task for line in self.lines}
        return tuple(t for t in TASK_SETTINGS if t in present)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(sorted(self.dirs))

    @property
    def max_per_cell(self) -> int:
        counts: dict[tuple[str, int], int] = {}
        for line in self.lines:
            counts[(line.task, line.length)] = counts.get((line.task, line.length), 0) + 1
        return max(counts.values())

    def plan(self) -> list[SampleSpec]:
        """One spec per line, in file order."""
        return [line.spec for line in self.lines]

    def build(self, spec: SampleSpec) -> Sample:
        """The line's sample: sent verbatim, RULER's budget and metric, RULER's token count."""
        line = self._by_key[spec.key]
        settings = TASK_SETTINGS[line.task]
        data = line.data
        return Sample(
            spec=spec, prompt=data["input"], answer_prefix=data.get("answer_prefix", ""),
            answers=tuple(data["outputs"]), max_tokens=settings.max_tokens, metric=settings.metric,
            input_tokens=max(data["length"] - settings.max_tokens, 1),
            metadata={"ruler_index": data["index"]}, verbatim=True,
        )  # fmt: skip

    def write_predictions(self, out: Path, records: list[dict[str, Any]]) -> list[Path]:
        """RULER's prediction files for every finished sample, in file order; returns the files written."""
        done = {(r["task"], int(r["length"]), int(r["seed"])): r for r in records}
        written = []
        for length in self.lengths:
            folder = out / PREDICTIONS_DIR / (str(length) if len(self.dirs) > 1 else "")
            for task in self.tasks:
                rows = []
                for line in self.lines:
                    record = done.get((line.task, line.length, line.line))
                    if line.task != task or line.length != length or record is None:
                        continue
                    rows.append(prediction_row(line.data, record["output"]))
                if rows:
                    written.append(_write_jsonl(folder / f"{task}.jsonl", rows))
        return written


def describe_dirs(args: tuple[str, ...]) -> dict[str, Any]:
    """For run.json: each directory and a hash of each task file (a resume must read the same data)."""
    out: dict[str, Any] = {}
    for arg in args:
        length, path = parse_ruler_arg(arg)
        files = sorted(path.glob(f"*/{DATA_FILE}"))
        out[str(length)] = {
            "dir": str(path),
            "files": {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in files},
        }
    return out


def prediction_row(data: dict[str, Any], pred: str) -> dict[str, Any]:
    """One line of RULER's prediction file, with the fields its ``call_api.py`` writes."""
    return {
        "index": data["index"],
        "pred": pred,
        "input": data["input"],
        "outputs": data["outputs"],
        "others": data.get("others", {}),
        "truncation": data.get("truncation", -1),
        "length": data.get("length", -1),
    }


def _read_dir(path: Path, length: int) -> list[RulerLine]:
    if not path.is_dir():
        raise RulerDataError(
            f"--ruler-data {path}: no such directory (pass the --save_dir of RULER's prepare.py)"
        )
    files = sorted(p for p in path.glob(f"*/{DATA_FILE}"))
    if not files:
        raise RulerDataError(
            f"{path}: no RULER task folders (expected {path}/<task>/{DATA_FILE}, e.g. "
            f"{path}/niah_single_1/{DATA_FILE}: the --save_dir of RULER's prepare.py)"
        )
    for file in files:
        if file.parent.name not in TASK_SETTINGS:
            raise RulerDataError(
                f"{file}: unknown RULER task {file.parent.name!r}; RULER's tasks are {', '.join(TASK_SETTINGS)}"
            )
    order = list(TASK_SETTINGS)
    files.sort(key=lambda f: order.index(f.parent.name))
    return [line for file in files for line in read_task_file(file, file.parent.name, length)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    os.replace(tmp, path)
    return path
