"""What happened to a claim: :class:`ClaimOutcome`."""

from __future__ import annotations

import attrs

from membermkt.payouts.base import PayoutResult


@attrs.frozen(slots=True, kw_only=True)
class ClaimOutcome:
    """What happened to a claim.

    Attributes:
        status: ``"paid"`` (money sent), ``"pending"`` (accepted by the platform, not final:
            waiting for the user or processing; the reservation is held), ``"unknown"`` (no
            definite answer after the retries; the reservation is held and
            :meth:`RedPacketService.resume` / reconciliation finishes it), ``"failed"``
            (definitively not paid; reservation released), ``"waiting_funds"`` (the
            merchant account lacked funds: the reservation and the bill number are kept;
            top up, then :meth:`RedPacketService.resume_open` pays the same bill) or
            ``"denied"``.
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
