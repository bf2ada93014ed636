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

from membermkt.engine.redpackets._base import OPEN_STATUSES as OPEN_STATUSES
from membermkt.engine.redpackets._base import Flow as Flow
from membermkt.engine.redpackets._base import RedPacketStore
from membermkt.engine.redpackets._base import Step as Step
from membermkt.engine.redpackets.async_service import AsyncRedPacketService
from membermkt.engine.redpackets.outcome import ClaimOutcome
from membermkt.engine.redpackets.reconciliation import Mismatch, ReconciliationReport
from membermkt.engine.redpackets.sync_service import RedPacketService

__all__ = [
    "AsyncRedPacketService",
    "ClaimOutcome",
    "Mismatch",
    "ReconciliationReport",
    "RedPacketService",
    "RedPacketStore",
]
