"""``ctxops compress prune`` end to end: protect retrieval heads, calibrate, rank, cut, write the smaller model.

This module knows the order of the steps and the files they leave (the model directory plus ``prune.json``); the
math lives in :mod:`ctxops.compress.prune`, the data in :mod:`ctxops.compress.corpus`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ctxops.compress.corpus import DEFAULT_TASKS, Corpus
from ctxops.compress.dense import dense_forward, load_model
from ctxops.compress.heads import RETRIEVAL_THRESHOLD, needle_probes, score_heads
from ctxops.compress.model_dir import count_parameters, read_config, write_model_dir
from ctxops.compress.prune import (
    PruneError,
    check_ratio,
    importance,
    plan_pruning,
    pruned_config,
    pruned_state_dict,
)
from ctxops.models.tokenizer import Tokenizer

PRUNE_JSON = "prune.json"
CALIBRATION_SEED = 1000  # calibration items are not the eval's (seed 42 onward) nor distillation's (0 onward)


def retrieval_scores(model, path: Path, scores_file: str | None) -> torch.Tensor:
    """(layers, heads) retrieval scores: from ``compress heads``' scores.json, else a quick needle run here."""
    shape = (model.config.num_hidden_layers, model.config.num_attention_heads)
    if scores_file is None:
        probes = needle_probes(Tokenizer(path), (512, 1024), (0.2, 0.5, 0.8), 1)
        return score_heads(model, probes).scores
    try:
        scores = torch.tensor(json.loads(Path(scores_file).read_text())["scores"], dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PruneError(
            f"--head-scores {scores_file}: not a scores.json of `ctxops compress heads` ({exc})"
        ) from exc
    if tuple(scores.shape) != shape:
        raise PruneError(
            f"--head-scores {scores_file} scores {tuple(scores.shape)} (layers, heads) but the model has {shape}; "
            "score this model with `ctxops compress heads`"
        )
    return scores


@torch.inference_mode()
def calibrate(model, sequences: Iterable[list[int]], progress: Callable[[], None] | None = None):
    """Summed squared activation norms of heads and MLP channels over the calibration sequences."""
    heads, channels = None, None
    for ids in sequences:
        trace = dense_forward(model, torch.tensor(ids, dtype=torch.long), record_norms=True)
        heads = trace.head_norms if heads is None else heads + trace.head_norms
        channels = trace.channel_norms if channels is None else channels + trace.channel_norms
        if progress is not None:
            progress()
    if heads is None:
        raise PruneError("no calibration sequences")
    return heads, channels


def prune_model(
    model: str,
    out: Path,
    heads_ratio: float,
    mlp_ratio: float,
    *,
    head_scores: str | None = None,
    threshold: float = RETRIEVAL_THRESHOLD,
    calibration_files: tuple[str, ...] = (),
    samples: int = 16,
    length: int = 1024,
    progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Prune ``model`` into ``out``; return what was kept (also written to ``out/prune.json``)."""
    check_ratio("heads", heads_ratio)
    check_ratio("mlp", mlp_ratio)
    llm, path = load_model(model)
    tokenizer = Tokenizer(path)
    retrieval = retrieval_scores(llm, path, head_scores)
    protect = retrieval * (retrieval > threshold)
    corpus = Corpus(tokenizer, DEFAULT_TASKS, (length,), calibration_files, seed=CALIBRATION_SEED)
    head_norms, channel_norms = calibrate(llm, corpus.items(samples), progress)
    head_imp, channel_imp = importance(llm, head_norms, channel_norms)
    plan = plan_pruning(
        head_imp, channel_imp, llm.config.num_key_value_heads, heads_ratio, mlp_ratio, protect
    )
    state = pruned_state_dict(llm, plan)
    config = pruned_config(read_config(path), plan, llm.config.head_dim)
    write_model_dir(out, config, state, path)
    kept_protected = sum(int(protect[layer, h] > 0) for layer, heads in enumerate(plan.heads) for h in heads)
    before = llm.config
    result = {
        "source": str(path),
        "asked": {"heads": heads_ratio, "mlp": mlp_ratio},
        "heads": {"before": before.num_attention_heads, "after": plan.num_heads},
        "kv_heads": {"before": before.num_key_value_heads, "after": plan.num_kv_heads},
        "intermediate_size": {"before": before.intermediate_size, "after": plan.intermediate_size},
        "removed": {
            "heads": 1 - plan.num_heads / before.num_attention_heads,
            "mlp": 1 - plan.intermediate_size / before.intermediate_size,
        },
        "retrieval_heads": {"total": int((protect > 0).sum()), "kept": kept_protected},
        "parameters": {"before": count_parameters(llm.state_dict()), "after": count_parameters(state)},
        "kept_heads": plan.heads,
        "kept_kv_heads": plan.kv_heads,
        "kept_channels": plan.channels,
        "calibration": {"samples": samples, "length": length, "text_files": list(calibration_files)},
    }
    if before.tie_word_embeddings:  # state_dict lists the tied matrix twice
        result["parameters"]["before"] -= llm.lm_head.weight.numel()
    (out / PRUNE_JSON).write_text(json.dumps(result, indent=1) + "\n")
    return result
