"""Claim and pay red packets without ever paying twice or overspending; reconcile.

The use case, end to end (:meth:`RedPacketService.claim`):

1. **Resume** an unfinished payout of the same rule and member instead of starting a new one
   (a user pressing "claim" again after a timeout gets the same bill, never a second one).
2. **Decide** (pure, :func:`membermkt.core.redpackets.decide`) from a snapshot: eligibility,
   purchase proof, limits, amount, bill number derived from the business key.
3. **Reserve** every budget row of the grant in one all-or-nothing conditional update
   (money: total, daily; counts: per member, phone, order, packets, platform per-user
   limits). Concurrent claims on PostgreSQL / MySQL can never push a row past its limit.
4. **Write the payout intent** (insert-if-absent by bill number) before any money moves.
5. **Pay** through the :class:`~membermkt.payouts.base.PayoutGateway`. Success settles the
   reservation; a definitive failure releases it; an ambiguous answer (timeout,
   ``SYSTEMERROR``, ``PROCESSING``, 5xx, unverifiable response) leads to *query, then retry
   with the same bill number* — never a new one. A reservation is released only when the
   platform says the bill failed or does not exist.
6. **Record** ``redpacket_claim`` / ``redpacket_paid`` events for analysis.

:meth:`RedPacketService.reconcile` compares intents with the platform's records, resolves
what is still open and reports every mismatch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

import attrs

from membermkt.core.events import Event
from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.members import Member
from membermkt.core.ports import (
    BudgetStore,
    Clock,
    EventLog,
    MemberStore,
    PayoutIntent,
    PayoutLedger,
)
from membermkt.core.redpackets import (
    Claim,
    ClaimState,
    Deny,
    DenyReason,
    Grant,
    RedPacketRule,
    budget_keys,
    claim_event,
    decide,
    paid_event,
)
from membermkt.errors import ConfigError, UsageError
from membermkt.payouts.base import (
    AsyncPayoutGateway,
    PayoutGateway,
    PayoutRequest,
    PayoutResult,
    PayoutStatus,
)

__all__ = [
    "AsyncRedPacketService",
    "ClaimOutcome",
    "Mismatch",
    "ReconciliationReport",
    "RedPacketService",
    "RedPacketStore",
]

T = TypeVar("T")

OPEN_STATUSES = frozenset({"reserved", "paying", "unknown"})
"""Intent statuses whose money is still reserved and whose outcome is not final."""

_MAX_COLLISIONS = 5


@runtime_checkable
class RedPacketStore(MemberStore, EventLog, BudgetStore, PayoutLedger, Protocol):
    """What the red-packet service needs from storage (``InMemoryStore``, ``SqlStore``)."""


@attrs.frozen(slots=True, kw_only=True)
class ClaimOutcome:
    """What happened to a claim.

    Attributes:
        status: ``"paid"`` (money sent), ``"pending"`` (accepted by the platform, not final:
            waiting for the user or processing; the reservation is held), ``"unknown"`` (no
            definite answer after the retries; the reservation is held and
            :meth:`RedPacketService.resume` / reconciliation finishes it), ``"failed"``
            (definitively not paid; reservation released) or ``"denied"``.
        reason: for ``denied`` a :class:`~membermkt.core.redpackets.DenyReason`; for
            failures the platform's code.
        bill_no / amount_fen: the payout, when there is one.
        resumed: ``True`` when the claim continued an earlier unfinished payout.
        result: the last platform answer, if any.
    """

    status: str
    reason: str | None = None
    bill_no: str | None = None
    amount_fen: int | None = None
    resumed: bool = False
    result: PayoutResult | None = None

    @property
    def paid(self) -> bool:
        return self.status == "paid"


@attrs.frozen(slots=True, kw_only=True)
class Mismatch:
    """One disagreement between our payout ledger and the platform.

    Attributes:
        bill_no: the bill.
        kind: ``"paid_not_found"`` (we say paid, the platform has no bill),
            ``"paid_but_failed"``, ``"failed_but_paid"`` (the platform paid a bill we
            released: the budget under-counts), ``"refunded"`` (an unopened red packet went
            back), ``"amount"`` (amounts differ), ``"unresolved"`` (still no definite
            answer), ``"orphan"`` (the platform knows a bill we have no intent for).
        ours / theirs: our intent status and the platform's state.
        detail: a human-readable explanation.
    """

    bill_no: str
    kind: str
    ours: str | None
    theirs: str | None
    detail: str = ""


@attrs.frozen(slots=True, kw_only=True)
class ReconciliationReport:
    """The result of :meth:`RedPacketService.reconcile`.

    Attributes:
        rule_id: the rule.
        checked: intents compared.
        matched: intents whose status agrees with the platform.
        resolved: open intents finished by this run (bill → new status).
        mismatches: every :class:`Mismatch`.
        budget_used_fen: reserved + spent on the rule's total budget row.
        intents_fen: money of the rule's live intents (open + paid).
    """

    rule_id: str
    checked: int
    matched: int
    resolved: tuple[tuple[str, str], ...]
    mismatches: tuple[Mismatch, ...]
    budget_used_fen: int
    intents_fen: int

    @property
    def ok(self) -> bool:
        """No mismatch and the budget row agrees with the intents."""
        return not self.mismatches and self.budget_used_fen == self.intents_fen


_ROLE_REASON = {
    "total": DenyReason.BUDGET_EXHAUSTED,
    "day": DenyReason.DAILY_BUDGET_EXHAUSTED,
    "packets": DenyReason.PACKETS_EXHAUSTED,
    "member": DenyReason.MEMBER_LIMIT,
    "phone": DenyReason.PHONE_LIMIT,
    "order": DenyReason.ORDER_LIMIT,
    "user_day_count": DenyReason.PLATFORM_USER_LIMIT,
    "user_day_fen": DenyReason.PLATFORM_USER_LIMIT,
}


Step = tuple[str, Any]
"""A step a flow asks its driver to perform: ``("pay", PayoutRequest)``,
``("query", bill_no)`` or ``("sleep", seconds)``."""

Flow = Generator[Step, Any, T]
"""The engine's logic as a generator: it yields platform calls and sleeps and receives their
results, so the sync and the async service run the very same code (httpx ``auth_flow``
style); only the driver differs."""


class _RedPacketFlows:
    """The red-packet use case as sans-I/O flows over the store (shared by both drivers)."""

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

    # ------------------------------------------------------------------ claim

    def _claim_flow(self, rule: RedPacketRule, claim: Claim) -> Flow[ClaimOutcome]:
        if rule.product.name != self.product:
            raise ConfigError(
                f"rule {rule.id!r} pays through {rule.product.name}, the gateway is {self.product}"
            )
        of_rule = self.store.intents(rule_id=rule.id)
        mine = [i for i in of_rule if i.member_id == claim.member_id]
        for intent in mine:
            if intent.status in OPEN_STATUSES:
                return (yield from self._continue_flow(intent))

        salt = 0
        while True:
            now = self.clock.now()
            state = self._state(rule, claim, now, of_rule, mine, salt)
            member = Member(claim.member_id)
            if rule.eligibility is not None:
                member = self.store.get_member(claim.member_id) or member
            decision = decide(rule, member, claim, state, now, self.rng)
            if isinstance(decision, Deny):
                return ClaimOutcome(status="denied", reason=decision.reason.value)
            denied = self._reserve(rule, claim, decision, now)
            if denied is not None:
                return ClaimOutcome(status="denied", reason=denied.value)
            token = f"owner:{uuid.uuid4().hex}"
            intent = PayoutIntent(
                bill_no=decision.bill_no,
                rule_id=rule.id,
                member_id=claim.member_id,
                address=claim.address,
                amount_fen=decision.amount_fen,
                status="reserved",
                reservations=decision.items,
                detail=token,
                created_at=now,
                updated_at=now,
            )
            stored = self.store.record_intent(intent)
            if stored.detail == token:
                break
            # Someone else owns this bill number: give our reservation back first.
            self.store.release(decision.items)
            if stored.rule_id == rule.id and stored.member_id == claim.member_id:
                # The same business key claimed concurrently: one payout, driven by its owner.
                return (yield from self._continue_flow(stored))
            salt += 1  # a hash collision with another key (v2's 10 digits): derive again
            if salt > _MAX_COLLISIONS:
                raise UsageError(f"rule {rule.id!r}: bill numbers keep colliding; check mch_id")

        events = [claim_event(rule, claim, decision, now)] if self.record_events else []
        return (yield from self._pay_flow(stored, first=True, events=events))

    def _state(
        self,
        rule: RedPacketRule,
        claim: Claim,
        now: dt.datetime,
        of_rule: Sequence[PayoutIntent],
        mine: Sequence[PayoutIntent],
        salt: int,
    ) -> ClaimState:
        # Only the rule-wide money row is read (amount strategies and the budget pre-check
        # need it); the other limits are enforced by the atomic reservation, and a refused
        # reservation is diagnosed afterwards. Fewer reads = fewer round trips per claim.
        keys = budget_keys(
            rule,
            as_of=now,
            member_id=claim.member_id,
            phone_digest=claim.phone_digest,
            order_id=claim.order_id,
            address=claim.address,
        )

        def used(role: str) -> int:
            key = keys.get(role)
            row = self.store.budget(key) if key is not None else None
            return row.reserved + row.spent if row is not None else 0

        events: list[Event] = []
        purchases: list[Event] = []
        owners: set[str] = set()
        if rule.eligibility is not None or rule.require_purchase:
            events = self.store.events_for(claim.member_id)
            purchases = [e for e in events if e.type == "purchase"]
        if rule.require_purchase and claim.phone_digest is not None:
            owner = self.store.resolve(Identity(IdentityKind.PHONE, claim.phone_digest))
            if owner is not None:
                owners.add(owner)
                if owner != claim.member_id:
                    purchases.extend(self.store.events_for(owner, types=["purchase"]))
        live = [i for i in of_rule if i.status != "failed"]
        granted_count = used("packets") if rule.max_packets is not None else len(live)
        return ClaimState(
            events=tuple(events),
            purchases=tuple(purchases),
            phone_owner_ids=frozenset(owners),
            member_claims=sum(1 for i in mine if i.status != "failed"),
            member_attempts=len(mine),
            granted_count=granted_count,
            granted_fen=used("total"),
            bill_salt=salt,
        )

    def _reserve(
        self, rule: RedPacketRule, claim: Claim, grant: Grant, now: dt.datetime
    ) -> DenyReason | None:
        for r in grant.reservations:
            self._ensure(r.key, r.limit)
        self._ensure(f"rp:final:{grant.bill_no}", 1)
        if self.store.reserve(grant.items):
            return None
        roles = {
            v: k
            for k, v in budget_keys(
                rule,
                as_of=now,
                member_id=claim.member_id,
                phone_digest=claim.phone_digest,
                order_id=grant.order_id,
                address=claim.address,
            ).items()
        }
        for r in grant.reservations:
            row = self.store.budget(r.key)
            if row is not None and row.remaining < r.amount:
                return _ROLE_REASON.get(roles.get(r.key, "total"), DenyReason.BUDGET_EXHAUSTED)
        return DenyReason.BUDGET_EXHAUSTED  # a concurrent release raced the diagnosis

    # ------------------------------------------------------------------ paying

    def _request(self, intent: PayoutIntent) -> PayoutRequest:
        return PayoutRequest(
            bill_no=intent.bill_no, openid=intent.address, amount_fen=intent.amount_fen
        )

    def _as_stored(self, bill_no: str) -> ClaimOutcome:
        """The outcome as the ledger holds it (another worker is finishing or finished)."""
        stored = self._intent(bill_no)
        if stored.status in ("paid", "failed"):
            status = stored.status
        else:
            status = "pending"
        return ClaimOutcome(
            status=status,
            reason=None if status == "paid" else "finished_elsewhere",
            bill_no=bill_no,
            amount_fen=stored.amount_fen,
        )

    def _pay_flow(
        self, intent: PayoutIntent, *, first: bool, events: Sequence[Event] = ()
    ) -> Flow[ClaimOutcome]:
        """Pay ``intent`` (status reserved / paying / unknown with NOT_FOUND confirmed).

        A first attempt leaves the intent ``reserved`` while the request is out: resuming a
        ``reserved`` intent pays again under the same bill number, which the platform treats
        as the same payment, so no extra write is needed before the money call.
        """
        if not first and self._finalized(intent.bill_no):
            return self._as_stored(intent.bill_no)
        if not first:
            self.store.update_intent(intent.bill_no, status="paying", now=self.clock.now())
        ambiguous = not first
        last: PayoutResult | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                yield from self._sleep_step(self.retry_interval)
            result = yield from self._pay_step(self._request(intent))
            last = result
            if result.status is PayoutStatus.FAILED and ambiguous:
                # An earlier attempt may have paid: confirm before giving money back.
                result = yield from self._query_step(intent.bill_no)
                last = result
                if result.status is PayoutStatus.NOT_FOUND:
                    return self._finish(intent, last, failed_reason=last.state, events=events)
            if result.status is PayoutStatus.UNKNOWN:
                ambiguous = True
                result = yield from self._query_step(intent.bill_no)
                last = result
                if result.status in (PayoutStatus.NOT_FOUND, PayoutStatus.UNKNOWN):
                    continue  # the same bill number again; the platform pays it at most once
            if result.status is PayoutStatus.PENDING:
                polled = yield from self._query_step(intent.bill_no)
                if polled.status.definitive:
                    result = last = polled
            return self._finish(intent, result, events=events)
        self.store.update_intent(
            intent.bill_no,
            status="unknown",
            now=self.clock.now(),
            detail=_detail(last),
        )
        if events:
            self.store.append_events(events)
        return ClaimOutcome(
            status="unknown",
            reason=last.state if last else None,
            bill_no=intent.bill_no,
            amount_fen=intent.amount_fen,
            result=last,
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

    def _finish(
        self,
        intent: PayoutIntent,
        result: PayoutResult,
        *,
        failed_reason: str | None = None,
        events: Sequence[Event] = (),
    ) -> ClaimOutcome:
        """Apply ``result`` to the intent; append ``events`` (and the paid event) in one
        write with the outcome."""
        outcome = self._apply(intent, result, failed_reason=failed_reason)
        todo = list(events)
        if outcome.paid and self.record_events:
            todo.append(
                paid_event(
                    rule_id=intent.rule_id,
                    member_id=intent.member_id,
                    bill_no=intent.bill_no,
                    amount_fen=intent.amount_fen,
                    at=self.clock.now(),
                    platform_id=result.platform_id,
                )
            )
        if todo:
            self.store.append_events(todo)  # keyed by bill number: repeats are no-ops
        return outcome

    def _apply(
        self, intent: PayoutIntent, result: PayoutResult, *, failed_reason: str | None
    ) -> ClaimOutcome:
        now = self.clock.now()
        status = result.status
        final = status in (
            PayoutStatus.SUCCESS,
            PayoutStatus.REFUNDED,
            PayoutStatus.FAILED,
            PayoutStatus.NOT_FOUND,
        )
        if final and not self._take_final(intent.bill_no):
            # Another worker finished this bill (and moved the money rows). Its verdict in the
            # ledger stands; only an intent still shown open gets the final status (the winner
            # may have stopped between taking the token and writing). A disagreement is left
            # for reconciliation to report, never papered over.
            paid = status in (PayoutStatus.SUCCESS, PayoutStatus.REFUNDED)
            if self._intent(intent.bill_no).status in OPEN_STATUSES:
                self.store.update_intent(
                    intent.bill_no,
                    status="paid" if paid else "failed",
                    now=now,
                    detail=_detail(result),
                )
            return ClaimOutcome(
                status="paid" if paid else "failed",
                reason=None if paid else (failed_reason or result.state),
                bill_no=intent.bill_no,
                amount_fen=intent.amount_fen,
                result=result,
            )
        if not final and self._finalized(intent.bill_no):
            return self._as_stored(intent.bill_no)
        if status in (PayoutStatus.SUCCESS, PayoutStatus.REFUNDED):
            self.store.settle(intent.reservations)
            self.store.update_intent(intent.bill_no, status="paid", now=now, detail=_detail(result))
            return ClaimOutcome(
                status="paid", bill_no=intent.bill_no, amount_fen=intent.amount_fen, result=result
            )
        if status in (PayoutStatus.FAILED, PayoutStatus.NOT_FOUND):
            self.store.release(intent.reservations)
            self.store.update_intent(
                intent.bill_no, status="failed", now=now, detail=_detail(result)
            )
            return ClaimOutcome(
                status="failed",
                reason=failed_reason or result.state,
                bill_no=intent.bill_no,
                amount_fen=intent.amount_fen,
                result=result,
            )
        label = "pending" if status is PayoutStatus.PENDING else "unknown"
        self.store.update_intent(
            intent.bill_no,
            status="paying" if label == "pending" else "unknown",
            now=now,
            detail=_detail(result),
        )
        return ClaimOutcome(
            status=label,
            reason=result.state,
            bill_no=intent.bill_no,
            amount_fen=intent.amount_fen,
            result=result,
        )

    def _continue_flow(self, intent: PayoutIntent) -> Flow[ClaimOutcome]:
        """A repeated claim meets an open payout: drive it only when its worker looks gone
        (no update for ``stale_after``); otherwise report it in progress and leave it to its
        owner, so two workers never settle or release the same reservation."""
        touched = intent.updated_at or intent.created_at
        if touched is None or self.clock.now() - touched >= self.stale_after:
            outcome = yield from self._resume_flow(intent)
            return attrs.evolve(outcome, resumed=True)
        return ClaimOutcome(
            status="pending",
            reason="in_progress",
            bill_no=intent.bill_no,
            amount_fen=intent.amount_fen,
            resumed=True,
        )

    def _resume_flow(self, intent: PayoutIntent) -> Flow[ClaimOutcome]:
        if intent.status == "paid":
            return ClaimOutcome(status="paid", bill_no=intent.bill_no, amount_fen=intent.amount_fen)
        if intent.status == "failed":
            return ClaimOutcome(
                status="failed", bill_no=intent.bill_no, amount_fen=intent.amount_fen
            )
        if intent.status == "reserved":
            # Written but possibly never sent (a crash before paying): paying is safe, the
            # bill number makes it idempotent either way.
            return (yield from self._pay_flow(intent, first=False))
        result = yield from self._query_step(intent.bill_no)
        if result.status is PayoutStatus.NOT_FOUND:
            return (yield from self._pay_flow(intent, first=False))
        return self._finish(intent, result)

    def _resume_open_flow(self, rule_id: str) -> Flow[list[ClaimOutcome]]:
        out = []
        for intent in self.store.intents(rule_id=rule_id):
            if intent.status in OPEN_STATUSES:
                out.append((yield from self._resume_flow(intent)))  # noqa: PERF401 (yield from)
        return out

    def _apply_flow(self, result: PayoutResult) -> Flow[ClaimOutcome]:
        intent = self._intent(result.bill_no)
        if intent.status not in OPEN_STATUSES:
            return (yield from self._resume_flow(intent))
        return self._finish(intent, result)

    def _intent(self, bill_no: str) -> PayoutIntent:
        for i in self.store.intents():
            if i.bill_no == bill_no:
                return i
        raise UsageError(f"no payout intent with bill number {bill_no!r}")

    # ------------------------------------------------------------------ reconciliation

    def _reconcile_flow(
        self, rule: RedPacketRule, resolve: bool, platform_bills: Iterable[str] | None
    ) -> Flow[ReconciliationReport]:
        checked = matched = 0
        resolved: list[tuple[str, str]] = []
        mismatches: list[Mismatch] = []
        intents = self.store.intents(rule_id=rule.id)
        for intent in intents:
            checked += 1
            result = yield from self._query_step(intent.bill_no)
            theirs = result.state or result.status.value
            if intent.status in OPEN_STATUSES:
                touched = intent.updated_at or intent.created_at
                stale = touched is None or self.clock.now() - touched >= self.stale_after
                # NOT_FOUND on a fresh intent may only mean its request is still on the way:
                # releasing then could let the payment land on a released budget.
                if resolve and (
                    result.status.definitive or (result.status is PayoutStatus.NOT_FOUND and stale)
                ):
                    outcome = self._finish(intent, result)
                    resolved.append((intent.bill_no, outcome.status))
                else:
                    mismatches.append(
                        Mismatch(
                            bill_no=intent.bill_no,
                            kind="unresolved",
                            ours=intent.status,
                            theirs=theirs,
                            detail="no definite platform answer yet; run again later",
                        )
                    )
                continue
            kind = _compare(intent, result)
            if kind is None:
                matched += 1
            else:
                mismatches.append(
                    Mismatch(
                        bill_no=intent.bill_no,
                        kind=kind,
                        ours=intent.status,
                        theirs=theirs,
                        detail=result.reason or "",
                    )
                )
        if platform_bills is not None:
            ours = {i.bill_no for i in intents}
            mismatches.extend(
                Mismatch(
                    bill_no=bill,
                    kind="orphan",
                    ours=None,
                    theirs="present",
                    detail="the platform knows a bill with no payout intent here",
                )
                for bill in sorted(set(platform_bills) - ours)
            )
        row = self.store.budget(f"rp:{rule.id}:total")
        live = [i for i in self.store.intents(rule_id=rule.id) if i.status != "failed"]
        return ReconciliationReport(
            rule_id=rule.id,
            checked=checked,
            matched=matched,
            resolved=tuple(resolved),
            mismatches=tuple(mismatches),
            budget_used_fen=(row.reserved + row.spent) if row is not None else 0,
            intents_fen=sum(i.amount_fen for i in live),
        )


class RedPacketService(_RedPacketFlows):
    """Claims → decisions → atomic reservations → payout intents → payments → records.

    Args:
        store: a :class:`RedPacketStore` (members, events, budgets, payout intents).
        gateway: the :class:`~membermkt.payouts.base.PayoutGateway` paying the rule's product.
        clock: where ``now`` comes from.
        rng: draws random amounts (seed it for reproducible runs).
        phone_key: the key used for phone digests (as in ``Identity.phone``).
        max_attempts: payment attempts per bill in one call (each ambiguous answer is
            followed by a query; only ``NOT_FOUND`` or another ambiguous answer leads to a
            retry with the same bill number).
        retry_interval: seconds to wait before retrying one bill (the v2 doc asks ≥ 1 s).
        sleep: the sleeping function (inject a no-op in tests).
        record_events: append ``redpacket_claim`` / ``redpacket_paid`` events to the store.
        stale_after: a repeated claim takes over an open payout only when it has not been
            updated for this long (its worker is presumed gone); :meth:`resume`,
            :meth:`resume_open` and :meth:`reconcile` are for when no worker is running.

    Raises:
        ConfigError: when the gateway is not a sync payout gateway.
        UsageError: for ``max_attempts < 1`` or a negative ``retry_interval``.
    """

    def __init__(
        self,
        store: RedPacketStore,
        gateway: PayoutGateway,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        phone_key: str = "",
        max_attempts: int = 3,
        retry_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        record_events: bool = True,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        if not isinstance(gateway, PayoutGateway) or inspect.iscoroutinefunction(gateway.pay):
            raise ConfigError(
                f"gateway must be a sync PayoutGateway, got {gateway!r} "
                "(use AsyncRedPacketService with an async gateway)"
            )
        super().__init__(
            store,
            product=gateway.product,
            clock=clock,
            rng=rng,
            phone_key=phone_key,
            max_attempts=max_attempts,
            retry_interval=retry_interval,
            record_events=record_events,
            stale_after=stale_after,
        )
        self.gateway = gateway
        self.sleep = sleep

    def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                kind, arg = step
                if kind == "pay":
                    step = flow.send(self.gateway.pay(arg))
                elif kind == "query":
                    step = flow.send(self.gateway.query(arg))
                else:
                    self.sleep(arg)
                    step = flow.send(None)
        except StopIteration as stop:
            return cast(T, stop.value)

    def claim(self, rule: RedPacketRule, claim: Claim) -> ClaimOutcome:
        """Handle one claim end to end (see the module docstring).

        Raises:
            ConfigError: when the rule pays through another product than the gateway.
            StoreError: when storage fails (nothing is paid without a written intent).
        """
        return self._run(self._claim_flow(rule, claim))

    def resume(self, bill_no: str) -> ClaimOutcome:
        """Drive an unfinished payout (reserved / paying / unknown) towards an end: query,
        then pay again with the same bill number only if the platform has no such bill.

        Raises:
            UsageError: for an unknown bill number.
        """
        return self._run(self._resume_flow(self._intent(bill_no)))

    def resume_open(self, rule_id: str) -> list[ClaimOutcome]:
        """:meth:`resume` every open intent of a rule (after a crash or a timeout storm)."""
        return self._run(self._resume_open_flow(rule_id))

    def apply_result(self, result: PayoutResult) -> ClaimOutcome:
        """Apply a platform notification (e.g. a v3 callback parsed by the gateway) to its
        intent. Idempotent: a final intent is left as it is.

        Raises:
            UsageError: for an unknown bill number.
        """
        return self._run(self._apply_flow(result))

    def reconcile(
        self,
        rule: RedPacketRule,
        *,
        resolve: bool = True,
        platform_bills: Iterable[str] | None = None,
    ) -> ReconciliationReport:
        """Compare the rule's intents with the platform's records.

        Every intent is queried. Open intents are finished when the platform has a definite
        answer (``resolve=True``; ``NOT_FOUND`` on an open intent not updated for
        ``stale_after`` releases its reservation: the payment never arrived and the member
        may claim again). Final intents that disagree with the platform are reported, never
        silently changed. ``platform_bills`` (e.g. from a downloaded statement) adds an
        orphan check.
        """
        return self._run(self._reconcile_flow(rule, resolve, platform_bills))


class AsyncRedPacketService(_RedPacketFlows):
    """The async twin of :class:`RedPacketService`: the same flows, driven with an
    :class:`~membermkt.payouts.base.AsyncPayoutGateway` and ``asyncio.sleep``; every method
    is awaited. Store calls are the store's own (sync) calls, made from the event loop: they
    are short single-statement transactions, but run the service in a worker thread if your
    database is far away.

    Args:
        store, clock, rng, phone_key, max_attempts, retry_interval, record_events,
        stale_after: as for :class:`RedPacketService`.
        gateway: an async payout gateway (``AsyncWeChatPayV2Gateway`` /
            ``AsyncWeChatPayV3Gateway``).
        sleep: an async sleeping function (default ``asyncio.sleep``).

    Raises:
        ConfigError: when the gateway is not an async payout gateway.
        UsageError: for ``max_attempts < 1`` or a negative ``retry_interval``.
    """

    def __init__(
        self,
        store: RedPacketStore,
        gateway: AsyncPayoutGateway,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        phone_key: str = "",
        max_attempts: int = 3,
        retry_interval: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        record_events: bool = True,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        if not isinstance(gateway, AsyncPayoutGateway) or not inspect.iscoroutinefunction(
            gateway.pay
        ):
            raise ConfigError(
                f"gateway must be an async PayoutGateway, got {gateway!r} "
                "(use RedPacketService with a sync gateway)"
            )
        super().__init__(
            store,
            product=gateway.product,
            clock=clock,
            rng=rng,
            phone_key=phone_key,
            max_attempts=max_attempts,
            retry_interval=retry_interval,
            record_events=record_events,
            stale_after=stale_after,
        )
        self.gateway = gateway
        self.sleep = sleep

    async def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                kind, arg = step
                if kind == "pay":
                    step = flow.send(await self.gateway.pay(arg))
                elif kind == "query":
                    step = flow.send(await self.gateway.query(arg))
                else:
                    await self.sleep(arg)
                    step = flow.send(None)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def claim(self, rule: RedPacketRule, claim: Claim) -> ClaimOutcome:
        """Handle one claim end to end (see :meth:`RedPacketService.claim`).

        Raises:
            ConfigError: when the rule pays through another product than the gateway.
            StoreError: when storage fails (nothing is paid without a written intent).
        """
        return await self._run(self._claim_flow(rule, claim))

    async def resume(self, bill_no: str) -> ClaimOutcome:
        """See :meth:`RedPacketService.resume`.

        Raises:
            UsageError: for an unknown bill number.
        """
        return await self._run(self._resume_flow(self._intent(bill_no)))

    async def resume_open(self, rule_id: str) -> list[ClaimOutcome]:
        """See :meth:`RedPacketService.resume_open`."""
        return await self._run(self._resume_open_flow(rule_id))

    async def apply_result(self, result: PayoutResult) -> ClaimOutcome:
        """See :meth:`RedPacketService.apply_result`.

        Raises:
            UsageError: for an unknown bill number.
        """
        return await self._run(self._apply_flow(result))

    async def reconcile(
        self,
        rule: RedPacketRule,
        *,
        resolve: bool = True,
        platform_bills: Iterable[str] | None = None,
    ) -> ReconciliationReport:
        """See :meth:`RedPacketService.reconcile`."""
        return await self._run(self._reconcile_flow(rule, resolve, platform_bills))


def _checked(result: object) -> PayoutResult:
    if not isinstance(result, PayoutResult):
        raise UsageError(f"a payout gateway returned {result!r}, not a PayoutResult")
    return result


def _compare(intent: PayoutIntent, result: PayoutResult) -> str | None:
    status = result.status
    if intent.status == "paid":
        if status is PayoutStatus.SUCCESS:
            if result.amount_fen is not None and result.amount_fen != intent.amount_fen:
                return "amount"
            return None
        if status is PayoutStatus.REFUNDED:
            return "refunded"
        if status is PayoutStatus.NOT_FOUND:
            return "paid_not_found"
        if status is PayoutStatus.FAILED:
            return "paid_but_failed"
        return "unresolved"
    # intent failed
    if status in (PayoutStatus.FAILED, PayoutStatus.NOT_FOUND):
        return None
    if status in (PayoutStatus.SUCCESS, PayoutStatus.PENDING, PayoutStatus.REFUNDED):
        return "failed_but_paid"
    return "unresolved"


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
