"""The circuit breaker on its own, with a hand-driven clock."""

from __future__ import annotations

import pytest

from ctxops.serve.circuit_breaker import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30.0, clock=Clock())
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success in between starts the count again
    breaker.failure()
    breaker.failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allows()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allows()


def test_one_probe_after_the_cooldown_and_a_success_closes():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30.0, clock=clock)
    breaker.failure()
    clock.now += 29.9
    assert breaker.state is CircuitState.OPEN and not breaker.begin()
    clock.now += 0.1
    assert breaker.state is CircuitState.HALF_OPEN and breaker.allows()
    assert breaker.begin()  # the probe
    assert not breaker.allows() and not breaker.begin()  # nobody else probes while it runs
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.success()
    assert breaker.state is CircuitState.CLOSED and breaker.failures == 0 and breaker.allows()


def test_a_failed_probe_opens_again_for_a_fresh_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10.0, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 10.0
    assert breaker.begin()
    clock.now += 3.0  # the probe took 3 s to fail
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    clock.now += 9.9
    assert not breaker.allows()
    clock.now += 0.1
    assert breaker.allows()


def test_a_probe_without_verdict_frees_the_slot():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0, clock=clock)
    breaker.failure()
    clock.now += 5.0
    assert breaker.begin()
    breaker.release(probe=False)  # another attempt (a last resort) ending changes nothing
    assert not breaker.allows()
    breaker.release(probe=True)  # the probe's client went away: the next request probes
    assert breaker.allows() and breaker.state is CircuitState.HALF_OPEN


def test_a_last_resort_success_while_open_closes():
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=30.0, clock=Clock())
    breaker.failure()
    assert not breaker.begin()  # tried because nothing else was left: not a probe
    breaker.success()
    assert breaker.state is CircuitState.CLOSED


def test_rejects_nonsense_settings():
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_s=-1)
