"""Reconciliation: compare payout intents with the platform's records, finish what is
still open and report every mismatch."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from membermkt.core.ports import PayoutIntent
from membermkt.core.redpackets import RedPacketRule
from membermkt.engine.redpackets._base import OPEN_STATUSES, Flow
from membermkt.engine.redpackets.paying import _PayFlows
from membermkt.payouts.base import PayoutResult, PayoutStatus


@attrs.frozen(slots=True, kw_only=True)
class Mismatch:
    """One disagreement between our payout ledger and the platform.

    Attributes:
        bill_no: the bill.
        kind: ``"paid_not_found"`` (we say paid, the platform has no bill),
            ``"paid_but_failed"``, ``"failed_but_paid"`` (the platform paid a bill we
            released: the budget under-counts), ``"refunded"`` (an unopened red packet went
            back), ``"amount"`` (amounts differ), ``"unresolved"`` (still no definite
            answer), ``"waiting_funds"`` (parked until the merchant account is topped
            up), ``"orphan"`` (the platform knows a bill we have no intent for).
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


class _ReconcileFlows(_PayFlows):
    """The reconciliation flow."""

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
                if intent.status == "waiting_funds" and not result.status.definitive:
                    # Parked for a top-up: the platform has no bill yet, and the bill number
                    # must be paid as it is after the top-up, never released for a new one.
                    mismatches.append(
                        Mismatch(
                            bill_no=intent.bill_no,
                            kind="waiting_funds",
                            ours=intent.status,
                            theirs=theirs,
                            detail="merchant account lacked funds: top up, then resume_open",
                        )
                    )
                    continue
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
