"""What ``ctxops compress heads`` writes: scores.json, heatmap.svg and head_policy.json in one directory.

``scores.json`` holds every (layer, head) retrieval score, how they were measured and the classification at the
chosen threshold; ``heatmap.svg`` draws the scores (layers down, heads across); ``head_policy.json`` is the KV
policy the engine reads (``--kv-head-policy``). This module knows files and charts, not models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ctxops.compress.heads import HeadScores
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.evals import charts

SCORES_JSON = "scores.json"
HEATMAP_SVG = "heatmap.svg"
POLICY_JSON = "head_policy.json"


def heatmap(scores: HeadScores, threshold: float) -> str:
    """Retrieval score per (layer, head) as an SVG; retrieval heads (above ``threshold``) are outlined."""
    plt = charts.plt
    values = scores.scores.tolist()
    layers, heads = len(values), len(values[0])
    figure, axes = plt.subplots(figsize=(1.5 + 0.5 * heads, 1.0 + 0.4 * layers))
    image = axes.imshow(values, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(scores.scores.max())))
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            weight = "bold" if value > threshold else "normal"
            axes.text(
                j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white", weight=weight
            )
    axes.set_xticks(range(heads), [str(h) for h in range(heads)])
    axes.set_yticks(range(layers), [str(n) for n in range(layers)])
    axes.set_xlabel("attention head")
    axes.set_ylabel("layer")
    axes.set_title(f"retrieval score (bold: > {threshold:g})", fontsize=9)
    figure.colorbar(image, ax=axes)
    return charts._svg(figure)


def write_heads(
    out: Path, scores: HeadScores, policy: HeadPolicy, threshold: float, measured: dict[str, Any]
) -> dict[str, Any]:
    """Write the three files; return the scores.json content."""
    out.mkdir(parents=True, exist_ok=True)
    retrieval = scores.retrieval_heads(threshold)
    content = {
        "scores": [[round(float(x), 4) for x in row] for row in scores.scores],
        "threshold": threshold,
        "retrieval_heads": [[layer, head] for layer, head in retrieval.nonzero().tolist()],
        "num_retrieval_heads": int(retrieval.sum()),
        "num_heads": retrieval.numel(),
        "num_probes": scores.num_probes,
        "answer_tokens": scores.answer_tokens,
        "answer_accuracy": round(scores.answer_accuracy, 4),
        "measured": measured,
        "kv_policy": policy.to_dict(),
    }
    (out / SCORES_JSON).write_text(json.dumps(content, indent=1) + "\n")
    (out / HEATMAP_SVG).write_text(heatmap(scores, threshold))
    (out / POLICY_JSON).write_text(json.dumps(policy.to_dict(), indent=1) + "\n")
    return content
