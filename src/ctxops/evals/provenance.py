"""``run.json``: what a run was, and whether a rerun may resume it.

It records the ctxops version, target, model hash or served name, engine settings, tasks, lengths, seeds and
haystack, and decides whether a rerun into the same directory may resume it.

A resume may add tasks, lengths or samples; it may not change the target or what the prompts are made of, since
finished samples would then mean something else. Two different runs' records are compared field by field
(:func:`setting_differences`), so ``ctxops compare`` names what was recorded to differ before anyone guesses.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ctxops import __version__
from ctxops.evals.config import EvalConfig, depth_grid
from ctxops.evals.robustness import read_trained_on
from ctxops.evals.ruler_data import describe_dirs
from ctxops.evals.rundir import RunDirError
from ctxops.evals.targets.base import Target


def _file_hash(path: str | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def content_identity(config: EvalConfig, target: Target) -> dict[str, Any]:
    """What must not change between a run and its resume."""
    identity = {
        "target": target.identity(),
        "haystack": {f: _file_hash(f) for f in config.haystack} or "generated prose",
        "qa_file": _file_hash(config.qa_file),
    }
    if config.qa_data:
        identity["qa_data"] = {f: _file_hash(f) for f in config.qa_data}
    if config.ruler_data:
        identity["ruler_data"] = {n: d["files"] for n, d in describe_dirs(config.ruler_data).items()}
    return identity


def _trained_on(config: EvalConfig, target: Target) -> dict[str, list[str]] | None:
    """What the model card (``--model-card``, else the local model's README.md) says the model was trained on."""
    if config.model_card:
        return read_trained_on(config.model_card)  # checked at the CLI's edge
    path = target.describe().get("model_path")
    try:
        return read_trained_on(path) if path else None
    except ValueError:  # the model's own README is not ours to police; without a list there is no split
        return None


def new_run_record(config: EvalConfig, target: Target, argv: list[str] | None = None) -> dict[str, Any]:
    """The run.json of a fresh run."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "ctxops_version": __version__,
        "created": now,
        "updated": now,
        "status": "running",
        "command": argv if argv is not None else sys.argv,
        "host": {"python": platform.python_version(), "platform": platform.platform()},
        "target": target.describe(),
        "identity": content_identity(config, target),
        "lengths_exact": target.counts_exactly,
        "tasks": list(config.tasks),
        "lengths": list(config.lengths),
        "samples_per_cell": config.samples,
        "depths": list(depth_grid(config.depths)),
        "seeds": [config.seed, config.seed + config.samples - 1],
        "concurrency": config.concurrency,
        "haystack": list(config.haystack) or "generated prose",
        "qa_file": config.qa_file,
        **({"qa_data": list(config.qa_data)} if config.qa_data else {}),
        "latency_samples": config.latency_samples,
        **({"perturb": {task: list(names) for task, names in config.perturb}} if config.perturb else {}),
        **({"trained_on": trained} if (trained := _trained_on(config, target)) else {}),
        **(
            {"ruler_data": describe_dirs(config.ruler_data), "seeds": "RULER's line numbers"}
            if config.ruler_data
            else {}
        ),
    }


def merge_run_record(
    old: dict[str, Any], config: EvalConfig, target: Target, directory: Path
) -> dict[str, Any]:
    """The run.json of a resumed run; raises RunDirError when the directory holds a different run."""
    new = new_run_record(config, target)
    if old.get("identity") != new["identity"]:
        raise RunDirError(
            f"{directory} holds a run of a different target or haystack:\n  was {old.get('identity')}\n  now "
            f"{new['identity']}\nuse a new --out directory, or rerun with the original settings to resume"
        )
    merged = {**new, "created": old.get("created", new["created"])}
    merged["tasks"] = list(dict.fromkeys([*old.get("tasks", []), *new["tasks"]]))
    merged["lengths"] = sorted({*old.get("lengths", []), *new["lengths"]})
    merged["samples_per_cell"] = max(old.get("samples_per_cell", 0), new["samples_per_cell"])
    merged["depths"] = sorted({*old.get("depths", []), *new["depths"]})
    perturb = {t: list(dict.fromkeys([*old.get("perturb", {}).get(t, []), *new.get("perturb", {}).get(t, [])]))
               for t in {*old.get("perturb", {}), *new.get("perturb", {})}}  # fmt: skip
    if perturb:
        merged["perturb"] = perturb
    merged["resumed"] = old.get("resumed", 0) + 1
    return merged


# run.json fields that can move scores when two runs differ in them; a dict is compared leaf by leaf.
_SCORE_FIELDS = (
    "target", "identity.haystack", "identity.qa_file", "identity.qa_data", "identity.ruler_data",
    "lengths_exact", "ctxops_version",
)  # fmt: skip
# Derived from other fields (the pool from the engine settings) or local to one machine (the path).
_NOT_SETTINGS = (
    "target.model_path",
    "target.kv_cache",
    "target.kv_press_query_aware",
    "target.kv_head_policy",
)
_WHY = {
    "target.answer_prefix": "RULER's answer prefix starts the model's answer; without it (the chat API cannot "
    "send one) models answer in their own words and usually score lower; rerun with --api completions or against "
    "a server that continues an assistant turn (vLLM, ctxops serve)",
    "target.tokenizer": "lengths were counted differently, so haystacks were cut to different sizes",
    "lengths_exact": "one run's lengths were estimated, not counted, so its prompts have other sizes",
    "target.prompt_style": "one run wrapped prompts in the chat template, the other sent them raw",
    "target.api": "the chat and completions APIs format the prompt differently",
    "identity.haystack": "the haystack text differs, so the prompts differ",
    "identity.qa_file": "the QA records differ, so the questions differ",
    "identity.ruler_data": "the runs read different RULER data files, so the prompts differ",
}


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def _score_settings(run: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name in _SCORE_FIELDS:
        value: Any = run
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        flat.update(_leaves(value, name))
    return {k: v for k, v in flat.items() if not k.startswith(_NOT_SETTINGS)}


def setting_differences(run_a: dict[str, Any], run_b: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded settings that differ between two runs' run.json and can move scores.

    Returns:
        One ``{"field", "a", "b", "why"}`` per differing leaf, in field order; ``why`` says how the field moves
        scores where that is not obvious, else None. A field one run lacks is None on that side.
    """
    a, b = _score_settings(run_a), _score_settings(run_b)
    return [
        {"field": key, "a": a.get(key), "b": b.get(key), "why": _why(key)}
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


def _why(key: str) -> str | None:
    return next((why for name, why in _WHY.items() if key == name or key.startswith(name + ".")), None)
