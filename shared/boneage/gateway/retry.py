"""Capped exponential back-off with jitter, for uploads (S3 down), queue polls and PACS deliveries."""

from __future__ import annotations

import random
from collections.abc import Callable

from boneage.gateway.config import RetryConfig


def backoff_s(attempt: int, retry: RetryConfig, *, rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt`` (1 = the first retry): ``initial * 2**(attempt-1)``
    capped at ``max_backoff_s``, then "equal jitter" (between half and all of it), so that many
    gateways cut off by one outage do not all come back in the same second."""
    if attempt < 1:
        return 0.0
    ceiling = min(retry.max_backoff_s, retry.initial_backoff_s * 2.0 ** min(attempt - 1, 60))
    return ceiling / 2 + rand() * ceiling / 2
