"""Paying an intent: attempts with the same bill number, query-before-retry, settling or
releasing its reservation exactly once, resuming unfinished payouts."""

from __future__ import annotations

from collections.abc import Sequence

from membermkt.core.events import Event
from membermkt.core.ports import PayoutIntent
from membermkt.core.redpackets import DenyReason, paid_event, policy_denial
from membermkt.engine.redpackets._base import OPEN_STATUSES, Flow, _detail, _FlowsBase
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.payouts.base import PayoutResult, PayoutStatus

_RECHECKED = frozenset({"reserved", "waiting_funds"})
"""Open intents whose payment may still be *started* by a resume: consent and address
ownership are checked again before paying them."""


class _PayFlows(_FlowsBase):
    """Pay, finish, resume and apply platform results to payout intents."""

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
            if result.status is PayoutStatus.NO_FUNDS:
                # rule: pay.no_funds -- NOTENOUGH / NOT_ENOUGH: park the intent with its
                # reservation and its bill number; after a top-up, resume pays the very
                # same bill (reference §4.2).
                return self._finish(intent, result, events=events)
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
        if status is PayoutStatus.NO_FUNDS:
            self.store.update_intent(
                intent.bill_no, status="waiting_funds", now=now, detail=_detail(result)
            )
            return ClaimOutcome(
                status="waiting_funds",
                reason=result.state,
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

    def _resume_flow(self, intent: PayoutIntent) -> Flow[ClaimOutcome]:
        if intent.status == "paid":
            return ClaimOutcome(status="paid", bill_no=intent.bill_no, amount_fen=intent.amount_fen)
        if intent.status == "failed":
            return ClaimOutcome(
                status="failed", bill_no=intent.bill_no, amount_fen=intent.amount_fen
            )
        denial = self._policy_denial(intent) if intent.status in _RECHECKED else None
        if denial is not None:
            # The member withdrew consent, or the address is no longer theirs, since the
            # claim. Pay nothing more; release only what the platform confirms it never got.
            result = yield from self._query_step(intent.bill_no)
            if result.status is PayoutStatus.NOT_FOUND:
                return self._finish(intent, result, failed_reason=denial)
            return self._finish(intent, result)
        if intent.status == "reserved":
            # Written but possibly never sent (a crash before paying): paying is safe, the
            # bill number makes it idempotent either way.
            return (yield from self._pay_flow(intent, first=False))
        result = yield from self._query_step(intent.bill_no)
        for _ in range(1, self.max_attempts):
            # An ambiguous query answer (timeout, SYSTEMERROR) says nothing: ask again rather
            # than leave the intent open with money possibly moved and not settled.
            if result.status is not PayoutStatus.UNKNOWN:
                break
            yield from self._sleep_step(self.retry_interval)
            result = yield from self._query_step(intent.bill_no)
        if result.status is PayoutStatus.NOT_FOUND:
            return (yield from self._pay_flow(intent, first=False))
        return self._finish(intent, result)

    def _policy_denial(self, intent: PayoutIntent) -> str | None:
        member = self.store.get_member(intent.member_id)
        if member is None:
            return DenyReason.UNKNOWN_MEMBER.value
        reason = policy_denial(member, intent.address)
        return reason.value if reason is not None else None

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
