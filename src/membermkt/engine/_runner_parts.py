"""Value types of the campaign runner: clock, retry policy, run result, the hand-off
policy port, the rate limiter. Import them from :mod:`membermkt.engine.runner`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from membermkt.core.delivery import DeliveryRecord
from membermkt.errors import UsageError

__all__ = [
    "NO_HANDOFF_CHECKS",
    "DeliveryRetry",
    "HandOffPolicy",
    "NoHandOffChecks",
    "RunResult",
    "SystemClock",
]


@runtime_checkable
class HandOffPolicy(Protocol):
    """Re-checks deliveries at hand-off (DESIGN §4.1: policy is evaluated twice).

    ``check`` gets the deliveries about to be handed to the channel and ``now``; it returns
    ``{key: reason}`` for those that no longer qualify (they end ``skipped(reason)``).
    """

    def check(self, records: Sequence[DeliveryRecord], now: dt.datetime) -> dict[str, str]:
        """Reasons to skip, by delivery key (absent: still qualifies)."""
        ...


class NoHandOffChecks:
    """The explicit choice of re-checking nothing at hand-off (``policy=NO_HANDOFF_CHECKS``):
    the run logs no warning and reports ``RunResult.policy_checked=False``. For deliveries
    whose rules are enforced elsewhere; a campaign's own policy is
    :class:`~membermkt.engine.handoff.CampaignPolicy`."""

    def check(self, records: Sequence[DeliveryRecord], now: dt.datetime) -> dict[str, str]:
        """Nothing to skip."""
        return {}

    def __repr__(self) -> str:
        return "NO_HANDOFF_CHECKS"


NO_HANDOFF_CHECKS = NoHandOffChecks()
"""Pass as ``CampaignRunner(policy=...)`` to run without hand-off re-checks, on purpose."""


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


@attrs.frozen(slots=True, kw_only=True)
class DeliveryRetry:
    """How the runner retries deliveries.

    Attributes:
        attempts: sends per delivery in one run, the first included.
        backoff: first wait in seconds (doubles per attempt).
        max_backoff: cap of one backoff wait.
        jitter: random fraction added to each wait.
        max_wait: the longest platform ``retry_after`` the runner waits for; longer hints
            (daily quotas, ref §1.10 45009) defer the delivery to a later run.

    Raises:
        UsageError: for non-positive attempts or negative waits.
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.1
    max_wait: float = 120.0

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError("DeliveryRetry.attempts must be >= 1")
        if min(self.backoff, self.max_backoff, self.jitter, self.max_wait) < 0:
            raise UsageError("DeliveryRetry waits must be >= 0")

    def wait(self, attempt: int, rng: random.Random, hint: float | None = None) -> float:
        """Seconds before attempt ``attempt + 1``."""
        base: float = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        base = max(base, hint or 0.0)
        return base + (rng.random() * self.jitter * base if self.jitter else 0.0)


@attrs.frozen(slots=True, kw_only=True)
class RunResult:
    """What one runner did in one run.

    Attributes:
        campaign_id / worker: the campaign and this runner's id.
        claimed: deliveries this run claimed.
        sent / failed / unknown / pending: final outcomes recorded by this run.
        deferred: deliveries handed back to ``planned`` (platform asked for a long wait).
        retried: retry attempts.
        recovered: a crashed runner's ``sending`` deliveries re-queued (idempotent channel).
        recovered_unknown: ... or marked ``unknown`` (non-idempotent channel, or past the
            platform's de-duplication window).
        skipped: deliveries that no longer qualified at hand-off (``skipped(reason)``).
        reconciled: ``unknown`` deliveries settled by this run (keyed resend, query).
        calls: ``send`` calls made to the channel.
        deferred_until: when the platform's (or the client's) quota allows calls again, if
            this run stopped on it.
        status: ``"done"`` (nothing planned left), ``"deferred"`` (quota exhausted: resume
            after ``deferred_until``) or ``"stopped"`` (the run ended early otherwise).
        failures: failure reason → count.
        skips: skip reason → count.
        in_doubt: keys of deliveries this run's recovery left ``unknown`` because they may
            not be resent (past the platform's de-duplication window, or a channel without
            idempotency keys) and no lookup settled them: reconcile them with the
            platform's job results (``MASSSENDJOBFINISH``, ``get_groupmsg_send_result``).
        policy_checked: whether a hand-off policy re-checked each delivery (``False``: the
            run was given a bare campaign id and no ``policy=``).
    """

    campaign_id: str
    worker: str
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    pending: int = 0
    deferred: int = 0
    retried: int = 0
    recovered: int = 0
    recovered_unknown: int = 0
    skipped: int = 0
    reconciled: int = 0
    calls: int = 0
    deferred_until: dt.datetime | None = None
    status: str = "done"
    failures: dict[str, int] = attrs.field(factory=dict)
    skips: dict[str, int] = attrs.field(factory=dict)
    in_doubt: tuple[str, ...] = ()
    policy_checked: bool = True


class _Stats:
    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "claimed",
                "sent",
                "failed",
                "unknown",
                "pending",
                "deferred",
                "retried",
                "recovered",
                "recovered_unknown",
                "skipped",
                "reconciled",
                "calls",
            ),
            0,
        )
        self.failures: dict[str, int] = {}
        self.skips: dict[str, int] = {}


class _RateLimiter:
    """At most ``rate`` acquisitions per second (evenly spaced)."""

    def __init__(self, rate: float | None, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._sleep = sleep

    async def acquire(self) -> None:
        if not self._interval:
            return
        now = asyncio.get_running_loop().time()
        at = max(now, self._next)
        self._next = at + self._interval
        if at > now:
            await self._sleep(at - now)


def _default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
