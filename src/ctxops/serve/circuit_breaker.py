"""A circuit breaker for one upstream: after repeated failures, send requests elsewhere until a cool-down passes.

The breaker is ``closed`` while the upstream works. ``failure_threshold`` failures in a row open it: for
``cooldown_s`` seconds the gateway ranks that upstream last (it is still tried when nothing else is left). When
the cool-down is over the breaker is ``half_open``: the next request that reaches it is the single probe, and
while that probe runs the upstream stays last for everyone else. A success (probe or not) closes the breaker; a
failure while open or half-open opens it again for a fresh cool-down. An attempt that ends without a verdict (the
client went away, the upstream said 429) frees the probe slot and changes nothing else.

The clock is injected, so the class is pure and tested without sleeping. This module knows counts and seconds,
not HTTP or upstreams.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

DEFAULT_FAILURE_THRESHOLD = 5  # consecutive failures that open the breaker
DEFAULT_COOLDOWN_S = 30.0  # seconds an open breaker keeps its upstream at the back of the ranking


class CircuitState(StrEnum):
    """Where a breaker stands; the value is what logs show."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with one half-open probe; not thread-safe (one event loop owns it)."""

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError(
                f"a circuit breaker needs failure_threshold >= 1 and cooldown_s >= 0, "
                f"got {failure_threshold} and {cooldown_s}"
            )
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0  # consecutive failures since the last success
        self._opened_at: float | None = None  # clock time the breaker last opened; None while closed
        self._probing = False  # a half-open probe is in flight

    @property
    def state(self) -> CircuitState:
        """Closed, open (cooling down) or half-open (cool-down over, or its probe in flight)."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._probing or self._cooled_down():
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allows(self) -> bool:
        """Whether a request may go here ahead of healthy upstreams: closed, or half-open with no probe out."""
        return self._opened_at is None or (not self._probing and self._cooled_down())

    def begin(self) -> bool:
        """An attempt starts; True when it is the half-open probe (pass that to :meth:`release`)."""
        if self._opened_at is not None and self.allows():
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """The upstream answered: close the breaker."""
        self.failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """The upstream failed: count it; open (again) at the threshold or when not closed."""
        self.failures += 1
        if self._opened_at is not None or self.failures >= self.failure_threshold:
            self._opened_at = self.clock()
        self._probing = False

    def release(self, probe: bool) -> None:
        """An attempt ended with no verdict; if it was the probe, the next request may probe instead."""
        if probe:
            self._probing = False

    def _cooled_down(self) -> bool:
        assert self._opened_at is not None
        return self.clock() - self._opened_at >= self.cooldown_s
