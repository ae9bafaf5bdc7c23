"""The gateway's view of each upstream's health: its circuit breaker, its requests in flight, every attempt's outcome.

One object serves every way the gateway reaches an upstream (the relay of :mod:`ctxops.serve.backends.upstream`
and the ``ensemble`` policy's fan-out), so an arm asked by an ensemble feeds the same breaker and counts against
the same ``max_concurrency`` as one asked alone. Outcomes are the strings ``/metrics`` counts: ``ok``, ``retried``,
``rejected``, ``failed``, ``aborted``. Breakers and counts are keyed by upstream URL; reloaded routes may name new
upstreams, which start at zero and closed. It knows URLs, breakers and outcomes, not HTTP or routes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from ctxops.serve.circuit_breaker import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_FAILURE_THRESHOLD,
    CircuitBreaker,
    CircuitState,
)
from ctxops.serve.config import UpstreamSpec
from ctxops.serve.router import Choice

logger = logging.getLogger("ctxops.serve")
AttemptHook = Callable[
    [str, str, bool], None
]  # (upstream name, outcome, circuit not closed) once per attempt


class UpstreamHealth:
    """Breakers and in-flight counts per upstream URL; ``on_attempt`` is told how each attempt ended."""

    def __init__(
        self, failure_threshold: int = DEFAULT_FAILURE_THRESHOLD, cooldown_s: float = DEFAULT_COOLDOWN_S
    ) -> None:
        self.in_flight: dict[str, int] = defaultdict(int)  # requests forwarded and not finished
        self.breakers: dict[str, CircuitBreaker] = defaultdict(
            lambda: CircuitBreaker(failure_threshold, cooldown_s)
        )
        self.on_attempt: AttemptHook = lambda upstream, outcome, circuit_open: None

    def healthy_first(self, plan: list[Choice]) -> list[Choice]:
        """The plan with open breakers moved last, then upstreams at their ``max_concurrency`` (stable sort)."""
        return sorted(
            plan,
            key=lambda c: (
                not self.breakers[c.arm.upstream.url].allows(),
                self.in_flight[c.arm.upstream.url] >= c.arm.upstream.max_concurrency,
            ),
        )

    def allows(self, upstream: UpstreamSpec) -> bool:
        """Whether a request may go to ``upstream`` now (its breaker closed, or half-open with no probe out)."""
        return self.breakers[upstream.url].allows()

    def begin(self, upstream: UpstreamSpec) -> bool:
        """An attempt at ``upstream`` starts; True when it is the breaker's half-open probe."""
        probe = self.breakers[upstream.url].begin()
        if probe:
            logger.info("upstream %s: cool-down over; probing it with one request", upstream.name)
        return probe

    def settle(self, upstream: UpstreamSpec, outcome: str, healthy: bool | None, probe: bool) -> None:
        """One attempt ended: feed the breaker (None: no verdict), log a state change, count the outcome."""
        breaker = self.breakers[upstream.url]
        before = breaker.state
        if healthy is None:
            breaker.release(probe)
        elif healthy:
            breaker.success()
        else:
            breaker.failure()
        after = breaker.state
        if after is not before:
            if after is CircuitState.CLOSED:
                logger.info("upstream %s: circuit closed (it answered again)", upstream.name)
            elif before is CircuitState.CLOSED:
                logger.warning(
                    "upstream %s: circuit open after %d failures in a row; ranked last for %.0f s",
                    upstream.name, breaker.failures, breaker.cooldown_s,
                )  # fmt: skip
            elif after is CircuitState.OPEN:
                logger.warning(
                    "upstream %s: the probe failed; circuit open again for %.0f s",
                    upstream.name,
                    breaker.cooldown_s,
                )
        self.on_attempt(upstream.name, outcome, after is not CircuitState.CLOSED)
