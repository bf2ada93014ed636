"""Balanced batches and the daily quota reset (pure)."""

from __future__ import annotations

import datetime as dt
import math

from membermkt.core.quotas._model import DEFAULT_TZ, _aware, zone
from membermkt.errors import UsageError


def balanced_batch(remaining: int, max_batch_size: int) -> int:
    """The size of the next batch so that ``remaining`` recipients split evenly into the
    fewest batches of at most ``max_batch_size`` (10,001 with 10,000 → 5,001 then 5,000:
    never a lone remainder).

    Raises:
        UsageError: for a negative ``remaining`` or a ``max_batch_size`` below 1.
    """
    if remaining < 0 or max_batch_size < 1:
        raise UsageError(
            f"balanced_batch needs remaining >= 0 and max_batch_size >= 1, got "
            f"{remaining}, {max_batch_size}"
        )
    if remaining == 0:
        return 0
    k = math.ceil(remaining / max_batch_size)
    return math.ceil(remaining / k)


def balanced_batches(n: int, max_batch_size: int) -> list[int]:
    """Every batch size :func:`balanced_batch` yields for ``n`` recipients, in order.

    Raises:
        UsageError: as :func:`balanced_batch`.
    """
    out: list[int] = []
    while n > 0:
        size = balanced_batch(n, max_batch_size)
        out.append(size)
        n -= size
    return out


def next_daily_reset(now: dt.datetime, tz: str = DEFAULT_TZ) -> dt.datetime:
    """The next midnight in ``tz`` after ``now`` (UTC), when daily API quotas reset (ref
    §4 45009: "day-level until the next natural day"; natural days are China time).

    Raises:
        UsageError: for a naive ``now`` or an unknown zone.
    """
    when = _aware(now, "now")
    local = when.astimezone(zone(tz))
    tomorrow = local.date() + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(0), tzinfo=zone(tz))
    return midnight.astimezone(dt.UTC)
