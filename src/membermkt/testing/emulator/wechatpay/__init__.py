"""A WeChat Pay emulator (v2 cash red packets, v3 merchant transfers) and test credentials.

The emulator is an httpx transport (:meth:`WeChatPayEmulator.transport`), so the real
gateways in :mod:`membermkt.payouts.wechatpay.gateway` run unchanged against it; it can also
serve on loopback over real mutual TLS (:meth:`WeChatPayEmulator.serve`) for tests that use
several processes. It enforces the platform rules that matter for money:

* v2: the merchant client certificate (missing → the TLS handshake fails; another
  certificate → ``CA_ERROR``), the MD5 signature, amount bounds, per-user daily count and
  amount limits, ``mch_billno`` format and idempotency (a repeated bill is answered from the
  record, never paid twice).
* v3: the ``Authorization`` signature with the merchant's public key, the timestamp window,
  amount bounds, ``out_bill_no`` format and idempotency; responses are signed with the
  emulator's own platform key (``Wechatpay-Serial`` = a certificate serial or a
  ``PUB_KEY_ID_...``); finished transfers produce AES-256-GCM-encrypted, signed callbacks.
* Faults on purpose (:class:`Fault`): ``SYSTEMERROR`` / HTTP 500, ``PROCESSING``, timeouts —
  each randomly before or after the payment took effect, from a seeded RNG, so "the answer
  was lost but the money moved" really happens in tests.

The ledger of real money movements is :attr:`WeChatPayEmulator.payments`: count double
payouts there (:meth:`WeChatPayEmulator.paid_per_openid`).

:func:`make_test_credentials` generates a throw-away CA, merchant certificate, platform
certificate / public key and loopback server certificate with ``cryptography`` — never
commit private keys; generate them at test time.

Error codes follow the official sendredpack error table (``SENDNUM_LIMIT``,
``RCVDAMOUNT_LIMIT``, ``SENDAMOUNT_LIMIT``, ``FATAL_ERROR``, ``NOTENOUGH``, ``MONEY_LIMIT``,
``FREQ_LIMIT``); names our reference does not confirm (v2 ``NOT_FOUND``, v3 ``NOT_ENOUGH``,
``INVALID_REQUEST``, ``QUOTA_EXCEED``) are marked as guesses where they are raised. Every rule
the emulator enforces carries a ``# rule: <id>`` marker listed in the rule inventory
(docs/platform-rules/index.md).

Layout: :mod:`._models` (records), :mod:`._credentials` (test keys and certificates),
:mod:`._base` (shared state), :mod:`._signing` (v3 signing), :mod:`._redpack` (v2 red
packets), :mod:`._transfer` (v3 transfers), :mod:`._notify` (v3 callbacks), :mod:`._serve`
(loopback mutual TLS), :mod:`._coupons` (v3 favor coupons: stocks, per-user limits,
``out_request_no`` idempotency, ``COUPON.USE`` callbacks) and :mod:`._emulator` (the
class, composed from those mixins).
"""

from membermkt.testing.emulator.wechatpay._coupons import Coupon, Stock
from membermkt.testing.emulator.wechatpay._credentials import (
    TestCredentials,
    make_test_credentials,
)
from membermkt.testing.emulator.wechatpay._emulator import WeChatPayEmulator
from membermkt.testing.emulator.wechatpay._models import Callback, Fault, Payment

__all__ = [
    "Callback",
    "Coupon",
    "Fault",
    "Payment",
    "Stock",
    "TestCredentials",
    "WeChatPayEmulator",
    "make_test_credentials",
]
