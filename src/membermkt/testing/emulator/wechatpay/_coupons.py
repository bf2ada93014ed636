"""v3 coupons (the favor API): stocks with budgets and per-user limits, grants idempotent by
``out_request_no``, coupon queries, redemption and ``COUPON.USE`` callbacks.

The rules enforced are the ones that keep money and promises straight: a stock never issues
more than ``max_coupons``; a user never holds more than ``max_coupons_per_user`` of a stock;
an ``out_request_no`` seen before is answered from the record (the same ``coupon_id``), even
once the stock is exhausted, and is refused when reused for another stock or user. The
error-code names (``NOT_ENOUGH``, ``RULE_LIMIT``, ``RESOURCE_NOT_EXISTS``,
``INVALID_REQUEST``) are unconfirmed (see :mod:`membermkt.payouts.wechatpay.coupons`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import urllib.parse
from typing import Any, Final

import attrs
import httpx

from membermkt.errors import UsageError
from membermkt.payouts.wechatpay.signing import aead_encrypt, rsa_sign, v3_response_message
from membermkt.testing.emulator.wechatpay._models import Callback, Fault
from membermkt.testing.emulator.wechatpay._signing import _SigningMixin

FAVOR_PATH: Final = "/v3/marketing/favor/users/"
_REQUEST_NO_RE: Final = re.compile(r"^[0-9A-Za-z|_*-]{1,128}$")


@attrs.define(slots=True)
class Stock:
    """A coupon stock (批次) as the emulator holds it."""

    stock_id: str
    creator_mchid: str
    max_coupons: int
    max_coupons_per_user: int
    coupon_amount_fen: int
    transaction_minimum_fen: int
    available_days: int
    issued: int = 0

    @property
    def remaining(self) -> int:
        """Coupons the stock can still issue."""
        return self.max_coupons - self.issued


@attrs.define(slots=True)
class Coupon:
    """A coupon in a user's wallet."""

    coupon_id: str
    stock_id: str
    openid: str
    out_request_no: str
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    used_at: dt.datetime | None = None
    transaction_id: str | None = None


class _CouponsMixin(_SigningMixin):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stocks: dict[str, Stock] = {}
        self.coupons: dict[str, Coupon] = {}
        self.coupon_requests: dict[str, str] = {}
        self.coupon_callback_url: str | None = None

    # ------------------------------------------------------------------ test helpers

    def create_stock(
        self,
        stock_id: str,
        *,
        max_coupons: int,
        max_coupons_per_user: int = 1,
        coupon_amount_fen: int = 1000,
        transaction_minimum_fen: int = 0,
        available_days: int = 30,
        creator_mchid: str | None = None,
    ) -> Stock:
        """Create and activate a stock (the merchant console's job on the real platform).

        Raises:
            UsageError: on a duplicate stock or non-positive limits.
        """
        if max_coupons < 1 or max_coupons_per_user < 1 or coupon_amount_fen < 1:
            raise UsageError("create_stock: limits and the coupon amount must be positive")
        with self._lock:
            if stock_id in self.stocks:
                raise UsageError(f"stock {stock_id!r} exists")
            stock = Stock(
                stock_id=stock_id,
                creator_mchid=creator_mchid or self.mch_id,
                max_coupons=max_coupons,
                max_coupons_per_user=max_coupons_per_user,
                coupon_amount_fen=coupon_amount_fen,
                transaction_minimum_fen=transaction_minimum_fen,
                available_days=available_days,
            )
            self.stocks[stock_id] = stock
            return stock

    def set_coupon_callback(self, url: str) -> None:
        """Set the merchant's favor callback URL (``POST /v3/marketing/favor/callbacks``)."""
        with self._lock:
            self.coupon_callback_url = url

    def use_coupon(self, coupon_id: str, *, transaction_id: str) -> Coupon:
        """The user pays with the coupon: it becomes ``USED`` and a ``COUPON.USE`` callback
        is queued (when a callback URL is set).

        Raises:
            UsageError: for an unknown coupon or one that is not ``SENDED``.
        """
        with self._lock:
            coupon = self.coupons.get(coupon_id)
            if coupon is None or coupon.status != "SENDED":
                raise UsageError(f"coupon {coupon_id!r} cannot be used")
            now = self._clock()
            if now >= coupon.expires_at:
                coupon.status = "EXPIRED"
                raise UsageError(f"coupon {coupon_id!r} expired")
            coupon.status = "USED"
            coupon.used_at = now
            coupon.transaction_id = transaction_id
            if self.coupon_callback_url:
                self.callbacks.append(self._coupon_callback(self.coupon_callback_url, coupon))
            return coupon

    def coupons_of(self, openid: str, stock_id: str | None = None) -> list[Coupon]:
        """The coupons a user holds (optionally of one stock), by coupon id."""
        with self._lock:
            return sorted(
                (
                    c
                    for c in self.coupons.values()
                    if c.openid == openid and (stock_id is None or c.stock_id == stock_id)
                ),
                key=lambda c: c.coupon_id,
            )

    # ------------------------------------------------------------------ API

    def _favor(self, request: httpx.Request, body: bytes, fault: Fault | None) -> httpx.Response:
        denied = self._v3_auth(request, body)
        if denied is not None:
            return denied
        rest = request.url.path[len(FAVOR_PATH) :].split("/")
        if len(rest) == 2 and rest[1] == "coupons" and request.method == "POST":
            return self._favor_grant(request, urllib.parse.unquote(rest[0]), body, fault)
        if len(rest) == 3 and rest[1] == "coupons" and request.method == "GET":
            if fault is Fault.TIMEOUT:
                raise httpx.ReadTimeout("emulated timeout", request=request)
            if fault is Fault.SYSTEMERROR:
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            if request.url.params.get("appid") != self.appid:
                return self._v3_error(400, "PARAM_ERROR", "appid does not match the merchant")
            with self._lock:
                coupon = self.coupons.get(urllib.parse.unquote(rest[2]))
                if coupon is None or coupon.openid != urllib.parse.unquote(rest[0]):
                    return self._v3_error(404, "RESOURCE_NOT_EXISTS", "券不存在")
                self._expire(coupon)
                return self._signed(200, self._coupon_view(coupon))
        return self._v3_error(404, "NOT_FOUND", "no such API")

    def _favor_grant(
        self, request: httpx.Request, openid: str, body: bytes, fault: Fault | None
    ) -> httpx.Response:
        try:
            data = json.loads(body)
            stock_id = str(data["stock_id"])
            request_no = str(data["out_request_no"])
            appid = data["appid"]
            creator = str(data["stock_creator_mchid"])
        except (ValueError, KeyError, TypeError):
            return self._v3_error(400, "PARAM_ERROR", "malformed body")
        if appid != self.appid:
            return self._v3_error(400, "PARAM_ERROR", "appid does not match the merchant")
        if not _REQUEST_NO_RE.match(request_no):
            return self._v3_error(400, "PARAM_ERROR", "out_request_no: 1-128 of [0-9A-Za-z|_*-]")
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            known = self.coupon_requests.get(request_no)
            if known is not None:
                coupon = self.coupons[known]
                if coupon.stock_id != stock_id or coupon.openid != openid:
                    return self._v3_error(400, "INVALID_REQUEST", "out_request_no reused")
                return self._grant_answer(request, coupon, fault)
            stock = self.stocks.get(stock_id)
            if stock is None:
                return self._v3_error(404, "RESOURCE_NOT_EXISTS", "批次不存在")
            if stock.creator_mchid != creator:
                return self._v3_error(403, "NO_AUTH", "stock_creator_mchid does not own the stock")
            if stock.remaining <= 0:
                return self._v3_error(403, "NOT_ENOUGH", "批次预算不足")
            held = sum(
                1 for c in self.coupons.values() if c.stock_id == stock_id and c.openid == openid
            )
            if held >= stock.max_coupons_per_user:
                return self._v3_error(403, "RULE_LIMIT", "用户领券已达上限")
            if not applied:
                if fault is Fault.TIMEOUT:
                    raise httpx.ReadTimeout("emulated timeout", request=request)
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            now = self._clock()
            coupon = Coupon(
                coupon_id=f"{len(self.coupons) + 1:07d}{secrets.token_hex(3)}",
                stock_id=stock_id,
                openid=openid,
                out_request_no=request_no,
                status="SENDED",
                created_at=now,
                expires_at=now + dt.timedelta(days=stock.available_days),
            )
            stock.issued += 1
            self.coupons[coupon.coupon_id] = coupon
            self.coupon_requests[request_no] = coupon.coupon_id
            return self._grant_answer(request, coupon, fault)

    def _grant_answer(
        self, request: httpx.Request, coupon: Coupon, fault: Fault | None
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout after the grant", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
        return self._signed(200, {"coupon_id": coupon.coupon_id})

    def _expire(self, coupon: Coupon) -> None:
        if coupon.status == "SENDED" and self._clock() >= coupon.expires_at:
            coupon.status = "EXPIRED"

    def _coupon_view(self, coupon: Coupon) -> dict[str, Any]:
        stock = self.stocks[coupon.stock_id]
        view: dict[str, Any] = {
            "stock_creator_mchid": stock.creator_mchid,
            "stock_id": coupon.stock_id,
            "coupon_id": coupon.coupon_id,
            "coupon_name": f"emulated stock {coupon.stock_id}",
            "status": coupon.status,
            "description": "",
            "create_time": coupon.created_at.isoformat(),
            "coupon_type": "NORMAL",
            "no_cash": False,
            "available_begin_time": coupon.created_at.isoformat(),
            "available_end_time": coupon.expires_at.isoformat(),
            "singleitem": False,
            "normal_coupon_information": {
                "coupon_amount": stock.coupon_amount_fen,
                "transaction_minimum": stock.transaction_minimum_fen,
            },
        }
        if coupon.status == "USED" and coupon.used_at is not None:
            view["consume_information"] = {
                "consume_time": coupon.used_at.isoformat(),
                "consume_mchid": self.mch_id,
                "transaction_id": coupon.transaction_id or "",
            }
        return view

    def _coupon_callback(self, url: str, coupon: Coupon) -> Callback:
        nonce = secrets.token_urlsafe(9)[:12]
        resource = json.dumps(self._coupon_view(coupon), ensure_ascii=False).encode()
        envelope = {
            "id": secrets.token_hex(16),
            "create_time": self._clock().isoformat(),
            "resource_type": "encrypt-resource",
            "event_type": "COUPON.USE",
            "summary": "代金券核销通知",
            "resource": {
                "original_type": "coupon",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aead_encrypt(self.api_v3_key, nonce, resource, "coupon"),
                "associated_data": "coupon",
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        ts = str(int(self._clock().timestamp()))
        sig_nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "Wechatpay-Nonce": sig_nonce,
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": rsa_sign(
                self._platform_key, v3_response_message(ts, sig_nonce, body)
            ),
        }
        return Callback(url=url, headers=headers, body=body)
