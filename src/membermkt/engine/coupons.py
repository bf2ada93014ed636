"""Granting coupons through a :class:`~membermkt.core.ports.CouponGateway`, on the ledger.

The grant is written to the payout ledger **before** the coupon system is called (rule id
``coupon:<stock_id>``, bill number = the deterministic request number of the business key),
so a crash, a timeout or a 5xx never leads to a second coupon: the next attempt (or
:meth:`CouponService.resolve`) sends the **same** ``out_request_no``, which the coupon system
de-duplicates, and its answer settles the row. A grant already settled is answered from the
ledger without calling anyone.

Every settled grant appends a ``coupon_granted`` event (key ``coupon_granted:<request_no>``)
and every redemption a ``coupon_used`` event (key ``coupon_used:<coupon_id>``), so segments
(``did("coupon_granted", where={"stock_id": ...})``) and reports see coupons like any other
behaviour.

Use (#19 journeys, campaigns, offers)::

    service = CouponService(store, gateway, clock)
    outcome = service.grant("m1", "openid-1", stock_id="9856000", reason="durian-2026-12")
    outcome.status  # CouponStatus.GRANTED / FAILED / UNKNOWN
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import attrs

from membermkt.core.analytics.offers import OfferResult
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.core.events import Event
from membermkt.core.membership.coupons import (
    COUPON_RULE_PREFIX,
    CouponGrant,
    CouponResult,
    CouponStatus,
    coupon_request_no,
    coupon_rule_id,
)
from membermkt.core.ports import Clock, CouponGateway, EventLog, PayoutIntent, PayoutLedger
from membermkt.errors import LedgerError, UsageError

__all__ = [
    "COUPON_GRANTED",
    "COUPON_USED",
    "CouponChannel",
    "CouponLedger",
    "CouponOutcome",
    "CouponService",
    "grant_offers",
]

COUPON_GRANTED = "coupon_granted"
COUPON_USED = "coupon_used"

_SETTLED = {"paid": CouponStatus.GRANTED, "failed": CouponStatus.FAILED}


class CouponLedger(PayoutLedger, EventLog):
    """What the service needs from a store (``InMemoryStore`` and ``SqlStore`` fit)."""


@attrs.frozen(slots=True, kw_only=True)
class CouponOutcome:
    """The result of one grant as the ledger now records it.

    Attributes:
        request_no: the ``out_request_no``.
        member_id / stock_id: whom, from which stock.
        status: ``GRANTED``, ``FAILED`` or ``UNKNOWN`` (resolve later).
        coupon_id: the coupon, when granted.
        reason: why it failed or is unknown.
        from_ledger: ``True`` when answered from an earlier settled grant (no call made).
    """

    request_no: str
    member_id: str
    stock_id: str
    status: CouponStatus
    coupon_id: str | None = None
    reason: str | None = None
    from_ledger: bool = False


def _detail(result: CouponResult) -> str:
    return json.dumps(
        {"coupon_id": result.coupon_id, "state": result.state, "reason": result.reason},
        ensure_ascii=False,
        sort_keys=True,
    )


def _read_detail(detail: str | None) -> dict[str, str | None]:
    if not detail:
        return {}
    try:
        data = json.loads(detail)
    except ValueError:
        return {"reason": detail}
    return data if isinstance(data, dict) else {}


class CouponService:
    """Grant coupons idempotently and record their use.

    Args:
        store: a payout ledger + event log (``InMemoryStore``, ``SqlStore``).
        gateway: the coupon system.
        clock: the time source for ledger rows and events.
        max_attempts: grant calls per :meth:`grant` while the answer is ``UNKNOWN`` (each with
            the same request number).

    Raises:
        UsageError: for ``max_attempts`` below 1.
    """

    def __init__(
        self, store: CouponLedger, gateway: CouponGateway, clock: Clock, *, max_attempts: int = 3
    ) -> None:
        if max_attempts < 1:
            raise UsageError(f"max_attempts must be >= 1, got {max_attempts}")
        self.store = store
        self.gateway = gateway
        self.clock = clock
        self.max_attempts = max_attempts

    def grant(
        self,
        member_id: str,
        openid: str,
        *,
        stock_id: str,
        reason: str,
        value_fen: int = 0,
        sequence: int = 1,
    ) -> CouponOutcome:
        """Give ``member_id`` one coupon of ``stock_id`` for ``reason`` (at most once per
        ``(stock, member, reason, sequence)``, whatever happens to the answers).

        Raises:
            UsageError: on an empty id, stock or reason.
        """
        request_no = coupon_request_no(stock_id, member_id, reason, sequence=sequence)
        grant = CouponGrant(
            stock_id=stock_id,
            request_no=request_no,
            member_id=member_id,
            openid=openid,
            value_fen=value_fen,
        )
        now = self.clock.now()
        stored = self.store.record_intent(
            PayoutIntent(
                bill_no=request_no,
                rule_id=coupon_rule_id(stock_id),
                member_id=member_id,
                address=openid,
                amount_fen=value_fen,
                status="reserved",
                created_at=now,
                updated_at=now,
            )
        )
        if stored.member_id != member_id or stored.address != openid:
            raise LedgerError(
                f"coupon request {request_no!r} is recorded for another member/openid"
            )
        if stored.status in _SETTLED:
            return self._from_intent(stored)
        return self._attempt(grant)

    def _from_intent(self, intent: PayoutIntent) -> CouponOutcome:
        detail = _read_detail(intent.detail)
        return CouponOutcome(
            request_no=intent.bill_no,
            member_id=intent.member_id,
            stock_id=intent.rule_id[len(COUPON_RULE_PREFIX) :],
            status=_SETTLED.get(intent.status, CouponStatus.UNKNOWN),
            coupon_id=detail.get("coupon_id"),
            reason=detail.get("reason"),
            from_ledger=True,
        )

    def _attempt(self, grant: CouponGrant) -> CouponOutcome:
        self.store.update_intent(grant.request_no, status="paying", now=self.clock.now())
        result = self.gateway.grant(grant)
        for _ in range(self.max_attempts - 1):
            if result.status is not CouponStatus.UNKNOWN:
                break
            result = self.gateway.grant(grant)  # the same out_request_no: at most one coupon
        return self._settle(grant, result)

    def _settle(self, grant: CouponGrant, result: CouponResult) -> CouponOutcome:
        now = self.clock.now()
        if result.status in (CouponStatus.GRANTED, CouponStatus.USED, CouponStatus.EXPIRED):
            status, ledger = CouponStatus.GRANTED, "paid"
        elif result.status is CouponStatus.FAILED:
            status, ledger = CouponStatus.FAILED, "failed"
        else:
            status, ledger = CouponStatus.UNKNOWN, "unknown"
        self.store.update_intent(grant.request_no, status=ledger, now=now, detail=_detail(result))
        if status is CouponStatus.GRANTED:
            self.store.append_events(
                [
                    Event(
                        member_id=grant.member_id,
                        type=COUPON_GRANTED,
                        at=now,
                        properties={
                            "stock_id": grant.stock_id,
                            "coupon_id": result.coupon_id or "",
                            "request_no": grant.request_no,
                            "value_fen": grant.value_fen,
                        },
                        key=f"{COUPON_GRANTED}:{grant.request_no}",
                    )
                ]
            )
        return CouponOutcome(
            request_no=grant.request_no,
            member_id=grant.member_id,
            stock_id=grant.stock_id,
            status=status,
            coupon_id=result.coupon_id,
            reason=result.reason or result.state,
        )

    def resolve(self, stock_ids: Iterable[str]) -> list[CouponOutcome]:
        """Settle every unfinished grant of ``stock_ids`` (``reserved``, ``paying``,
        ``unknown``: a crash or a lost answer) by granting again with the same request
        number; returns their outcomes by request number."""
        out: list[CouponOutcome] = []
        for stock_id in sorted(set(stock_ids)):
            for intent in self.store.intents(rule_id=coupon_rule_id(stock_id)):
                if intent.status in _SETTLED:
                    continue
                detail = _read_detail(intent.detail)
                value = intent.amount_fen
                grant = CouponGrant(
                    stock_id=stock_id,
                    request_no=intent.bill_no,
                    member_id=intent.member_id,
                    openid=intent.address,
                    value_fen=value,
                )
                outcome = self._attempt(grant)
                if outcome.coupon_id is None and detail.get("coupon_id"):
                    outcome = attrs.evolve(outcome, coupon_id=detail["coupon_id"])
                out.append(outcome)
        return out

    def record_use(self, result: CouponResult, *, stock_id: str | None = None) -> Event | None:
        """Record a redemption (from the ``COUPON.USE`` callback or a query) as a
        ``coupon_used`` event of the member the coupon was granted to; repeated callbacks
        give one event. Returns the event, or ``None`` when the result is not a use.

        ``stock_id`` defaults to the one the result names.

        Raises:
            UsageError: when neither ``stock_id`` nor the result names the stock.
            LedgerError: when no grant of the stock in the ledger produced that coupon.
        """
        if result.status is not CouponStatus.USED or not result.coupon_id:
            return None
        stock_id = stock_id or result.stock_id
        if not stock_id:
            raise UsageError("record_use: the result names no stock; pass stock_id=")
        for intent in self.store.intents(rule_id=coupon_rule_id(stock_id), status="paid"):
            if _read_detail(intent.detail).get("coupon_id") == result.coupon_id:
                event = Event(
                    member_id=intent.member_id,
                    type=COUPON_USED,
                    at=result.used_at or self.clock.now(),
                    properties={
                        "stock_id": stock_id,
                        "coupon_id": result.coupon_id,
                        "transaction_id": result.transaction_id or "",
                        "value_fen": intent.amount_fen,
                    },
                    key=f"{COUPON_USED}:{result.coupon_id}",
                )
                self.store.append_events([event])
                return event
        raise LedgerError(f"coupon {result.coupon_id!r} of stock {stock_id!r} is not in the ledger")


def grant_offers(
    service: CouponService,
    offers: OfferResult,
    stocks: Mapping[str, str],
    openids: Mapping[str, str],
    *,
    reason: str,
) -> list[CouponOutcome]:
    """Coupons as an offer result: every recommendation whose offer maps to a coupon stock
    (``stocks``: offer → stock id) gets that coupon, once per ``reason`` (e.g. the month's
    offer run). Members without an openid in ``openids`` are left out.

    Raises:
        UsageError: for an empty reason.
    """
    if not reason:
        raise UsageError("grant_offers: reason must be non-empty")
    out = []
    for member_id, offer in offers.recommendations:
        stock = stocks.get(offer)
        openid = openids.get(member_id)
        if stock is None or not openid:
            continue
        out.append(service.grant(member_id, openid, stock_id=stock, reason=f"{reason}:{offer}"))
    return out


class CouponChannel:
    """Coupons as a campaign action: a :class:`~membermkt.core.ports.Channel` named
    ``"wechatpay.coupon"`` whose deliveries grant a coupon (payload ``stock_id``, optional
    ``value_fen``) to the delivery's openid.

    The delivery's idempotency key is the grant's reason, so the request number is stable
    and a re-sent delivery never gives a second coupon (``idempotent=True``: the campaign
    runner may resend an uncertain one). Granted → ``SENT`` (platform id: the coupon id);
    refused → ``PERMANENT`` (``RETRYABLE`` when throttled); no answer → ``UNKNOWN``.
    """

    name = "wechatpay.coupon"

    def __init__(self, gateway: CouponGateway, *, appid: str = "") -> None:
        self.gateway = gateway
        self.capabilities = ChannelCapabilities(
            max_batch_size=50,
            idempotent=True,
            address_kind="openid",
            address_namespace=appid,
            rules=("favor.out_request_no idempotency", "stock budget", "per-user limit"),
        )

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Grant one coupon per delivery (one result per delivery, in order)."""
        out = []
        for d in batch:
            stock = d.payload.get("stock_id")
            value = d.payload.get("value_fen", 0)
            if not isinstance(stock, str) or not stock:
                out.append(
                    SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="no_stock_id")
                )
                continue
            try:
                grant = CouponGrant(
                    stock_id=stock,
                    request_no=coupon_request_no(stock, d.member_id, d.key),
                    member_id=d.member_id,
                    openid=d.address,
                    value_fen=value if isinstance(value, int) else 0,
                )
            except UsageError as exc:
                out.append(SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason=str(exc)))
                continue
            r = self.gateway.grant(grant)
            if r.status in (CouponStatus.GRANTED, CouponStatus.USED, CouponStatus.EXPIRED):
                out.append(SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=r.coupon_id))
            elif r.status is CouponStatus.FAILED:
                outcome = SendOutcome.RETRYABLE if r.retryable else SendOutcome.PERMANENT
                out.append(SendResult(key=d.key, outcome=outcome, reason=r.state))
            else:
                out.append(SendResult(key=d.key, outcome=SendOutcome.UNKNOWN, reason=r.state))
        return out
