"""``run.json``: what a run was, and whether a rerun may resume it.

It records the ctxops version, target, model hash or served name, engine settings, tasks, lengths, seeds and
haystack, and decides whether a rerun into the same directory may resume it.

A resume may add tasks, lengths or samples; it may not change the target or what the prompts are made of, since
finished samples would then mean something else.
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
from ctxops.evals.rundir import RunDirError
from ctxops.evals.targets.base import Target


def _file_hash(path: str | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def content_identity(config: EvalConfig, target: Target) -> dict[str, Any]:
    """What must not change between a run and its resume."""
    return {
        "target": target.identity(),
        "haystack": {f: _file_hash(f) for f in config.haystack} or "generated prose",
        "qa_file": _file_hash(config.qa_file),
    }


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
    merged["resumed"] = old.get("resumed", 0) + 1
    return merged
