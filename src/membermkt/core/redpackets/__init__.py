"""Red-packet rules and the pure decision "may this claim be paid, and how much?".

Money demands more care than messages, so everything that *decides* lives here, pure and
property-tested; the engine (:mod:`membermkt.engine.redpackets`) only executes decisions:

* :class:`RedPacketRule` — who may claim (a segment), when (a time window), how much money
  (total and daily budgets in fen, a packet cap), how often (per member, per phone, per
  order), whether a verified purchase is required, and the platform bounds of the payout
  product (:class:`PayoutProduct`).
* Amount strategies — :class:`FixedAmount`, :class:`UniformAmount` (whole fen in
  ``[min, max]``) and :class:`LuckySplit` (a total cut into ``N`` parts, each at least the
  minimum; see :func:`lucky_split`).
* :func:`decide` — ``(rule, member, claim, state, as_of, rng) -> Grant | Deny``. A
  :class:`Grant` carries the amount, the **bill number** (derived from the business key, so
  a retry never mints a new one) and the budget rows to reserve atomically.
* :func:`bill_no` — deterministic merchant bill numbers in the platform formats
  (v2 ``mch_billno``: ``mch_id + yyyymmdd + 10 digits``, ≤ 28 chars; v3 ``out_bill_no``:
  ≤ 32 chars of ``[0-9a-zA-Z]``).
* :func:`claim_event` / :func:`paid_event` / :func:`claim_report` — claims and payouts as
  events, and the "who claimed when, from where, and did they buy again" report.

Nothing here reads the clock or global randomness: ``as_of`` and ``rng`` are arguments.
"""

from __future__ import annotations

from membermkt.core.redpackets._base import BEIJING
from membermkt.core.redpackets.amounts import (
    AmountStrategy,
    FixedAmount,
    LuckySplit,
    UniformAmount,
    lucky_split,
)
from membermkt.core.redpackets.billing import bill_no, budget_keys, is_valid_bill_no
from membermkt.core.redpackets.claims import Claim, ClaimState
from membermkt.core.redpackets.decision import REDPACKET_CHANNEL, decide, policy_denial
from membermkt.core.redpackets.outcomes import Deny, DenyReason, Grant, Reservation
from membermkt.core.redpackets.products import (
    WECHATPAY_V2_REDPACK,
    WECHATPAY_V3_TRANSFER,
    PayoutProduct,
)
from membermkt.core.redpackets.report import (
    ClaimReport,
    ClaimRow,
    claim_event,
    claim_report,
    paid_event,
)
from membermkt.core.redpackets.rule import RedPacketRule

__all__ = [
    "BEIJING",
    "REDPACKET_CHANNEL",
    "WECHATPAY_V2_REDPACK",
    "WECHATPAY_V3_TRANSFER",
    "AmountStrategy",
    "Claim",
    "ClaimReport",
    "ClaimRow",
    "ClaimState",
    "Deny",
    "DenyReason",
    "FixedAmount",
    "Grant",
    "LuckySplit",
    "PayoutProduct",
    "RedPacketRule",
    "Reservation",
    "UniformAmount",
    "bill_no",
    "budget_keys",
    "claim_event",
    "claim_report",
    "decide",
    "is_valid_bill_no",
    "lucky_split",
    "paid_event",
    "policy_denial",
]
