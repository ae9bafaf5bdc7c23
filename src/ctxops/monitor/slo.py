"""SLO attainment, error budget and burn rates over the request log, with multiwindow multi-burn-rate alerts.

Burn rate is the bad share of valid requests in a window divided by the error budget (1 - target): at 1x the budget
lasts exactly the period. Alerts follow the Google SRE Workbook ("Alerting on SLOs"): a condition fires only when
both its long and its short window burn faster than its rate, the short window being 1/12 of the long one so the
alert resets soon after the problem stops. For a 30-day period the rates are 14.4x over 1 h and 5 min (2% of the
budget in an hour: page), 6x over 6 h and 30 min (5% in 6 hours: page) and 1x over 3 days and 6 h (10% in 3 days:
ticket); for another period each rate is rescaled so it still means that share of the budget. A window without
valid requests has no burn rate and fires nothing. This module knows counts and windows; the store gives the rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from ctxops.monitor.slo_config import Objective, SLOConfig
from ctxops.store import Store
from ctxops.store.requests import count_flagged, window_filter
from ctxops.store.schema import requests

GENERATION = ("chat.completions", "completions")
_H = 3600.0
# (severity, share of the budget, long window, short window): the SRE Workbook's three conditions
CONDITIONS = (("page", 0.02, _H, _H / 12), ("page", 0.05, 6 * _H, 30 * 60), ("ticket", 0.10, 72 * _H, 6 * _H))


def _label(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@dataclass(slots=True)
class BurnAlert:
    """One multiwindow condition: fires when both windows burn faster than ``burn_rate``."""

    severity: str  # page | ticket
    long_window: str
    short_window: str
    burn_rate: float  # the threshold, x budget rate
    long_burn: float | None
    short_burn: float | None
    firing: bool


@dataclass(slots=True)
class ObjectiveStatus:
    """Where one objective stands at the end of its period."""

    name: str
    kind: str
    target: float
    valid: int  # requests the objective covers in the period
    bad: int
    attainment: float | None  # good / valid over the period
    error_budget_left: float | None  # 1 - (bad / valid) / budget; negative once overspent
    burn_rates: dict[str, float | None]  # window label -> burn rate
    alerts: list[BurnAlert]

    @property
    def status(self) -> str:
        """``page``, ``ticket``, ``ok``, or ``no data``."""
        for severity in ("page", "ticket"):
            if any(a.firing and a.severity == severity for a in self.alerts):
                return severity
        return "no data" if self.valid == 0 else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


def _valid_and_bad(objective: Objective) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
    """Which rows the objective covers, and which of those are bad."""
    c = requests.c
    valid = [c.endpoint.in_(GENERATION)]
    if objective.model:
        valid.append(c.model == objective.model)
    if objective.max_prompt_tokens is not None:
        valid.append(c.prompt_tokens <= objective.max_prompt_tokens)
    if objective.kind == "latency":
        metric = c[objective.metric or "ttft_s"]
        valid += [c.status < 400, metric.is_not(None)]
        return sa.and_(*valid), metric > objective.threshold_s
    if objective.kind == "error_rate":
        return sa.and_(*valid), c.status >= 500
    return sa.and_(*valid), sa.or_(c.status >= 500, c.status == 429)


def evaluate_objective(store: Store, objective: Objective, period_s: float, now: float) -> ObjectiveStatus:
    """Attainment and budget over ``[now - period_s, now)``, burn rates and alerts over the alert windows."""
    valid, bad = _valid_and_bad(objective)
    budget = objective.error_budget

    def burn(seconds: float) -> tuple[int, int, float | None]:
        n_bad, n = count_flagged(store, sa.and_(window_filter(now - seconds, now), valid), bad)
        return n_bad, n, ((n_bad / n) / budget if n else None)

    n_bad, n, period_burn = burn(period_s)
    rates: dict[str, float | None] = {}
    alerts = []
    for severity, share, long_s, short_s in CONDITIONS:
        threshold = share * period_s / long_s  # 14.4, 6, 1 for a 30-day period
        long_burn, short_burn = burn(long_s)[2], burn(short_s)[2]
        rates[_label(long_s)], rates[_label(short_s)] = long_burn, short_burn
        firing = long_burn is not None and short_burn is not None and min(long_burn, short_burn) > threshold
        alerts.append(
            BurnAlert(severity, _label(long_s), _label(short_s), threshold, long_burn, short_burn, firing)
        )
    return ObjectiveStatus(
        name=objective.name,
        kind=objective.kind,
        target=objective.target,
        valid=n,
        bad=n_bad,
        attainment=(1 - n_bad / n) if n else None,
        error_budget_left=(1 - period_burn) if period_burn is not None else None,
        burn_rates=dict(sorted(rates.items(), key=lambda kv: _seconds(kv[0]))),
        alerts=alerts,
    )


def _seconds(label: str) -> float:
    return float(label[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[label[-1]]


def evaluate_slos(store: Store, config: SLOConfig, now: float) -> list[ObjectiveStatus]:
    """Every objective of ``config`` at time ``now`` (unix seconds)."""
    return [evaluate_objective(store, o, config.period_s, now) for o in config.objectives]
