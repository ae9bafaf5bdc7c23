"""``ctxops monitor run``: every check on its schedule in one long-lived process, until SIGTERM.

Each check (drift, SLOs, error spike) runs when due and turns its findings into incidents; the outbox is delivered
between checks. All state lives in the store, never in the process: incidents are deduplicated by key and
notifications are queued with them, so a restarted monitor picks up where the last one stopped (undelivered
notifications are sent, a condition that persists stays one incident). A check that fails (the database is briefly
unreachable) is logged and tried again at its next turn; it does not stop the others. This module knows schedules;
the checks and the store do the work.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ctxops.monitor.drift import detect_drift
from ctxops.monitor.effective_length import beyond_effective_length
from ctxops.monitor.notify import DeliveryConfig, deliver_due, notifications
from ctxops.monitor.rules import Finding, beyond_findings, drift_findings, error_spike_finding, slo_findings
from ctxops.monitor.run_config import MonitorConfig
from ctxops.monitor.slo import GENERATION, evaluate_slos
from ctxops.monitor.windows import parse_window
from ctxops.store import Store, StoreError
from ctxops.store.incidents import open_incident
from ctxops.store.requests import count_flagged, window_filter
from ctxops.store.schema import requests

logger = logging.getLogger(__name__)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON, and Postgres' json type, have no Infinity or NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class MonitorRunner:
    """The checks of one :class:`MonitorConfig` over one store."""

    def __init__(self, store: Store, config: MonitorConfig, delivery: DeliveryConfig | None = None) -> None:
        self.store, self.config = store, config
        self.delivery = delivery or DeliveryConfig()
        self.jobs: list[tuple[str, float, Callable[[float], None]]] = []
        if config.drift:
            self.jobs.append(("drift", config.drift.every_s, self.check_drift))
        if config.slo:
            self.jobs.append(("slo", config.slo_every_s, self.check_slo))
        if config.error_spike:
            self.jobs.append(("error_spike", config.error_spike.every_s, self.check_error_spike))
        self.jobs.append(("deliver", config.deliver_every_s, self.deliver))

    def run(self, stop: threading.Event, tick_s: float = 0.5) -> None:
        """Run due jobs until ``stop`` is set, then deliver what is due one last time."""
        next_due = {name: 0.0 for name, _, _ in self.jobs}
        while not stop.is_set():
            for name, every_s, job in self.jobs:
                now = time.time()
                if now >= next_due[name] and not stop.is_set():
                    self._run_job(name, job, now)
                    next_due[name] = now + every_s
            stop.wait(tick_s)
        self._run_job("deliver", self.deliver, time.time())

    def _run_job(self, name: str, job: Callable[[float], None], now: float) -> None:
        try:
            job(now)
        except (StoreError, sa.exc.SQLAlchemyError) as exc:
            logger.error(
                "monitor: %s failed (%s); trying again at its next turn", name, str(exc).splitlines()[0]
            )

    def open_incidents(self, findings: list[Finding], now: float) -> list[int]:
        """Open (or refresh) one incident per finding; returns the ids of new ones."""
        new = []
        for finding in findings:
            incident = json_safe(finding.incident())
            notify = notifications(list(self.config.webhooks), "opened", incident)
            incident_id, created = open_incident(self.store, finding.dedup_key, finding.rule, finding.title,
                                                 incident["details"], now, notify)  # fmt: skip
            if created:
                logger.warning("monitor: incident %d opened: %s", incident_id, finding.title)
                new.append(incident_id)
        return new

    def check_drift(self, now: float) -> None:
        """Drift and the share beyond effective length, over windows relative to ``now``."""
        job = self.config.drift
        assert job is not None
        reference, current = parse_window(job.reference, now), parse_window(job.current, now)
        metrics = detect_drift(self.store, reference, current, job.config, job.model, job.by)
        shares = beyond_effective_length(
            self.store, reference, current, job.config.beyond_threshold, job.model
        )
        self.open_incidents(
            drift_findings(metrics, job.model or "all traffic") + beyond_findings(shares), now
        )

    def check_slo(self, now: float) -> None:
        """Burn-rate alerts of every objective."""
        assert self.config.slo is not None
        self.open_incidents(slo_findings(evaluate_slos(self.store, self.config.slo, now)), now)

    def check_error_spike(self, now: float) -> None:
        """5xx share of generation requests over the last window."""
        job = self.config.error_spike
        assert job is not None
        where = sa.and_(window_filter(now - job.window_s, now), requests.c.endpoint.in_(GENERATION))
        errors, total = count_flagged(self.store, where, requests.c.status >= 500)
        window = f"{job.window_s:g} s"
        finding = error_spike_finding(
            errors, total, job.max_error_rate, job.min_errors, "all traffic", window
        )
        self.open_incidents(finding, now)

    def deliver(self, now: float) -> None:
        """Send the notifications that are due."""
        delivered, failed = deliver_due(self.store, self.delivery, now)
        if failed:
            logger.warning("monitor: %d notifications failed (kept, retried with backoff)", failed)
        if delivered:
            logger.info("monitor: %d notifications delivered", delivered)
