"""The eval items a contamination check looks for: from a ``ctxops eval`` run, a task spec, or a JSONL file.

- A run directory: its ``samples.jsonl`` records name the items (task, length, depth, seed) but not their text, so
  each is rebuilt with the run's own tokenizer, haystack and QA file, and checked against the recorded
  ``prompt_hash``: a rebuilt item that differs from what was sent is an error, never a silent guess.
- A task spec ``TASKS:LENGTHS[:SAMPLES]`` (``niah_single_1,vt:1k,2k:20``): the items ``ctxops eval`` would send,
  built with ``model``'s tokenizer and seeds 42 and up.
- A JSONL file of ``{"id", "text"}`` objects (``task`` and ``answers``, a list of strings, optional).

An item's id for eval items is ``task/length/depth/seed``, as :func:`item_id` writes it, which is how
``ctxops report --contamination`` finds the item's score. This module knows eval items, not corpora.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxops.evals.config import EvalConfig, parse_lengths, parse_tasks
from ctxops.evals.haystack import Haystack
from ctxops.evals.prompt import PromptStyle, TokenizerCounter
from ctxops.evals.rundir import RunDir, RunDirError, record_key
from ctxops.evals.sample import Sample, SampleSpec


class ItemsError(ValueError):
    """The eval items cannot be read or rebuilt."""


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One eval item: its id, task (the group boilerplate is measured in) and the text the model reads."""

    id: str
    task: str
    text: str
    answers: tuple[str, ...] = ()  # the gold answers, when known: a match that holds one is a leaked answer


def item_id(task: str, length: int, depth: float | None, seed: int, variant: str = "") -> str:
    """``niah_single_1/1024/0.25/42`` (then ``/noise=typos`` for a perturbed item): an eval item's id."""
    key = record_key({"task": task, "length": length, "depth": depth, "seed": seed})
    suffix = f"/{variant}" if variant else ""
    return f"{key[0]}/{key[1]}/{'-' if key[2] is None else f'{key[2]:g}'}/{key[3]}{suffix}"


def load_items(source: str, model: str = "builtin") -> list[EvalItem]:
    """The items named by ``source``: a run directory, a ``.jsonl`` file, or a task spec (see module docs)."""
    path = Path(source)
    if path.is_dir():
        items = _from_run(path)
    elif path.suffix == ".jsonl" or path.is_file():
        items = _from_jsonl(path)
    else:
        items = _from_spec(source, model)
    if not items:
        raise ItemsError(f"{source}: holds no eval items; a contamination check needs at least one")
    return items


def _counter(model: str, style: str = PromptStyle.CHAT.value) -> TokenizerCounter:
    from ctxops.models.loader import resolve_model_path
    from ctxops.models.tokenizer import Tokenizer

    tokenizer = Tokenizer(resolve_model_path(model))
    chosen = PromptStyle(style) if tokenizer.has_chat_template else PromptStyle.RAW
    return TokenizerCounter(tokenizer, chosen)


def _item(sample: Sample) -> EvalItem:
    spec = sample.spec
    text = sample.prompt + "\n" + sample.answer_prefix
    return EvalItem(
        item_id(spec.task, spec.length, spec.depth, spec.seed, spec.variant),
        spec.task,
        text,
        tuple(sample.answers),
    )


def _from_spec(spec: str, model: str) -> list[EvalItem]:
    from ctxops.evals.tasks import build_sample

    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise ItemsError(
            f"{spec!r} is neither a run directory, a .jsonl file, nor a task spec; write TASKS:LENGTHS[:SAMPLES], "
            "e.g. niah_single_1,vt:1k,2k:20"
        )
    try:
        config = EvalConfig(
            tasks=parse_tasks(parts[0]),
            lengths=parse_lengths(parts[1]),
            samples=int(parts[2]) if len(parts) == 3 else 20,
        )
    except ValueError as exc:
        raise ItemsError(f"task spec {spec!r}: {exc}") from exc
    counter = _counter(model)
    return [_item(build_sample(s.task, s.length, s.depth, s.seed, counter)) for s in config.plan()]


def _from_run(path: Path) -> list[EvalItem]:
    from ctxops.evals.perturb import perturbation
    from ctxops.evals.tasks import build_sample, read_qa_file

    try:
        run_dir = RunDir.existing(path)
        run = run_dir.read_run()
    except RunDirError as exc:
        raise ItemsError(str(exc)) from exc
    records = list(run_dir.records())
    if not records:
        raise ItemsError(f"{path}: the run has no finished samples, so there are no items to check")
    counter = _run_counter(path, run)
    haystack = Haystack(tuple(run["haystack"]) if isinstance(run.get("haystack"), list) else ())
    qa_records = read_qa_file(run["qa_file"]) if run.get("qa_file") else ()
    items = []
    for record in records:
        spec = SampleSpec(
            record["task"],
            int(record["length"]),
            record.get("depth"),
            int(record["seed"]),
            record.get("variant", ""),
        )
        sample = build_sample(
            spec.task, spec.length, spec.depth, spec.seed, counter, haystack=haystack, qa_records=qa_records,
            variant=spec.variant, perturbation=perturbation(spec),
        )  # fmt: skip
        if record.get("prompt_hash") and sample.prompt_hash != record["prompt_hash"]:
            raise ItemsError(
                f"{path}: item {spec.key} rebuilds to a different prompt than the run sent (hash "
                f"{sample.prompt_hash} vs {record['prompt_hash']}); was it made by another ctxops version or "
                'haystack? Export its prompts as JSONL ({"id", "text"}) and pass that instead'
            )
        items.append(_item(sample))
    return items


def _run_counter(path: Path, run: dict[str, Any]) -> TokenizerCounter:
    target = run.get("target", {})
    model = target.get("model_path") or target.get("model")
    if target.get("kind") != "local" or not model:
        raise ItemsError(
            f"{path}: the run's target ({target.get('kind', 'unknown')}) has no local tokenizer to rebuild its "
            'items with; pass its items as JSONL ({"id", "text"}) or as a task spec with --model'
        )
    try:
        return _counter(str(model), target.get("prompt_style", PromptStyle.CHAT.value))
    except (OSError, ValueError) as exc:
        raise ItemsError(f"{path}: cannot load the run's tokenizer from {model} ({exc})") from exc


def _from_jsonl(path: Path) -> list[EvalItem]:
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ItemsError(f"{path}: cannot be read as UTF-8 text ({exc})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ItemsError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str) or "id" not in record:
            raise ItemsError(f'{path}:{number}: an item must be an object with "id" and a string "text"')
        answers = record.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise ItemsError(f'{path}:{number}: "answers" must be a list of strings')
        items.append(
            EvalItem(str(record["id"]), str(record.get("task", "items")), record["text"], tuple(answers))
        )
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise ItemsError(f"{path}: item ids must be unique; {len(ids) - len(set(ids))} repeat")
    return items
