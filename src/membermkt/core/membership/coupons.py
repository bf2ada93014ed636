"""Coupons as domain values: what to grant, what the coupon system answered, and the
deterministic request number that makes a grant idempotent.

A coupon grant is money-like: the platform (WeChat Pay's favor API, or your own coupon
system behind :class:`~membermkt.core.ports.CouponGateway`) de-duplicates by the merchant's
request number, so the number must come from the *business key* (stock, member, reason),
never from a clock or a random draw. :func:`coupon_request_no` derives it; the engine writes
it to the payout ledger before calling the gateway, and an ambiguous answer is resolved by
sending the **same** number again (the favor API is idempotent on ``out_request_no``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import re
from typing import Any, Final

import attrs

from membermkt.errors import UsageError

__all__ = [
    "COUPON_RULE_PREFIX",
    "CouponGrant",
    "CouponResult",
    "CouponStatus",
    "coupon_request_no",
    "coupon_rule_id",
]

COUPON_RULE_PREFIX: Final = "coupon:"
"""Payout-ledger ``rule_id`` prefix of coupon grants (``coupon:<stock_id>``)."""

_REQUEST_NO_RE: Final = re.compile(r"^[0-9A-Za-z|_*-]{1,128}$")
_STOCK_RE: Final = re.compile(r"^[0-9A-Za-z_-]{1,20}$")


class CouponStatus(enum.StrEnum):
    """Where a coupon grant stands.

    ``GRANTED`` the coupon exists in the member's wallet; ``USED`` it was redeemed;
    ``EXPIRED`` it lapsed unused; ``FAILED`` the grant certainly did not happen (stock
    exhausted, per-user limit, bad parameters); ``UNKNOWN`` no usable answer (resend with
    the same request number); ``NOT_FOUND`` (queries only) no such coupon.
    """

    GRANTED = "granted"
    USED = "used"
    EXPIRED = "expired"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"

    @property
    def definitive(self) -> bool:
        """``True`` when the grant's outcome is settled (the coupon exists or never will)."""
        return self in (
            CouponStatus.GRANTED,
            CouponStatus.USED,
            CouponStatus.EXPIRED,
            CouponStatus.FAILED,
        )


def _nonempty(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"CouponGrant.{attribute.name} must be a non-empty str, got {value!r}")


def _request_no(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _REQUEST_NO_RE.match(value):
        raise UsageError(
            f"CouponGrant.request_no must be 1-128 chars of [0-9A-Za-z|_*-], got {value!r}"
        )


def _stock(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not _STOCK_RE.match(value):
        raise UsageError(f"CouponGrant.stock_id must be 1-20 chars of [0-9A-Za-z_-], got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class CouponGrant:
    """One coupon to give one member.

    Attributes:
        stock_id: the coupon stock (批次) to draw from.
        request_no: the idempotency key (``out_request_no``), see :func:`coupon_request_no`.
        member_id: the member receiving it.
        openid: the member's openid under the gateway's appid.
        value_fen: the coupon's face value in fen when known (reports; ``0`` if unknown).

    Raises:
        UsageError: on an empty or malformed field.
    """

    stock_id: str = attrs.field(validator=_stock)
    request_no: str = attrs.field(validator=_request_no)
    member_id: str = attrs.field(validator=_nonempty)
    openid: str = attrs.field(validator=_nonempty)
    value_fen: int = 0

    def __attrs_post_init__(self) -> None:
        v = self.value_fen
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise UsageError(f"CouponGrant.value_fen must be an int >= 0, got {v!r}")


@attrs.frozen(slots=True, kw_only=True)
class CouponResult:
    """What the coupon system said about one grant (or one coupon, for queries).

    Attributes:
        request_no: the grant's request number (``""`` for a query by coupon id).
        status: see :class:`CouponStatus`.
        coupon_id: the platform's coupon id when known.
        state: the platform's raw state or error code (``SENDED``, ``USED``,
            ``RULE_LIMIT``, ``HTTP_500``...).
        reason: a human-readable reason.
        used_at: when a used coupon was redeemed.
        transaction_id: the payment that redeemed it (attribution).
        stock_id: the coupon's stock when the answer names it (queries, callbacks).
        retryable: for ``FAILED``: whether a later attempt may succeed (e.g. frequency limit).
    """

    request_no: str
    status: CouponStatus
    coupon_id: str | None = None
    state: str | None = None
    reason: str | None = None
    used_at: dt.datetime | None = None
    transaction_id: str | None = None
    stock_id: str | None = None
    retryable: bool = False


def coupon_rule_id(stock_id: str) -> str:
    """The payout-ledger ``rule_id`` of grants from ``stock_id``."""
    return f"{COUPON_RULE_PREFIX}{stock_id}"


def coupon_request_no(stock_id: str, member_id: str, reason: str, *, sequence: int = 1) -> str:
    """The deterministic request number of the business key ``(stock, member, reason,
    sequence)``: ``"c"`` + 31 hex digits of SHA-256 (32 chars, valid for the favor API's
    ``out_request_no``).

    ``reason`` names why the coupon is given (a campaign id, a journey step, an offer), so the
    same member can get the same stock for two different reasons, and never twice for one.

    Raises:
        UsageError: on an empty stock, member or reason, or a sequence below 1.
    """
    for name, value in (("stock_id", stock_id), ("member_id", member_id), ("reason", reason)):
        if not isinstance(value, str) or not value:
            raise UsageError(f"coupon_request_no: {name} must be a non-empty str, got {value!r}")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise UsageError(f"coupon_request_no: sequence must be a positive int, got {sequence!r}")
    key = "\x1f".join((stock_id, member_id, reason, str(sequence))).encode()
    return "c" + hashlib.sha256(key).hexdigest()[:31]
