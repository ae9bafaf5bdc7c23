"""Rules: turn what the checks found into findings, each of which opens (or keeps open) one incident.

One finding per condition, keyed so that a condition that persists is one incident: drift is one finding per
scope (the model, or all traffic) listing every drifting metric, so a shift that moves TTFT and end-to-end latency
together opens one incident, not two; an SLO burn alert is one per objective and severity; an error spike is one
per scope. This module knows results and thresholds, not the store's tables or HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctxops.monitor.drift import MetricDrift
from ctxops.monitor.effective_length import BeyondEffectiveLength
from ctxops.monitor.slo import ObjectiveStatus


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition worth an incident."""

    dedup_key: str
    rule: str  # drift | beyond_effective_length | slo_burn | error_spike | canary_regression
    title: str
    details: dict[str, Any] = field(default_factory=dict)

    def incident(self) -> dict[str, Any]:
        """The incident fields a notification carries."""
        return {"dedup_key": self.dedup_key, "rule": self.rule, "title": self.title, "details": self.details}


def drift_findings(metrics: list[MetricDrift], scope: str) -> list[Finding]:
    """One finding per group (or for ``scope``) in which any metric drifted."""
    by_group: dict[str, list[MetricDrift]] = {}
    for m in metrics:
        if m.drift:
            by_group.setdefault(m.group or scope, []).append(m)
    return [
        Finding(
            f"drift:{group}",
            "drift",
            f"traffic drifted for {group}: {', '.join(m.name for m in drifted)}",
            {"metrics": [m.to_dict() for m in drifted]},
        )
        for group, drifted in by_group.items()
    ]


def beyond_findings(shares: list[BeyondEffectiveLength]) -> list[Finding]:
    """One finding per model whose share of prompts beyond its effective length raised the alert."""
    return [
        Finding(
            f"beyond_effective_length:{b.model}",
            "beyond_effective_length",
            f"{b.share_current:.1%} of prompts to {b.model} exceed its effective length {b.effective_length}",
            b.to_dict(),
        )
        for b in shares
        if b.alert and b.share_current is not None
    ]


def slo_findings(statuses: list[ObjectiveStatus]) -> list[Finding]:
    """One finding per objective and severity with a firing burn-rate alert."""
    out = []
    for status in statuses:
        for alert in status.alerts:
            if alert.firing:
                out.append(Finding(
                    f"slo:{status.name}:{alert.severity}",
                    "slo_burn",
                    f"SLO {status.name} burns its error budget at {alert.long_burn:.3g}x over {alert.long_window} "
                    f"and {alert.short_burn:.3g}x over {alert.short_window} ({alert.severity})",
                    status.to_dict(),
                ))  # fmt: skip
    return out


def error_spike_finding(errors: int, total: int, max_error_rate: float, min_errors: int, scope: str,
                        window: str) -> list[Finding]:  # fmt: skip
    """A finding when at least ``min_errors`` of ``total`` failed and their share exceeds ``max_error_rate``."""
    if errors < min_errors or not total or errors / total <= max_error_rate:
        return []
    title = f"error spike for {scope}: {errors} of {total} requests failed (5xx) in the last {window}"
    return [Finding(f"error_spike:{scope}", "error_spike", title, {"errors": errors, "total": total})]
