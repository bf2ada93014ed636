"""The retry policy value and the pure "should this attempt be retried" decision."""

from __future__ import annotations

from typing import Any

import attrs

from membermkt.errors import PlatformError, RateLimitError, TransportError, UsageError

__all__ = ["RetryPolicy", "should_retry", "wait_seconds"]


@attrs.frozen(slots=True, kw_only=True)
class RetryPolicy:
    """How many attempts and how long to wait between them.

    Attributes:
        attempts: total attempts per call (1 = no retry).
        backoff: first wait after a transient failure, in seconds (doubles each time).
        max_backoff: cap of one wait.
        throttle_wait: wait after a throttling errcode without a hint.
        max_throttle_wait: cap of a throttling wait (45011's 10 s hint is waited this long;
            45009 and 45066 are not retried at all, see :func:`should_retry`).
        jitter: fraction of random jitter added to each wait.
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    throttle_wait: float = 1.0
    max_throttle_wait: float = 5.0
    jitter: float = 0.1

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("RetryPolicy.attempts must be >= 1")


def should_retry(exc: BaseException, *, idempotent: bool, policy: RetryPolicy) -> bool:
    """Whether a failed attempt may be repeated.

    Transient and throttling platform errors (``retryable``) are retried, throttling after a
    longer wait (see :func:`wait_seconds`) — except a throttle marked ``surface`` (45009:
    daily quota, "stop calling this API"; 45066: the same ``clientmsgid`` again within a
    minute, ref §1.4, §1.10), which no wait of ``max_throttle_wait`` can get past: it is
    raised at once, so the caller defers (or waits the minute) without spending calls. A
    transport failure is retried when the request cannot have reached the platform, or when
    the call is idempotent.
    """
    if isinstance(exc, RateLimitError) and exc.surface:
        return False
    if isinstance(exc, PlatformError):
        return exc.retryable
    if isinstance(exc, TransportError):
        return idempotent or not exc.ambiguous
    return False


def wait_seconds(exc: BaseException | None, attempt: int, policy: RetryPolicy, rng: Any) -> float:
    """The wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    if isinstance(exc, RateLimitError):
        base = min(exc.retry_after or policy.throttle_wait, policy.max_throttle_wait)
    else:
        base = min(policy.backoff * (2 ** (attempt - 1)), policy.max_backoff)
    jitter: float = rng.random() * policy.jitter * base if policy.jitter else 0.0
    return base + jitter
