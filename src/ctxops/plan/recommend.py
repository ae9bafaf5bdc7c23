"""``--recommend``: the cheapest setups (GPU x count x weights x KV dtype) that meet the targets.

Every catalogue GPU is tried at 1, 2, 4 and 8 devices under tensor parallelism, with every weight format and
KV dtype; setups that fit memory, concurrency and latency targets are sorted by cost per million output tokens.
This module knows search and ordering; memory and speed come from :func:`make_plan`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ctxops.plan.dtypes import KvDtype, WeightDtype
from ctxops.plan.hardware import CATALOGUE, Device
from ctxops.plan.planner import Plan, PlanRequest, make_plan

GPU_COUNTS = (1, 2, 4, 8)
KV_DTYPES = (KvDtype.BF16, KvDtype.FP8, KvDtype.INT8, KvDtype.INT4)


def candidates(
    base: PlanRequest,
    devices: Iterable[Device] | None = None,
    weights: Iterable[WeightDtype] = tuple(WeightDtype),
    kv_dtypes: Iterable[KvDtype] = KV_DTYPES,
    counts: Iterable[int] = GPU_COUNTS,
) -> list[PlanRequest]:
    """Every setup to try: ``base`` with the device, count (= TP), weights and KV dtype varied."""
    devices = list(CATALOGUE.values()) if devices is None else list(devices)
    kv_dtypes, weights, counts = list(kv_dtypes), list(weights), list(counts)
    return [
        replace(base, device=device, num_gpus=count, tp=count, weights=weight, kv_dtype=kv)
        for device in devices
        for count in counts
        for weight in weights
        for kv in kv_dtypes
    ]


def recommend(base: PlanRequest, limit: int = 10, **space) -> list[Plan]:
    """The ``limit`` cheapest fitting setups for ``base``'s model, context, concurrency and targets.

    Args:
        base: the model, max_model_len, concurrency, targets, efficiencies and overheads to keep.
        limit: how many setups to return.
        **space: narrows the search (``devices``, ``weights``, ``kv_dtypes``, ``counts``; see :func:`candidates`).

    Returns:
        Fitting plans, cheapest per million output tokens first (ties: fewer GPUs, then higher precision).
    """
    plans = [make_plan(request) for request in candidates(base, **space)]
    fitting = [plan for plan in plans if plan.fits]
    weight_rank = {w: i for i, w in enumerate(WeightDtype)}  # bf16 first: prefer precision on ties
    kv_rank = {k: i for i, k in enumerate(KvDtype)}
    fitting.sort(
        key=lambda p: (
            round(p.cost_per_million, 6),
            p.request.num_gpus,
            weight_rank[p.request.weight_dtype],
            kv_rank[p.request.kv_dtype],
        )
    )
    return fitting[:limit]
