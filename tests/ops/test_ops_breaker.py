"""The object store's circuit breaker as a state machine (services/storage/breaker.py), on a clock
the test moves: closed until an outage answer, open (fail fast) for the cooldown, then one probe
at a time; the probe's outcome closes or re-opens it. The outage behaviour against a real store is
in test_ops_probes.py."""

from __future__ import annotations

import pytest

from services.storage.base import StoreUnavailable
from services.storage.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def opened() -> tuple[Clock, CircuitBreaker]:
    """A breaker (cooldown 5 s) that has just seen the store refuse a connection."""
    clock = Clock()
    breaker = CircuitBreaker(cooldown_s=5, clock=clock)
    breaker.record_failure("ConnectionRefused")
    return clock, breaker


def test_an_outage_opens_the_circuit_and_calls_fail_fast_until_the_cooldown() -> None:
    clock, breaker = opened()
    assert breaker.state == State.open
    clock.now += 4.9
    with pytest.raises(StoreUnavailable, match="circuit open"):
        breaker.before_call()


def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_circuit() -> None:
    clock, breaker = opened()
    clock.now += 5
    breaker.before_call()  # the probe
    with pytest.raises(StoreUnavailable):
        breaker.before_call()  # a second caller while the probe is out
    breaker.record_success()
    assert breaker.state == State.closed
    breaker.before_call()


def test_a_failed_probe_opens_the_circuit_for_another_cooldown() -> None:
    clock, breaker = opened()
    clock.now += 6
    breaker.before_call()
    breaker.record_failure("ConnectionRefused")
    clock.now += 4
    with pytest.raises(StoreUnavailable):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()


def test_an_abandoned_probe_lets_the_next_caller_probe() -> None:
    clock, breaker = opened()
    clock.now += 5
    breaker.before_call()
    breaker.abandon_probe()  # e.g. the client's upload body failed: says nothing about the store
    breaker.before_call()
    assert breaker.state == State.half_open


def test_each_state_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker = CircuitBreaker(cooldown_s=5, clock=clock)
    with caplog.at_level("INFO", logger="dmask.storage"):
        for _ in range(3):
            breaker.record_failure("ConnectionRefused")
        for _ in range(3):
            breaker.record_success()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "circuit open" in messages[0] and "circuit closed" in messages[1]
    assert all(r.levelname == "WARNING" for r in caplog.records)
