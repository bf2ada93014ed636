"""The emulator class: public helpers, fault drawing and dispatch; the API groups come
from mixins (:mod:`._redpack`, :mod:`._transfer`, :mod:`._notify`, :mod:`._serve`)."""

from __future__ import annotations

import collections

import httpx

from membermkt.errors import UsageError
from membermkt.payouts.wechatpay.gateway import CLIENT_CERT_EXTENSION
from membermkt.testing.emulator.wechatpay._coupons import FAVOR_PATH, _CouponsMixin
from membermkt.testing.emulator.wechatpay._fission import _FissionMixin
from membermkt.testing.emulator.wechatpay._models import _TRANSFER_PATH, Fault
from membermkt.testing.emulator.wechatpay._serve import _ServeMixin
from membermkt.testing.emulator.wechatpay._transfer import _TransfersMixin


class WeChatPayEmulator(_FissionMixin, _TransfersMixin, _ServeMixin, _CouponsMixin):
    """An in-process WeChat Pay (v2 red packets, v3 transfers, v3 favor coupons) that
    enforces money rules.

    Args:
        credentials: from :func:`make_test_credentials` (the merchant certificate it expects
            and the platform key it signs with).
        appid: the appid bound to the merchant.
        api_key: the v2 API key (32 chars).
        api_v3_key: the APIv3 key (32 bytes) for callback encryption.
        use_public_key_id: sign v3 answers under the ``PUB_KEY_ID_...`` serial instead of
            the platform certificate serial.
        v2_bounds / v3_bounds: (min, max) fen per payout.
        per_user_daily_count / per_user_daily_fen: v2 per-receiver daily limits.
        fault_rate: probability that a request meets a random fault from ``faults``.
        faults: the faults to draw from.
        seed: seeds the fault RNG (and the effect-or-not coin).
        auto_confirm: v3 transfers succeed without the user's confirmation (else they stay
            ``WAIT_USER_CONFIRM`` until :meth:`confirm`).
        clock: a ``now()`` callable (default: the system clock) for timestamps and days.
        max_skew: v3 request timestamp window.
    """

    def __repr__(self) -> str:
        return (
            f"<WeChatPayEmulator mch_id={self.mch_id} bills={len(self.bills)} "
            f"payments={len(self.payments)} fault_rate={self.fault_rate}>"
        )

    # ------------------------------------------------------------------ public helpers

    def transport(self) -> httpx.MockTransport:
        """An httpx transport answering as WeChat Pay (sync and async clients)."""
        return httpx.MockTransport(self.handle)

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        """Force the next ``times`` requests to meet ``fault`` (whatever ``fault_rate``)."""
        with self._lock:
            self._forced.extend([Fault(fault)] * times)

    def set_status(self, bill_no: str, status: str) -> None:
        """Force a bill's platform status (e.g. ``"REFUND"`` for an unopened red packet).

        Raises:
            UsageError: for an unknown bill.
        """
        with self._lock:
            if bill_no not in self.bills:
                raise UsageError(f"unknown bill {bill_no!r}")
            self.bills[bill_no].status = status

    def paid_per_openid(self) -> collections.Counter[str]:
        """How many payments each openid received (a value > 1 with one-per-member rules is
        a double payout)."""
        with self._lock:
            return collections.Counter(p.openid for p in self.payments)

    @property
    def total_paid_fen(self) -> int:
        """All money moved."""
        with self._lock:
            return sum(p.amount_fen for p in self.payments)

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (the transport's handler).

        Raises:
            httpx.ConnectError: v2 call without a client certificate (handshake failure).
            httpx.ReadTimeout: when a timeout fault fires.
        """
        path = request.url.path
        body = request.read()
        with self._lock:
            self.counts[path] += 1
            fault = self._draw_fault()
        if path.startswith("/mmpaymkttransfers/"):
            cert = request.extensions.get(CLIENT_CERT_EXTENSION)
            if cert is None:
                raise httpx.ConnectError(
                    "TLS handshake failed: WeChat Pay requires the merchant client certificate",
                    request=request,
                )
            if path == "/mmpaymkttransfers/sendredpack":
                return self._v2_send(request, body, cert, fault)
            if path == "/mmpaymkttransfers/sendgroupredpack":
                return self._group_send(request, body, cert, fault)
            if path == "/mmpaymkttransfers/gethbinfo":
                return self._v2_query(request, body, cert, fault)
        elif path.startswith(_TRANSFER_PATH):
            return self._v3(request, body, fault)
        elif path.startswith(FAVOR_PATH):
            return self._favor(request, body, fault)
        return httpx.Response(404, text="not found")

    def _draw_fault(self) -> Fault | None:
        if self._forced:
            return self._forced.popleft()
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.faults)
        return None
