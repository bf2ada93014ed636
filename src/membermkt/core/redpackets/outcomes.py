"""What a decision returns: a :class:`Grant` (with budget :class:`Reservation` rows) or a
:class:`Deny` with its :class:`DenyReason`."""

from __future__ import annotations

import enum

import attrs


class DenyReason(enum.StrEnum):
    """Why a claim is not paid."""

    NOT_STARTED = "not_started"
    ENDED = "ended"
    NOT_ELIGIBLE = "not_eligible"
    NO_PROOF = "no_proof"
    """A purchase is required but the claim carries neither phone nor order id."""
    NO_PURCHASE = "no_purchase"
    """No purchase event matches the claim's phone / order id."""
    MEMBER_LIMIT = "member_limit"
    PHONE_LIMIT = "phone_limit"
    ORDER_LIMIT = "order_limit"
    PACKETS_EXHAUSTED = "packets_exhausted"
    BUDGET_EXHAUSTED = "budget_exhausted"
    DAILY_BUDGET_EXHAUSTED = "daily_budget_exhausted"
    PLATFORM_USER_LIMIT = "platform_user_limit"
    """The receiver reached the product's per-user daily count or money limit."""
    UNKNOWN_MEMBER = "unknown_member"
    """The store has no member with the claim's id (nothing to check consent against)."""
    NO_CONSENT = "no_consent"
    """The member refused marketing (``Consent.marketing=False``) or red packets."""
    ADDRESS_NOT_MEMBER = "address_not_member"
    """The claim's address is not one of the member's openids: money never goes to an
    openid the member does not hold."""


@attrs.frozen(slots=True)
class Reservation:
    """One budget row to reserve: ``amount`` out of a row whose limit is ``limit``.

    Money rows count fen; limit rows (per member, phone, order, packets, platform per-user
    counts) count packets. The engine creates missing rows with ``limit`` and reserves all of
    a grant's rows in one all-or-nothing transaction.
    """

    key: str
    amount: int
    limit: int


@attrs.frozen(slots=True, kw_only=True)
class Grant:
    """Pay ``amount_fen`` under ``bill_no`` after reserving ``reservations``.

    Attributes:
        amount_fen: the packet, in fen.
        bill_no: the merchant bill number (idempotency key at the platform).
        sequence: the member's claim sequence on this rule (part of the business key).
        order_id: the verified order, if the rule required one.
        reservations: budget rows to reserve atomically (see :class:`Reservation`).
    """

    amount_fen: int
    bill_no: str
    sequence: int
    order_id: str | None = None
    reservations: tuple[Reservation, ...] = ()

    @property
    def items(self) -> tuple[tuple[str, int], ...]:
        """The reservations as ``(key, amount)`` pairs for ``BudgetStore.reserve``."""
        return tuple((r.key, r.amount) for r in self.reservations)


@attrs.frozen(slots=True, kw_only=True)
class Deny:
    """The claim is refused; ``reason`` says why (a :class:`DenyReason`)."""

    reason: DenyReason
    detail: str = ""
