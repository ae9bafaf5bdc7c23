"""``ctxops eval --sweep``: several engine configurations, one run each, and one accuracy-vs-memory report.

``--sweep kv_cache_dtype=auto,int8,int4`` (repeatable; several axes give their cartesian product) runs each
configuration into its own resumable run directory under ``--out`` (named ``key=value,key=value``), then writes
``sweep.json`` and ``sweep.html`` beside them: per configuration the KV bytes per token, the tokens the pool holds,
the bytes a prompt token costs once a press dropped its share, the score (all samples pooled and per length) and
the effective context length, plus a chart with bytes per prompt token on the x axis and score / effective length
on the y axes.

This module knows engine settings as names and strings and run directories' summaries; it does not run models.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import itertools
import json
from typing import Any

from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.evals import charts
from ctxops.evals.config import format_length

SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"


class SweepError(ValueError):
    """A --sweep spec that does not name an engine setting or cannot be parsed."""


def parse_sweep(specs: tuple[str, ...] | list[str], config_cls: type) -> list[tuple[str, list[Any]]]:
    """``["kv_cache_dtype=auto,int8", "kv_compression_ratio=0.25,0.5"]`` -> typed axes of ``config_cls`` fields."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values.strip():
            raise SweepError(f"--sweep {spec!r}: write key=value1,value2")
        if key not in fields or key == "model":
            raise SweepError(f"--sweep {spec!r}: {key!r} is not an engine setting")
        axes.append((key, [_coerce(fields[key].type, v.strip(), key) for v in values.split(",")]))
    return axes


def _coerce(kind: str, text: str, key: str) -> Any:
    optional = kind.endswith("| None")
    if optional and text.lower() in ("none", ""):
        return None
    base = kind.removesuffix("| None").strip()
    try:
        if base == "int":
            return int(text)
        if base == "float":
            return float(text)
        if base == "bool":
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
    except (ValueError, KeyError) as exc:
        raise SweepError(f"--sweep {key}: {text!r} is not a {base}") from exc
    return text


def configurations(axes: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """The cartesian product of the axes, in order."""
    keys = [k for k, _ in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]


def run_name(overrides: dict[str, Any]) -> str:
    """A run directory name: ``kv_cache_dtype=int8,kv_press=snapkv`` (one directory level, whatever the values)."""
    return ",".join(f"{k}={_label(v)}" for k, v in overrides.items())


def _label(value: Any) -> str:
    """A value as one path segment (``none`` for None).

    A file path (``kv_head_policy=heads/policy.json``) becomes its file name plus a short hash of the whole path:
    one directory level, and two same-named files in different folders stay two runs.
    """
    if value is None:
        return "none"
    text = str(value)
    if "/" not in text and "\\" not in text:
        return text
    name = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "path"
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _pooled(summary: dict[str, Any]) -> float:
    cells = summary["overall"].values()
    total = sum(c["n"] for c in cells)
    return sum(c["score"] * c["n"] for c in cells) / total if total else 0.0


def head_policy_kept(
    policy: dict[str, Any], lengths: list[int], cache: dict[str, Any] | None = None
) -> float:
    """A head policy's kept share of a prompt, averaged over the run's lengths (it depends on the length).

    With the run's ``kv_cache`` (the split storage's real pool: retrieval-head blocks plus one ring per sequence)
    it is the bytes a sequence really holds over what a full cache would; else the policy's own estimate
    (:meth:`HeadPolicy.kept_fraction`, runs from before the split).
    """
    if cache and cache.get("num_rings"):
        size, block, ring, full = (
            cache["block_size"],
            cache["bytes_per_block"],
            cache["ring_bytes_per_sequence"],
            cache["full_bytes_per_token"],
        )
        return sum((-(-n // size) * block + ring) / (n * full) for n in lengths) / len(lengths)
    rule = HeadPolicy.from_dict(policy)
    return sum(rule.kept_fraction(n) for n in lengths) / len(lengths)


def full_bytes_per_token(cache: dict[str, Any]) -> int | None:
    """K/V bytes of one token without a head policy (a policy's pool holds fewer per token, plus rings)."""
    return cache.get("full_bytes_per_token") or cache.get("bytes_per_token")


def kept_share(target: dict[str, Any], lengths: list[int]) -> float:
    """The share of a prompt's KV a run's settings keep (run.json's ``target``): a press's, a head policy's, or 1."""
    engine = target.get("engine", {})
    if engine.get("kv_press"):
        return 1.0 - engine["kv_compression_ratio"]
    if target.get("kv_head_policy"):
        return head_policy_kept(target["kv_head_policy"], lengths, target.get("kv_cache"))
    return 1.0


def summarize_sweep(entries: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """``(overrides, summary.json, run.json)`` per configuration -> the sweep.json content."""
    rows = []
    for overrides, summary, run in entries:
        target = run.get("target", {})
        cache = target.get("kv_cache", {})
        engine = target.get("engine", {})
        per_token = cache.get("bytes_per_token")
        kept = kept_share(target, [int(n) for n in summary["overall"]])
        full = full_bytes_per_token(cache)
        rows.append(
            {
                "name": run_name(overrides),
                "settings": overrides,
                "engine": engine,
                "kv_press_query_aware": target.get("kv_press_query_aware"),
                "kv_bytes_per_token": per_token,
                # a press keeps (1 - ratio) of each prompt: what one prompt token costs on average
                "kv_bytes_per_prompt_token": None if full is None else full * kept,
                "kv_pool_tokens": cache.get("num_tokens"),
                "score": _pooled(summary),
                "scores_by_length": {n: c["score"] for n, c in summary["overall"].items()},
                "effective_length": summary["effective_length"],
                "num_samples": summary["num_samples"],
            }
        )
    base = rows[0] if rows else None
    for row in rows:
        if base and base["kv_bytes_per_prompt_token"] and row["kv_bytes_per_prompt_token"]:
            row["tokens_per_byte_vs_first"] = (
                base["kv_bytes_per_prompt_token"] / row["kv_bytes_per_prompt_token"]
            )
        row["score_vs_first"] = row["score"] - base["score"] if base else 0.0
    return {"configurations": rows, "lengths": sorted({int(n) for r in rows for n in r["scores_by_length"]})}


def chart(sweep: dict[str, Any]) -> str:
    """Score (left axis) and effective length (right axis) against KV bytes per prompt token, one point each."""
    plt = charts.plt
    rows = [r for r in sweep["configurations"] if r["kv_bytes_per_prompt_token"]]
    figure, axes = plt.subplots(figsize=(7, 4))
    xs = [r["kv_bytes_per_prompt_token"] for r in rows]
    axes.scatter(xs, [r["score"] for r in rows], color="black", zorder=3, label="score (all samples)")
    for r, x in zip(rows, xs, strict=True):
        axes.annotate(r["name"], (x, r["score"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    axes.set_xlabel("KV cache bytes per prompt token (a press counts only what it keeps)")
    axes.set_ylabel("score")
    axes.set_ylim(-2, 102)
    right = axes.twinx()
    right.scatter(
        xs,
        [r["effective_length"]["point_estimate"] or 0 for r in rows],
        marker="s",
        color="tab:blue",
        alpha=0.6,
        label="effective length",
    )
    right.set_ylabel("effective context length (tokens)")
    handles = axes.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    axes.legend(handles=handles, fontsize=7, loc="lower right", frameon=False)
    return charts._svg(figure)


def render(sweep: dict[str, Any]) -> str:
    """sweep.html: the table and the chart."""
    lengths = sweep["lengths"]
    head = "".join(f"<th>{format_length(n)}</th>" for n in lengths)
    body = []
    for r in sweep["configurations"]:
        eff = r["effective_length"]["point_estimate"]
        cells = "".join(
            f"<td>{r['scores_by_length'].get(str(n), r['scores_by_length'].get(n, float('nan'))):.1f}</td>"
            for n in lengths
        )
        ratio = r.get("tokens_per_byte_vs_first")
        body.append(
            f"<tr><td>{html.escape(r['name'])}</td><td>{r['kv_bytes_per_token']}</td>"
            f"<td>{r['kv_bytes_per_prompt_token']:.0f}</td>"
            f"<td>{'' if ratio is None else f'{ratio:.2f}x'}</td><td>{r['kv_pool_tokens']}</td>"
            f"<td>{r['score']:.1f}</td><td>{r['score_vs_first']:+.1f}</td>{cells}"
            f"<td>{format_length(eff) if eff else '-'}</td></tr>"
        )
    table = (
        "<table><tr><th>configuration</th><th>KV bytes/token</th><th>per prompt token</th>"
        "<th>tokens per byte vs first</th>"
        f"<th>pool tokens</th><th>score</th><th>vs first</th>{head}<th>effective length</th></tr>"
        + "".join(body)
        + "</table>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ctxops eval sweep</title>'
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body><h1>ctxops eval sweep</h1>"
        f'{table}<h2>Accuracy vs memory</h2><div class="chart" id="chart-sweep">{chart(sweep)}</div>'
        f"<h2>Data</h2><pre>{html.escape(json.dumps(sweep, indent=2, default=str))}</pre></body></html>"
    )
