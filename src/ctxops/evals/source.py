"""Where a run's samples come from: a plan of specs, and one built sample per spec.

:class:`GeneratedSamples` is the built-in generators (``ctxops.evals.tasks``), each sample filled to its length
with the target's token counter; :class:`~ctxops.evals.ruler_data.RulerData` (RULER's prepared data) is the other
source. The runner sees only :class:`SampleSource`. A source knows tasks and files, not targets' transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ctxops.evals.config import EvalConfig
from ctxops.evals.haystack import Haystack
from ctxops.evals.perturb import perturbation
from ctxops.evals.sample import Sample, SampleSpec
from ctxops.evals.targets.base import Target
from ctxops.evals.tasks import QARecord, TaskError, build_sample, read_qa_dataset, read_qa_file


class SampleSource(Protocol):
    """Where a run's samples come from: its plan, and one sample built per planned spec."""

    def plan(self) -> list[SampleSpec]: ...

    def build(self, spec: SampleSpec) -> Sample: ...


class GeneratedSamples:
    """The built-in generators, filling each sample to its length with the target's token counter."""

    def __init__(self, config: EvalConfig, target: Target) -> None:
        self.config = config
        self.target = target
        self.haystack = Haystack(config.haystack)
        self.qa_records: dict[str, Sequence[QARecord]] = {}
        try:
            if config.qa_file:
                self.qa_records["qa"] = read_qa_file(config.qa_file)
            for path in config.qa_data:
                task, records = read_qa_dataset(path)
                self.qa_records[task] = records
        except TaskError:
            raise
        except ValueError as exc:  # a file that is missing or malformed: the message names it
            raise TaskError(str(exc)) from exc

    def plan(self) -> list[SampleSpec]:
        return self.config.plan()

    def build(self, spec: SampleSpec) -> Sample:
        return build_sample(
            spec.task, spec.length, spec.depth, spec.seed, self.target.count_tokens,
            haystack=self.haystack, qa_records=self.qa_records.get(spec.task, ()),
            variant=spec.variant, perturbation=perturbation(spec),
        )  # fmt: skip
