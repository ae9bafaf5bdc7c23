"""What a model version is: its content hash, config summary, tokenizer hash, engine settings and eval runs.

A version registered from a directory records a sha256 over every file (sorted by relative path, each path and
its bytes hashed), so two versions hold the same weights exactly when their hashes match; ``builtin`` is the
shipped model's directory. A version registered from an endpoint records its URL and the model id it serves (the
files are out of reach). Eval runs belong to a version when their target matches: a local run of the same
directory whose answer-changing engine settings (KV format, press, quantization, dtype, max length) equal the
version's (defaults where it names none), or an endpoint run of the same URL and model id; a run whose
``model`` is ``NAME@VERSION`` (what ``ctxops rollout`` records for its canaries) belongs to it too. ``diff`` puts
two versions side by side: config, settings, and each one's latest linked run (score and effective length per
length), with the paired exact test of :mod:`ctxops.monitor.canary` when both runs asked the same seeded samples.
This module knows files, hashes and store rows, not HTTP or routing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from ctxops.engine.config import EngineConfig
from ctxops.models.config import ModelConfig, ModelConfigError
from ctxops.store import Store, open_store
from ctxops.store.eval_runs import get_run, recent_runs
from ctxops.store.registry import add_version, get_version

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_READ_BYTES = 1 << 20  # hash files in 1 MiB reads: a 10 GB checkpoint never sits in memory
# engine settings that change answers: a run with another value of one of them is another version's run
_DEFINING = ("dtype", "kv_cache_dtype", "kv_press", "kv_compression_ratio", "kv_press_min_tokens",
             "kv_press_query_aware", "quantization", "max_model_len")  # fmt: skip
_ALPHA = 0.05  # the paired test's level in diff


def model_directory(model: str) -> Path:
    """``builtin`` or a directory holding config.json, resolved; ValueError saying what is missing otherwise."""
    path = (
        Path(str(resources.files("ctxops.models"))) / "builtin"
        if model == "builtin"
        else Path(model).expanduser().resolve()
    )
    if not (path / "config.json").is_file():
        raise ValueError(
            f"{model}: not a model directory (no config.json); give a Hugging Face directory or builtin"
        )
    return path


def content_hash(directory: Path) -> str:
    """sha256 over the directory's files sorted by relative path: each path, a NUL, then the file's bytes."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(directory)).encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(_READ_BYTES):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_hash(directory: Path) -> str | None:
    """sha256 of the tokenizer files present (None when there is none)."""
    digest, found = hashlib.sha256(), False
    for name in _TOKENIZER_FILES:
        if (directory / name).is_file():
            digest.update(name.encode() + b"\0" + (directory / name).read_bytes())
            found = True
    return digest.hexdigest() if found else None


def config_summary(directory: Path) -> dict[str, Any]:
    """The config fields that change what a model can hold: architecture, size, heads, context, rope."""
    try:
        config = ModelConfig.from_path(directory)
    except ModelConfigError as exc:
        raise ValueError(str(exc)) from exc
    return {
        "architecture": config.architecture, "num_hidden_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size, "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads, "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position_embeddings, "rope_type": config.rope.type.value,
        "rope_theta": config.rope.theta, "rope_factor": config.rope.factor, "torch_dtype": config.torch_dtype,
    }  # fmt: skip


def register(
    store: Store,
    name: str,
    version: str,
    *,
    path: str | None = None,
    endpoint: str | None = None,
    served_model_name: str | None = None,
    settings: dict[str, Any] | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Record a version from a model directory (hashed here) or an endpoint; returns the row written."""
    if (path is None) == (endpoint is None):
        raise ValueError("give exactly one of --path DIR or --endpoint URL")
    if endpoint is not None and not served_model_name:
        raise ValueError("an endpoint version needs --model-name (the model id the endpoint serves)")
    if not name.strip() or not version.strip() or "@" in name + version:
        raise ValueError(
            "NAME and --version must be non-blank and hold no '@' (NAME@VERSION names a version)"
        )
    row: dict[str, Any] = {
        "name": name, "version": version, "created_at": time.time(), "settings": dict(settings or {}),
        "notes": notes, "served_model_name": served_model_name, "content_hash": None, "tokenizer_hash": None,
        "config": {},
    }  # fmt: skip
    if path is not None:
        directory = model_directory(path)
        row.update(source="path", location=str(directory), content_hash=content_hash(directory),
                   tokenizer_hash=tokenizer_hash(directory), config=config_summary(directory))  # fmt: skip
    else:
        assert endpoint is not None
        row.update(source="endpoint", location=endpoint.rstrip("/"))
    add_version(store, row)
    return row


def _belongs(version: dict[str, Any], run: dict[str, Any]) -> bool:
    if run["model"] == f"{version['name']}@{version['version']}":
        return True
    target = ((run.get("summary") or {}).get("run") or {}).get("target") or {}
    if version["source"] == "endpoint":
        return (
            target.get("kind") == "endpoint"
            and str(target.get("url", "")).rstrip("/") == version["location"]
            and target.get("served_model_name") == version["served_model_name"]
        )
    if target.get("kind") != "local" or not target.get("model_path"):
        return False
    if str(Path(target["model_path"]).resolve()) != version["location"]:
        return False
    engine = target.get("engine") or {}
    settings = version["settings"]
    return all(
        str(engine.get(key, EngineConfig.default(key))) == str(settings.get(key, EngineConfig.default(key)))
        for key in {*_DEFINING, *(k for k in settings if k in EngineConfig.__dataclass_fields__)}
    )


def linked_runs(store: Store, version: dict[str, Any], limit: int = 500) -> list[dict[str, Any]]:
    """The eval and canary runs made against ``version``, newest first (with their summaries)."""
    runs = [get_run(store, r["run_id"]) for r in recent_runs(store, limit)]
    return [r for r in runs if r is not None and _belongs(version, r)]


def effective_length_lookup(db: str) -> Callable[[str, str | None], int | None]:
    """(served model, version) -> the effective length of the version's newest linked run that measured one.

    What the gateway's length policy uses for an arm that states none. The store is opened per call: lookups
    happen only when routes are loaded.
    """

    def lookup(model: str, version: str | None) -> int | None:
        if version is None:
            return None
        with open_store(db) as store:
            row = get_version(store, model, version)
            runs = linked_runs(store, row) if row else []
        return next((int(r["effective_length"]) for r in runs if r["effective_length"]), None)

    return lookup


def _run_view(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    overall = (run["summary"] or {}).get("overall") or {}
    return {
        "run_id": run["run_id"],
        "kind": run["kind"],
        "effective_length": run["effective_length"],
        "score_by_length": {k: round(v["score"], 1) for k, v in overall.items() if isinstance(v, dict)},
    }


def _outcomes(run: dict[str, Any] | None) -> dict[str, bool]:
    """Per-sample outcomes of a run: a canary row holds them; an eval run's directory has samples.jsonl."""
    if run is None:
        return {}
    if "outcomes" in (run["summary"] or {}):
        return run["summary"]["outcomes"]
    from ctxops.evals.rundir import RunDir
    from ctxops.monitor.canary import outcomes

    try:
        return outcomes(list(RunDir(run["run_id"]).records()))
    except (OSError, ValueError):
        return {}


def _changed(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def diff(store: Store, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two versions side by side: identity, config and settings changes, and their latest linked runs."""
    from ctxops.monitor.canary import compare_runs, describe

    run_a, run_b = (next(iter(linked_runs(store, v)), None) for v in (a, b))
    same_samples = _outcomes(run_a), _outcomes(run_b)
    paired = compare_runs(*same_samples, _ALPHA) if all(same_samples) else []
    return {
        "versions": [a["version"], b["version"]],
        "same_content": a["content_hash"] is not None and a["content_hash"] == b["content_hash"],
        "identity": _changed(
            {k: a[k] for k in ("source", "location", "content_hash", "tokenizer_hash", "served_model_name")},
            {k: b[k] for k in ("source", "location", "content_hash", "tokenizer_hash", "served_model_name")},
        ),
        "config": _changed(a["config"], b["config"]),
        "settings": _changed(a["settings"], b["settings"]),
        "evals": [_run_view(run_a), _run_view(run_b)],
        "paired_test": describe(paired),  # empty unless both runs asked the same seeded samples
    }
