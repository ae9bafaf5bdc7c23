"""What an evaluation run asks for: tasks, lengths, samples, depths, seed and how hard to push the target.

:class:`EvalConfig` is validated once when built; :func:`parse_lengths` reads ``--lengths 1k,2k,4k``
(``k`` = 1024 tokens, ``m`` = 1024², as RULER's 4K means 4096). :meth:`EvalConfig.plan` lists every item of the
run: tasks × lengths × samples, each sample at the next depth in turn and with its own seed, and each sample again
under every perturbation variant of its task (``perturb``), at the same seed, depth and length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctxops.evals.ruler_data import RULER_13, TASK_SETTINGS
from ctxops.evals.sample import SampleSpec
from ctxops.evals.tasks import TASKS, TaskError, get_task

DEFAULT_LENGTHS = (4096, 8192, 16384, 32768)
_LENGTH = re.compile(r"(\d+(?:\.\d+)?)([km]?)", re.IGNORECASE)


def parse_lengths(text: str) -> tuple[int, ...]:
    """``"1k,2k,4096"`` -> ``(1024, 2048, 4096)``, sorted and without repeats."""
    lengths = []
    for part in (p.strip() for p in text.split(",")):
        match = _LENGTH.fullmatch(part)
        if not match:
            raise ValueError(
                f"cannot read {part!r} as a length; write token counts such as 4096 or 4k (k = 1024), "
                "comma-separated: --lengths 1k,2k,4k"
            )
        value = float(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2}[match.group(2).lower()]
        if value < 64 or value != int(value):
            raise ValueError(f"length {part!r} must be a whole number of at least 64 tokens")
        lengths.append(int(value))
    return tuple(sorted(set(lengths)))


def format_length(tokens: int) -> str:
    """4096 -> ``4K``; 1536 -> ``1.5K``; 1000 -> ``1000``."""
    if tokens >= 1024 and tokens % 512 == 0:
        return f"{tokens / 1024:g}K"
    return str(tokens)


def parse_tasks(text: str) -> tuple[str, ...]:
    """``"niah_single_1,vt"`` or ``ruler`` (every RULER task) -> task names; unknown names raise TaskError."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "ruler":
            names += RULER_13
        elif part == "niah":
            names += [n for n, t in TASKS.items() if t.family == "niah"]
        else:
            names.append(get_task(part).name)
    if not names:
        raise TaskError("no tasks given; pass e.g. --tasks niah_single_1,vt or --tasks ruler")
    return tuple(dict.fromkeys(names))


def depth_grid(count: int) -> tuple[float, ...]:
    """``count`` evenly spaced depths with 0 and 1 included (a single depth is 0.5)."""
    if count == 1:
        return (0.5,)
    return tuple(round(i / (count - 1), 6) for i in range(count))


@dataclass(frozen=True)
class EvalConfig:
    """One run's workload."""

    tasks: tuple[str, ...]
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    samples: int = 20  # per task and length, spread over the depths
    depths: int = 5
    seed: int = 42
    concurrency: int = 8
    haystack: tuple[str, ...] = ()  # prose files; empty = generated prose
    qa_file: str | None = None
    qa_data: tuple[str, ...] = ()  # SQuAD / HotpotQA JSON files for qa_1 / qa_2
    ruler_data: tuple[str, ...] = ()  # ``[LENGTH=]DIR`` of RULER's prepared data: samples come from there
    latency_samples: int = 0  # per length, sent again one at a time after the run (latency without queueing)
    share_prefixes: bool = True  # group and order samples so a shared haystack prefix is computed once
    perturb: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (task, its variant names), from perturb.expand
    model_card: str | None = None  # its ctxops.trained_on splits in-distribution from held-out

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("give at least one task")
        if self.ruler_data:
            unknown = [t for t in self.tasks if t not in TASK_SETTINGS]
            if unknown or self.haystack or self.qa_file:
                raise ValueError(
                    f"with --ruler-data the tasks come from the data (RULER's: {', '.join(TASK_SETTINGS)}); "
                    "--haystack and --qa-file do not apply" + (f"; unknown: {unknown}" if unknown else "")
                )
        else:
            for name in self.tasks:
                get_task(name)
        if self.latency_samples < 0:
            raise ValueError(f"--latency-samples must be 0 or more, got {self.latency_samples}")
        if not self.lengths or min(self.lengths) < 64:
            raise ValueError(f"lengths must be at least 64 tokens, got {self.lengths}")
        if self.samples < 1:
            raise ValueError(f"--samples must be at least 1, got {self.samples}")
        if not 1 <= self.depths <= 1000:
            raise ValueError(f"--depths must be between 1 and 1000, got {self.depths}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.perturb and self.ruler_data:
            raise ValueError(
                "--perturb builds variants of the built-in tasks; it does not apply to --ruler-data"
            )
        unknown = [t for t, _ in self.perturb if t not in self.tasks]
        if unknown:
            raise ValueError(f"perturbation variants given for tasks not in the run: {unknown}")
        if "qa" in self.tasks and not self.qa_file:
            raise TaskError("task 'qa' needs --qa-file FILE (a JSONL of {documents, question, answers})")
        if {"qa_1", "qa_2"} & set(self.tasks) and not (self.qa_data or self.ruler_data):
            raise TaskError(
                "tasks qa_1 and qa_2 need --qa-data FILE: SQuAD 2.0's dev-v2.0.json (qa_1) and HotpotQA's "
                "hotpot_dev_distractor_v1.json (qa_2), the files RULER downloads"
            )

    def plan(self) -> list[SampleSpec]:
        """Every item of the run, in a stable order (task, variant, length, sample index); clean first."""
        grid = depth_grid(self.depths)
        variants = dict(self.perturb)
        specs = []
        for task in self.tasks:
            uses_depth = get_task(task).uses_depth
            for variant in ("", *variants.get(task, ())):
                for length in self.lengths:
                    for i in range(self.samples):
                        depth = grid[i % len(grid)] if uses_depth else None
                        specs.append(SampleSpec(task, length, depth, self.seed + i, variant))
        return specs
