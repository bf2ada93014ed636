"""The payout port: what the engine needs from anything that moves money to a member.

A :class:`PayoutGateway` pays a :class:`PayoutRequest` under the caller's bill number and
answers with a :class:`PayoutResult` whose :class:`PayoutStatus` tells the engine what it may
do next:

========================  ===================================================================
status                    meaning / what the engine does
========================  ===================================================================
``SUCCESS``               the money left the merchant (v2 ``SENT``/``RECEIVED``, v3
                          ``SUCCESS``): settle the budget
``PENDING``               accepted, still in progress (``SENDING``, ``PROCESSING``,
                          ``ACCEPTED``, ``WAIT_USER_CONFIRM``...): keep the reservation,
                          query later with the same bill number
``FAILED``                definitively not paid: release the reservation
``UNKNOWN``               no usable answer (timeout, ``SYSTEMERROR``, 5xx, unknown code,
                          unverifiable response): query, then retry with the **same** bill
                          number; never mint a new one
``NOT_FOUND``             (queries only) the platform has no bill with that number: the
                          payment never arrived, so paying again with the same number is safe
``REFUNDED``              a red packet was not opened in time and the money went back
``NO_FUNDS``              the merchant account lacks funds (v2 ``NOTENOUGH``, v3
                          ``NOT_ENOUGH``): not paid *yet*; keep the reservation and the bill
                          number, top up, then retry with the **same** bill number
                          (reference §4.2: "top up, then retry with the same billno")
========================  ===================================================================

Gateways never raise for a platform answer or a transport failure (they classify it); they
raise :class:`~membermkt.errors.ConfigError` / :class:`~membermkt.errors.UsageError` for
wrong configuration or input.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from membermkt.core._frozen import FrozenMap
from membermkt.errors import UsageError

__all__ = [
    "AsyncPayoutGateway",
    "HttpRequest",
    "HttpResponse",
    "PayoutGateway",
    "PayoutRequest",
    "PayoutResult",
    "PayoutStatus",
]


class PayoutStatus(enum.StrEnum):
    """How a payout stands at the platform (see the module table)."""

    SUCCESS = "success"
    PENDING = "pending"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"
    REFUNDED = "refunded"
    NO_FUNDS = "no_funds"

    @property
    def definitive(self) -> bool:
        """``True`` for statuses that will not change by themselves (success, failed,
        refunded)."""
        return self in (PayoutStatus.SUCCESS, PayoutStatus.FAILED, PayoutStatus.REFUNDED)


def _positive_fen(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"PayoutRequest.amount_fen must be a positive int (fen), got {value!r}")


def _nonempty(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"PayoutRequest.{attribute.name} must be a non-empty str, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class PayoutRequest:
    """One payout to make.

    Attributes:
        bill_no: the merchant bill number (the platform's idempotency key).
        openid: the receiver's openid under the paying appid.
        amount_fen: amount in fen.
        remark: shown to the receiver where the product supports it (v2 ``wishing``, v3
            ``transfer_remark``); the gateway's configured text when empty.
        user_name: the receiver's real name, where the product needs it (v3 transfers of
            2,000 CNY or more; sent RSA-OAEP encrypted with the platform key). Kept out of
            ``repr``.
    """

    bill_no: str = attrs.field(validator=_nonempty)
    openid: str = attrs.field(validator=_nonempty)
    amount_fen: int = attrs.field(validator=_positive_fen)
    remark: str = ""
    user_name: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(slots=True, kw_only=True)
class PayoutResult:
    """What the platform said about a bill.

    Attributes:
        bill_no: the merchant bill number.
        status: a :class:`PayoutStatus`.
        platform_id: the platform's id (v2 ``send_listid`` / ``detail_id``, v3
            ``transfer_bill_no``), when known.
        state: the platform's raw state / error code (``"SENT"``, ``"SYSTEMERROR"``, ...).
        reason: a human-readable explanation for failures.
        retryable: for ``FAILED``: retrying later (after a top-up, tomorrow...) can succeed.
        amount_fen: the amount the platform holds for the bill, when it says.
        package_info: v3 ``WAIT_USER_CONFIRM``: what the client needs to let the user confirm.
    """

    bill_no: str
    status: PayoutStatus = attrs.field(converter=PayoutStatus)
    platform_id: str | None = None
    state: str | None = None
    reason: str | None = None
    retryable: bool = False
    amount_fen: int | None = None
    package_info: str | None = None


@runtime_checkable
class PayoutGateway(Protocol):
    """Moves money (sync). Implementations: WeChat Pay v2 red packets and v3 transfers.

    ``product`` names the :class:`~membermkt.core.redpackets.PayoutProduct` it pays
    (``"wechatpay.v2.redpack"``, ``"wechatpay.v3.transfer"``).
    """

    product: str

    def pay(self, request: PayoutRequest) -> PayoutResult:
        """Pay under ``request.bill_no`` (idempotent at the platform for the same bill)."""
        ...

    def query(self, bill_no: str) -> PayoutResult:
        """Where the bill stands (``NOT_FOUND`` when the platform has none)."""
        ...


@runtime_checkable
class AsyncPayoutGateway(Protocol):
    """The async twin of :class:`PayoutGateway`."""

    product: str

    async def pay(self, request: PayoutRequest) -> PayoutResult: ...

    async def query(self, bill_no: str) -> PayoutResult: ...


# --------------------------------------------------------------------------- sans-I/O messages


def _to_headers(value: Mapping[str, str]) -> FrozenMap[str, str]:
    return value if isinstance(value, FrozenMap) else FrozenMap(dict(value))


@attrs.frozen(slots=True, kw_only=True)
class HttpRequest:
    """A request built by the pure request builders, sent by a gateway driver."""

    method: str
    path: str
    headers: FrozenMap[str, str] = attrs.field(factory=FrozenMap, converter=_to_headers)
    body: bytes = b""


@attrs.frozen(slots=True, kw_only=True)
class HttpResponse:
    """A response handed to the pure parsers."""

    status_code: int
    headers: FrozenMap[str, str] = attrs.field(factory=FrozenMap, converter=_to_headers)
    body: bytes = b""
