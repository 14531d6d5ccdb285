"""Back-off: doubles from the initial wait, never above the cap, jittered between half and all of it."""

from __future__ import annotations

from boneage.gateway.config import RetryConfig
from boneage.gateway.retry import backoff_s


def test_backoff_doubles_then_stays_at_the_cap():
    retry = RetryConfig(initial_backoff_s=1, max_backoff_s=30)
    highest = [backoff_s(n, retry, rand=lambda: 1.0) for n in range(1, 9)]
    assert highest == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_s(1000, retry, rand=lambda: 1.0) == 30


def test_jitter_keeps_between_half_and_all_of_the_wait():
    retry = RetryConfig(initial_backoff_s=2, max_backoff_s=300)
    assert backoff_s(3, retry, rand=lambda: 0.0) == 4
    assert backoff_s(3, retry, rand=lambda: 0.5) == 6
    assert backoff_s(0, retry) == 0
