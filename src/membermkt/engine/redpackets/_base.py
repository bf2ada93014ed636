"""Shared ground of the red-packet flows: the store protocol, the flow/step types, the
state and the small helpers every flow uses (platform steps, intent lookup, final tokens)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Generator
from typing import Any, Protocol, TypeVar, runtime_checkable

from membermkt.core.ports import (
    BudgetStore,
    Clock,
    EventLog,
    MemberStore,
    PayoutIntent,
    PayoutLedger,
)
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.errors import UsageError
from membermkt.payouts.base import PayoutRequest, PayoutResult, PayoutStatus

T = TypeVar("T")

OPEN_STATUSES = frozenset({"reserved", "paying", "unknown", "waiting_funds"})
"""Intent statuses whose money is still reserved and whose outcome is not final
(``waiting_funds``: the merchant account lacked funds; the same bill is paid after a
top-up, never a new one)."""


@runtime_checkable
class RedPacketStore(MemberStore, EventLog, BudgetStore, PayoutLedger, Protocol):
    """What the red-packet service needs from storage (``InMemoryStore``, ``SqlStore``)."""


Step = tuple[str, Any]
"""A step a flow asks its driver to perform: ``("pay", PayoutRequest)``,
``("query", bill_no)`` or ``("sleep", seconds)``."""

Flow = Generator[Step, Any, T]
"""The engine's logic as a generator: it yields platform calls and sleeps and receives their
results, so the sync and the async service run the very same code (httpx ``auth_flow``
style); only the driver differs."""


class _FlowsBase:
    """The flows' shared state and helpers (see :class:`_RedPacketFlows`)."""

    product: str

    def __init__(
        self,
        store: RedPacketStore,
        *,
        product: str,
        clock: Clock,
        rng: random.Random | None,
        phone_key: str,
        max_attempts: int,
        retry_interval: float,
        record_events: bool,
        stale_after: dt.timedelta,
    ) -> None:
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        if retry_interval < 0:
            raise UsageError(f"retry_interval must be >= 0, got {retry_interval}")
        self.store = store
        self.product = product
        self.clock = clock
        self.rng = rng or random.Random()
        self.phone_key = phone_key
        self.max_attempts = max_attempts
        self.retry_interval = retry_interval
        self.record_events = record_events
        self.stale_after = stale_after
        self._ensured: set[str] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} product={self.product} max_attempts={self.max_attempts}>"

    # ------------------------------------------------------------------ platform steps

    def _pay_step(self, request: PayoutRequest) -> Flow[PayoutResult]:
        result = yield ("pay", request)
        return _checked(result)

    def _query_step(self, bill_no: str) -> Flow[PayoutResult]:
        result = yield ("query", bill_no)
        return _checked(result)

    def _sleep_step(self, seconds: float) -> Flow[None]:
        yield ("sleep", seconds)

    def _request(self, intent: PayoutIntent) -> PayoutRequest:
        return PayoutRequest(
            bill_no=intent.bill_no, openid=intent.address, amount_fen=intent.amount_fen
        )

    def _as_stored(self, bill_no: str) -> ClaimOutcome:
        """The outcome as the ledger holds it (another worker is finishing or finished)."""
        stored = self._intent(bill_no)
        if stored.status in ("paid", "failed", "waiting_funds"):
            status = stored.status
        else:
            status = "pending"
        return ClaimOutcome(
            status=status,
            reason=None if status == "paid" else "finished_elsewhere",
            bill_no=bill_no,
            amount_fen=stored.amount_fen,
        )

    def _ensure(self, key: str, limit: int) -> None:
        # Budget rows are never deleted, so a row this service created once exists for good.
        if key not in self._ensured:
            self.store.ensure_budget(key, limit=limit)
            if len(self._ensured) > 100_000:
                self._ensured.clear()
            self._ensured.add(key)

    def _take_final(self, bill_no: str) -> bool:
        """Win the right to settle or release ``bill_no``'s reservation, once, across threads
        and processes: a one-unit budget row reserved with the store's atomic conditional
        update serves as a compare-and-set."""
        key = f"rp:final:{bill_no}"
        try:
            return self.store.reserve([(key, 1)])
        except UsageError:  # an intent written by another version / process: create the row
            self.store.ensure_budget(key, limit=1)
            return self.store.reserve([(key, 1)])

    def _finalized(self, bill_no: str) -> bool:
        row = self.store.budget(f"rp:final:{bill_no}")
        return row is not None and row.reserved + row.spent > 0

    def _intent(self, bill_no: str) -> PayoutIntent:
        found = self.store.intent(bill_no)
        if found is None:
            raise UsageError(f"no payout intent with bill number {bill_no!r}")
        return found


def _checked(result: object) -> PayoutResult:
    if not isinstance(result, PayoutResult):
        raise UsageError(f"a payout gateway returned {result!r}, not a PayoutResult")
    return result


def _detail(result: PayoutResult | None) -> str | None:
    if result is None:
        return None
    parts = [result.status.value]
    if result.state:
        parts.append(result.state)
    if result.platform_id:
        parts.append(f"platform_id={result.platform_id}")
    if result.reason and result.status is not PayoutStatus.SUCCESS:
        parts.append(result.reason[:200])
    return " ".join(parts)
