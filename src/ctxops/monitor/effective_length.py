"""The share of traffic whose prompt is longer than the served model's effective context length.

The effective length is the one the model's latest ctxops eval run measured (the ``eval_runs`` table; its 95%
lower bound, RULER's point estimate when no bound was reached). Beyond it the model still answers, but no longer
reliably uses what it was given, which no latency or drift metric shows. Only generation requests (chat and text
completions) count. The alert fires when the 95% Wilson lower bound of the current share exceeds the threshold, so a
handful of requests cannot raise it. This module knows counts and intervals; the store gives it the rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from ctxops.evals.stats import wilson
from ctxops.monitor.windows import Window
from ctxops.store import Store
from ctxops.store.eval_runs import latest_run
from ctxops.store.requests import count_above, distinct_values, window_filter
from ctxops.store.schema import requests

GENERATION = ("chat.completions", "completions")
NO_EVAL = "no eval run of this model in the store: import one with --eval-run RUN_DIR"


@dataclass(slots=True)
class BeyondEffectiveLength:
    """One model's share of prompts beyond its effective length, in both windows."""

    model: str
    effective_length: int | None
    eval_run: str | None
    share_reference: float | None
    share_current: float | None
    ci_current: tuple[float, float] | None  # 95% Wilson interval of share_current
    n_reference: int
    n_current: int
    threshold: float
    alert: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _share(store: Store, window: Window, model: str, length: int) -> tuple[float | None, int, int]:
    where = sa.and_(
        window_filter(window.start, window.end, {"model": model}), requests.c.endpoint.in_(GENERATION)
    )
    above, n = count_above(store, "prompt_tokens", length, where)
    return (above / n if n else None), above, n


def beyond_effective_length(
    store: Store, reference: Window, current: Window, threshold: float, model: str | None = None
) -> list[BeyondEffectiveLength]:
    """The share for ``model``, or for every model seen in the current window."""
    models = [model] if model else distinct_values(store, "model", window_filter(current.start, current.end))
    out = []
    for name in models:
        run = latest_run(store, name)
        if run is None or run["effective_length"] is None:
            note = NO_EVAL if run is None else f"eval run {run['run_id']} found no effective length"
            out.append(BeyondEffectiveLength(name, None, run and run["run_id"], None, None, None, 0, 0, threshold,
                                             False, note))  # fmt: skip
            continue
        length = int(run["effective_length"])
        share_ref, _, n_ref = _share(store, reference, name, length)
        share_cur, above_cur, n_cur = _share(store, current, name, length)
        ci = None
        if n_cur:
            low, high = wilson(above_cur / n_cur, n_cur)
            ci = (float(low), float(high))
        alert = bool(ci is not None and ci[0] > threshold)
        out.append(BeyondEffectiveLength(name, length, run["run_id"], share_ref, share_cur, ci, n_ref, n_cur,
                                         threshold, alert))  # fmt: skip
    return out
