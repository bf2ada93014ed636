"""Client-side call budgets: refuse a call before the platform would (pure, thread-safe).

Each API may have a daily quota and a per-minute rate. A :class:`CallBudgets` counts calls in
fixed windows (calendar day in the platform's time zone, clock minute) from a ``now`` the
caller passes in, and raises :class:`BudgetWindowExceeded` with the seconds until the window
resets. Budgets are per client object (per process): with several processes, give each a
share of the platform quota.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import attrs

from membermkt.errors import QuotaExceeded, UsageError

__all__ = ["BudgetWindowExceeded", "CallBudget", "CallBudgets"]


class BudgetWindowExceeded(QuotaExceeded):
    """A client-side call budget refuses the call.

    Attributes:
        api: the API.
        window: ``"day"`` or ``"minute"``.
        retry_after: seconds until the window resets.
    """

    def __init__(
        self, message: str, *, api: str, window: str, limit: int, retry_after: float
    ) -> None:
        super().__init__(message, quota=f"{api}/{window}", limit=limit)
        self.api = api
        self.window = window
        self.retry_after = retry_after


@attrs.frozen(slots=True)
class CallBudget:
    """The limits of one API, or of a group of APIs sharing a quota (``None``: unlimited).

    Attributes:
        api: the budget's name (the API name when ``apis`` is empty).
        per_day: calls per calendar day.
        per_minute: calls per clock minute.
        apis: the API names counted against this budget (default: ``(api,)``).
    """

    api: str
    per_day: int | None = None
    per_minute: int | None = None
    apis: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        for name in ("per_day", "per_minute"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise UsageError(f"CallBudget({self.api!r}).{name} must be a positive int or None")


class CallBudgets:
    """Counters for a set of :class:`CallBudget` (APIs without one are unlimited).

    Args:
        budgets: the budgets.
        utc_offset_seconds: where the "day" starts; the platforms count calendar days in
            Beijing time (UTC+8) — an assumption, the reference does not say.
    """

    def __init__(self, budgets: Iterable[CallBudget], *, utc_offset_seconds: int = 8 * 3600):
        self._budgets: dict[str, CallBudget] = {}
        for b in budgets:
            for name in b.apis or (b.api,):
                self._budgets[name] = b
        self._offset = utc_offset_seconds
        self._day: dict[str, tuple[int, int]] = {}
        self._minute: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CallBudgets({len(self._budgets)} APIs)"

    @property
    def budgets(self) -> Mapping[str, CallBudget]:
        return dict(self._budgets)

    def take(self, api: str, now: float) -> None:
        """Count one call to ``api`` at unix time ``now``.

        Raises:
            BudgetWindowExceeded: when the day's quota or the minute's rate is used up (the
                call is not counted).
        """
        budget = self._budgets.get(api)
        if budget is None:
            return
        api = budget.api
        local = now + self._offset
        day, minute = int(local // 86400), int(now // 60)
        with self._lock:
            d_count = self._day.get(api, (day, 0))
            d_count = d_count if d_count[0] == day else (day, 0)
            m_count = self._minute.get(api, (minute, 0))
            m_count = m_count if m_count[0] == minute else (minute, 0)
            if budget.per_day is not None and d_count[1] >= budget.per_day:
                raise BudgetWindowExceeded(
                    f"{api}: client-side daily budget of {budget.per_day} calls used up",
                    api=api,
                    window="day",
                    limit=budget.per_day,
                    retry_after=(day + 1) * 86400 - local,
                )
            if budget.per_minute is not None and m_count[1] >= budget.per_minute:
                raise BudgetWindowExceeded(
                    f"{api}: client-side budget of {budget.per_minute} calls/minute used up",
                    api=api,
                    window="minute",
                    limit=budget.per_minute,
                    retry_after=(minute + 1) * 60 - now,
                )
            self._day[api] = (day, d_count[1] + 1)
            self._minute[api] = (minute, m_count[1] + 1)

    def used(self, api: str, now: float) -> tuple[int, int]:
        """Calls counted in the current (day, minute) windows of ``api``'s budget."""
        budget = self._budgets.get(api)
        api = budget.api if budget is not None else api
        local = now + self._offset
        day, minute = int(local // 86400), int(now // 60)
        with self._lock:
            d = self._day.get(api, (day, 0))
            m = self._minute.get(api, (minute, 0))
        return (d[1] if d[0] == day else 0, m[1] if m[0] == minute else 0)
