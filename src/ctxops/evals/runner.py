"""The runner: build, send, score and record every planned sample.

It builds each sample, sends it to the target with bounded concurrency, scores it, and appends the record to
``samples.jsonl`` the moment it finishes. Samples come from a source: the built-in generators, or RULER's prepared
data (:mod:`.ruler_data`, whose prediction files are rewritten after every invocation). They are sent in
:mod:`.schedule`'s order, so a prefix that samples share is computed once. Every record carries the concurrency it
ran under; with ``latency_samples`` a second pass sends that many samples per length again, one at a time, into
``latency.jsonl`` (latency without queueing; never scored into the results).

Samples already in the run directory are skipped, so rerunning the same command resumes an interrupted run and
never repeats or duplicates a sample; a line of ``samples.jsonl`` without a record (cut short by a kill, or corrupt)
is moved aside first and its sample run again, with a warning. A sample the target fails on (after the target's own retries) is not
recorded; the run ends ``partial`` and a rerun tries it again. Building a sample (tokenizer work, maybe HTTP
``/tokenize`` calls) runs in worker threads so requests keep flowing. The runner knows tasks and targets through
their interfaces, not engines or HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ctxops.evals import provenance
from ctxops.evals.config import EvalConfig
from ctxops.evals.ruler_data import RulerData
from ctxops.evals.rundir import LATENCY_FILE, REJECTED_FILE, RUN_FILE, RunDir, describe_bad_lines
from ctxops.evals.sample import Sample, SampleSpec
from ctxops.evals.schedule import PrefixGate, prefix_order
from ctxops.evals.source import GeneratedSamples, SampleSource
from ctxops.evals.targets.base import Completion, Target, TargetError
from ctxops.evals.tasks import TaskError


@dataclass
class RunOutcome:
    """What one invocation did."""

    planned: int
    skipped: int  # already in samples.jsonl
    done: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    latency_failed: int = 0  # samples of the latency pass the target failed on (rerun to retry)
    warnings: list[str] = field(default_factory=list)  # for the user: what was repaired before the run

    @property
    def complete(self) -> bool:
        """True when every planned sample is recorded."""
        return self.skipped + self.done == self.planned


def make_record(sample: Sample, completion: Completion, concurrency: int) -> dict[str, Any]:
    """The samples.jsonl line for one finished sample sent with ``concurrency`` requests allowed in flight."""
    value = sample.score_output(completion.text)
    spec = sample.spec
    return {
        "task": spec.task,
        "length": spec.length,
        "depth": spec.depth,
        "seed": spec.seed,
        "prompt_hash": sample.prompt_hash,
        "metric": sample.metric.value,
        "score": value,
        "correct": value == 1.0,
        "output": completion.text,
        "answers": list(sample.answers),
        "input_tokens": sample.input_tokens,
        "prompt_tokens": completion.prompt_tokens,
        "cached_tokens": completion.cached_tokens,
        "output_tokens": completion.output_tokens,
        "max_tokens": sample.max_tokens,
        "ttft_s": completion.ttft_s,
        "tpot_s": completion.tpot_s,
        "e2e_s": completion.e2e_s,
        "concurrency": concurrency,
        "finish_reason": completion.finish_reason,
        "attempts": completion.attempts,
        "needle_depths": sample.metadata.get("needle_depths"),
        **({"variant": spec.variant} if spec.variant else {}),
        **({"ruler_index": sample.metadata["ruler_index"]} if "ruler_index" in sample.metadata else {}),
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        **sample.record_fields(completion.text),
    }


class Runner:
    """Runs one :class:`EvalConfig` against one :class:`Target` into one :class:`RunDir`."""

    def __init__(
        self,
        config: EvalConfig,
        target: Target,
        run_dir: RunDir,
        console: Console | None = None,
        source: SampleSource | None = None,
    ) -> None:
        self.config = config
        self.target = target
        self.run_dir = run_dir
        self.console = console or Console(stderr=True)
        if source is None:
            source = (
                RulerData.load(config.ruler_data) if config.ruler_data else GeneratedSamples(config, target)
            )
        self.source = source
        self._correct = 0
        self._scored = 0
        self._gate = PrefixGate(())

    def build(self, spec: SampleSpec) -> Sample:
        """Build one planned sample."""
        return self.source.build(spec)

    def _write_run(self, status: str | None = None) -> dict[str, Any]:
        old = self.run_dir.read_run()
        record = (
            provenance.merge_run_record(old, self.config, self.target, self.run_dir.path)
            if old
            else provenance.new_run_record(self.config, self.target)
        )
        if old and status is not None:
            record = {**old, "updated": record["updated"], "status": status}
        elif status is not None:
            record["status"] = status
        self.run_dir.write_json(RUN_FILE, record)
        return record

    async def run(self, show_progress: bool = True) -> RunOutcome:
        """Run every planned sample not yet recorded; returns what happened."""
        self._write_run()
        rejected = self.run_dir.repair()
        finished = self.run_dir.finished_keys()
        plan = self.source.plan()
        todo = [s for s in plan if s.key not in finished]
        unfit = await self._check_buildable(todo) if todo else set()
        if unfit:
            plan = [s for s in plan if (s.task, s.length, s.variant) not in unfit]
            todo = [s for s in todo if (s.task, s.length, s.variant) not in unfit]
        if self.config.share_prefixes:
            todo = prefix_order(todo)
            self._gate = PrefixGate(todo)
        outcome = RunOutcome(planned=len(plan), skipped=len(plan) - len(todo))
        moved = describe_bad_lines(
            self.run_dir.samples_path,
            rejected,
            f"moved to {self.run_dir.file(REJECTED_FILE)}; the samples they held are run again",
        )
        if moved:
            outcome.warnings.append(moved)
        if unfit:
            shown = ", ".join(f"{v} at {n} tokens ({t})" for t, n, v in sorted(unfit))
            outcome.warnings.append(f"variants left out, their prompts do not fit the length: {shown}")
        queue: asyncio.Queue[SampleSpec] = asyncio.Queue()
        for spec in todo:
            queue.put_nowait(spec)
        with self._progress(show_progress) as progress:
            bar = progress.add_task("eval", total=len(todo), accuracy="")
            workers = [
                asyncio.create_task(self._worker(queue, outcome, progress, bar))
                for _ in range(min(self.config.concurrency, max(len(todo), 1)))
            ]
            try:
                await asyncio.gather(*workers)
                await self._latency_pass(plan, outcome, progress)
            finally:
                for worker in workers:
                    worker.cancel()
                self._write_run("complete" if outcome.complete else "partial")
                if isinstance(self.source, RulerData):
                    self.source.write_predictions(self.run_dir.path, list(self.run_dir.records()))
        return outcome

    async def _latency_pass(self, plan: list[SampleSpec], outcome: RunOutcome, progress: Progress) -> None:
        """Send ``latency_samples`` samples per length again, one at a time, into latency.jsonl."""
        count = self.config.latency_samples
        if not count:
            return
        self.run_dir.repair(LATENCY_FILE)
        done = self.run_dir.finished_keys(LATENCY_FILE)
        todo = [s for s in latency_specs(plan, count) if s.key not in done]
        bar = progress.add_task("latency", total=len(todo), accuracy="concurrency 1")
        for spec in todo:
            try:
                sample = await asyncio.to_thread(self.build, spec)
                completion = await self.target.generate(sample)
            except TargetError as exc:
                outcome.errors.append(f"latency pass {spec.key}: {exc}")
                outcome.latency_failed += 1
            else:
                self.run_dir.append(make_record(sample, completion, concurrency=1), LATENCY_FILE)
            progress.advance(bar)

    async def _check_buildable(self, todo: list[SampleSpec]) -> set[tuple[str, int, str]]:
        """Build the first sample of each (task, length, variant) up front, so a bad length fails before any request.

        A clean item that does not fit raises; a perturbation variant that does not fit (32 distractors in 512
        tokens) is returned as (task, length, variant), for the run to leave out with a warning.
        """
        firsts = {(s.task, s.length, s.variant): s for s in reversed(todo)}
        unfit = set()
        for group, spec in firsts.items():
            try:
                await asyncio.to_thread(self.build, spec)
            except TaskError:
                if not spec.variant:
                    raise
                unfit.add(group)
        return unfit

    async def _worker(
        self, queue: asyncio.Queue[SampleSpec], outcome: RunOutcome, progress: Progress, bar
    ) -> None:
        while not queue.empty():
            spec = queue.get_nowait()
            try:
                sample = await asyncio.to_thread(self.build, spec)
                await self._gate.wait(sample)
                completion = await self.target.generate(sample)
            except TargetError as exc:
                outcome.failed += 1
                outcome.errors.append(f"{spec.key}: {exc}")
                progress.advance(bar)
                continue
            except TaskError as exc:
                if not spec.variant:
                    raise
                # a variant sample whose draw does not fit (the group's first did): left out, as a group would be
                outcome.planned -= 1
                outcome.warnings.append(f"variant sample {spec.key} left out: {exc}")
                progress.advance(bar)
                continue
            finally:
                self._gate.release(spec)
            record = make_record(sample, completion, self.config.concurrency)
            self.run_dir.append(record)
            outcome.done += 1
            self._scored += 1
            self._correct += record["score"]
            progress.update(bar, advance=1, accuracy=f"score {100 * self._correct / self._scored:5.1f}")

    def _progress(self, show: bool) -> Progress:
        return Progress(
            TextColumn("[bold]eval[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[accuracy]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not show,
        )


def latency_specs(plan: list[SampleSpec], count: int) -> list[SampleSpec]:
    """``count`` specs per length, taking the tasks in turn (the first sample of each, then the second, ...)."""
    out = []
    for length in sorted({s.length for s in plan}):
        by_task: dict[str, list[SampleSpec]] = {}
        for spec in plan:
            if spec.length == length:
                by_task.setdefault(spec.task, []).append(spec)
        turns = [spec for i in range(max(map(len, by_task.values()))) for specs in by_task.values()
                 if i < len(specs) for spec in [specs[i]]]  # fmt: skip
        out += turns[:count]
    return out


async def run_eval(
    config: EvalConfig,
    target: Target,
    run_dir: RunDir,
    *,
    show_progress: bool = True,
    console: Console | None = None,
    source: SampleSource | None = None,
) -> RunOutcome:
    """Start ``target``, run ``config`` into ``run_dir``, close the target. See :class:`Runner`."""
    await target.start()
    try:
        check_lengths(target, config.lengths)
        return await Runner(config, target, run_dir, console, source).run(show_progress)
    finally:
        await target.close()


def check_lengths(target: Target, lengths: Sequence[int]) -> None:
    """Refuse lengths the target cannot hold, before any work is done."""
    limit = target.max_model_len
    too_long = [n for n in lengths if limit is not None and n > limit]
    if too_long:
        raise TargetError(
            f"lengths {too_long} exceed the target's max_model_len of {limit} tokens; drop them from --lengths "
            "or raise the server's / engine's --max-model-len (the model must support it)"
        )
