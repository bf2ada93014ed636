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

Error-code names the reference marks unconfirmed (``SENDNUMLIMIT``, ``RCVDAMOUNTLIMIT``,
``PARAM_ERROR``, ``NOT_FOUND``, ``INVALID_REQUEST``) are used as the emulator's answers; the
gateways classify every unknown code as "outcome unknown", so the names do not affect safety.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import enum
import http.server
import ipaddress
import json
import os
import random
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

import attrs
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from membermkt.core.redpackets import BEIJING, WECHATPAY_V2_REDPACK, WECHATPAY_V3_TRANSFER
from membermkt.errors import DecryptError, SignatureError, UsageError
from membermkt.payouts.wechatpay.gateway import CLIENT_CERT_EXTENSION, certificate_serial
from membermkt.payouts.wechatpay.signing import (
    aead_encrypt,
    from_xml,
    parse_authorization,
    rsa_sign,
    rsa_verify,
    to_xml,
    v2_sign,
    v2_verify,
    v3_request_message,
    v3_response_message,
)

__all__ = [
    "Callback",
    "Fault",
    "Payment",
    "TestCredentials",
    "WeChatPayEmulator",
    "make_test_credentials",
]

_BILL_V2_MAX: Final = 28
_BILL_V3_MAX: Final = 32
_TRANSFER_PATH: Final = "/v3/fund-app/mch-transfer/transfer-bills"


# --------------------------------------------------------------------------- credentials


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    not_before: dt.datetime,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer if not ca else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before - dt.timedelta(days=1))
        .not_valid_after(not_before + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@attrs.frozen(slots=True, kw_only=True)
class TestCredentials:
    """Throw-away keys and certificates for a test merchant (PEM bytes).

    Attributes:
        mch_id: the merchant id the merchant certificate was issued to.
        ca_cert: the test CA (signs every certificate below).
        merchant_cert / merchant_key: ``apiclient_cert.pem`` / ``apiclient_key.pem``.
        merchant_serial: the merchant certificate serial (v3 ``serial_no``).
        platform_cert / platform_key: the emulated WeChat Pay platform certificate and key.
        platform_serial: the platform certificate serial (``Wechatpay-Serial``).
        platform_public_key_id: the id of the same key in the public-key scheme.
        server_cert / server_key: a certificate for ``127.0.0.1`` (loopback TLS).
    """

    __test__ = False  # not a pytest test class

    mch_id: str
    ca_cert: bytes
    merchant_cert: bytes
    merchant_key: bytes = attrs.field(repr=False)
    merchant_serial: str
    platform_cert: bytes
    platform_key: bytes = attrs.field(repr=False)
    platform_serial: str
    platform_public_key_id: str
    platform_public_key: bytes
    server_cert: bytes
    server_key: bytes = attrs.field(repr=False)

    def write(self, directory: str | os.PathLike[str]) -> dict[str, str]:
        """Write every PEM into ``directory`` and return their paths by name
        (``ca_cert``, ``merchant_cert``, ``merchant_key``, ``platform_cert``,
        ``platform_public_key``, ``server_cert``, ``server_key``)."""
        out: dict[str, str] = {}
        for name in (
            "ca_cert",
            "merchant_cert",
            "merchant_key",
            "platform_cert",
            "platform_public_key",
            "server_cert",
            "server_key",
        ):
            path = os.path.join(os.fspath(directory), f"{name}.pem")
            with open(path, "wb") as f:
                f.write(getattr(self, name))
            out[name] = path
        return out


def make_test_credentials(
    mch_id: str = "1900000109", *, now: dt.datetime | None = None, key_size: int = 2048
) -> TestCredentials:
    """Generate a CA, merchant, platform and loopback-server certificate set (a fraction of a
    second). ``now`` anchors validity (default: the system clock).

    Raises:
        UsageError: for a key size below 2048 bits.
    """
    if key_size < 2048:
        raise UsageError("make_test_credentials: WeChat Pay uses RSA-2048 or larger")
    at = now or dt.datetime.now(dt.UTC)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=key_size) for _ in range(4)]
    ca_key, merchant_key, platform_key, server_key = keys
    ca = _issue("membermkt test CA", ca_key, x509.Name([]), ca_key, at, ca=True)
    merchant = _issue(mch_id, merchant_key, ca.subject, ca_key, at)
    platform = _issue("Tenpay.com Root CA (emulated)", platform_key, ca.subject, ca_key, at)
    server = _issue("127.0.0.1", server_key, ca.subject, ca_key, at, ip="127.0.0.1")
    pub = platform_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TestCredentials(
        mch_id=mch_id,
        ca_cert=_pem_cert(ca),
        merchant_cert=_pem_cert(merchant),
        merchant_key=_pem_key(merchant_key),
        merchant_serial=certificate_serial(merchant),
        platform_cert=_pem_cert(platform),
        platform_key=_pem_key(platform_key),
        platform_serial=certificate_serial(platform),
        platform_public_key_id=f"PUB_KEY_ID_{mch_id}{secrets.token_hex(4).upper()}",
        platform_public_key=pub,
        server_cert=_pem_cert(server),
        server_key=_pem_key(server_key),
    )


# --------------------------------------------------------------------------- records


class Fault(enum.StrEnum):
    """What the emulator can do wrong on purpose."""

    SYSTEMERROR = "systemerror"
    """v2 ``SYSTEMERROR`` / v3 HTTP 500; the payment took effect or not (coin flip)."""
    PROCESSING = "processing"
    """v2 ``PROCESSING`` / v3 state ``PROCESSING``; the payment is accepted (SENDING)."""
    TIMEOUT = "timeout"
    """No answer (``httpx.ReadTimeout``); the payment took effect or not (coin flip)."""


@attrs.frozen(slots=True, kw_only=True)
class Payment:
    """Money that really moved (one per bill; a bill is never paid twice)."""

    bill_no: str
    product: str
    openid: str
    amount_fen: int
    at: dt.datetime


@attrs.frozen(slots=True, kw_only=True)
class Callback:
    """A v3 callback the emulator wants to deliver: POST ``body`` with ``headers`` to ``url``."""

    url: str
    headers: Mapping[str, str]
    body: bytes


@attrs.define(slots=True)
class _Bill:
    product: str
    bill_no: str
    openid: str
    amount_fen: int
    status: str
    platform_id: str
    created_at: dt.datetime
    fields: dict[str, Any] = attrs.field(factory=dict)


def _v2_reply(**fields: object) -> dict[str, object]:
    return {"return_code": "SUCCESS", "return_msg": "OK", **fields}


class WeChatPayEmulator:
    """An in-process WeChat Pay (v2 red packets + v3 transfers) that enforces money rules.

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

    def __init__(
        self,
        credentials: TestCredentials,
        *,
        appid: str = "wxd930ea5d5a258f4f",
        api_key: str = "192006250b4c09247ec02edce69f6a2d",
        api_v3_key: str = "0123456789ABCDEF0123456789ABCDEF",
        use_public_key_id: bool = False,
        v2_bounds: tuple[int, int] = (WECHATPAY_V2_REDPACK.min_fen, WECHATPAY_V2_REDPACK.max_fen),
        v3_bounds: tuple[int, int] = (WECHATPAY_V3_TRANSFER.min_fen, 20_000_000),
        per_user_daily_count: int | None = WECHATPAY_V2_REDPACK.per_user_daily_count,
        per_user_daily_fen: int | None = WECHATPAY_V2_REDPACK.per_user_daily_fen,
        fault_rate: float = 0.0,
        faults: tuple[Fault, ...] = tuple(Fault),
        seed: int = 0,
        auto_confirm: bool = True,
        clock: Callable[[], dt.datetime] | None = None,
        max_skew: dt.timedelta = dt.timedelta(minutes=5),
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise UsageError(f"fault_rate must be within [0, 1], got {fault_rate}")
        self.credentials = credentials
        self.mch_id = credentials.mch_id
        self.appid = appid
        self.api_key = api_key
        self.api_v3_key = api_v3_key
        self.v2_bounds = v2_bounds
        self.v3_bounds = v3_bounds
        self.per_user_daily_count = per_user_daily_count
        self.per_user_daily_fen = per_user_daily_fen
        self.fault_rate = fault_rate
        self.faults = faults
        self.auto_confirm = auto_confirm
        self.max_skew = max_skew
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._forced: collections.deque[Fault] = collections.deque()
        self._merchant_cert = x509.load_pem_x509_certificate(credentials.merchant_cert)
        self._merchant_der = self._merchant_cert.public_bytes(serialization.Encoding.DER)
        merchant_pub = self._merchant_cert.public_key()
        assert isinstance(merchant_pub, rsa.RSAPublicKey)
        self._merchant_pub = merchant_pub
        platform_key = serialization.load_pem_private_key(credentials.platform_key, None)
        assert isinstance(platform_key, rsa.RSAPrivateKey)
        self._platform_key = platform_key
        self.serial = (
            credentials.platform_public_key_id if use_public_key_id else credentials.platform_serial
        )
        self.bills: dict[str, _Bill] = {}
        self.payments: list[Payment] = []
        self.callbacks: list[Callback] = []
        self.counts: collections.Counter[str] = collections.Counter()

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

    def confirm(self, bill_no: str) -> None:
        """The user confirms a v3 transfer waiting for them: it succeeds (callback queued).

        Raises:
            UsageError: for an unknown bill or one not waiting for confirmation.
        """
        with self._lock:
            bill = self.bills.get(bill_no)
            if bill is None or bill.status != "WAIT_USER_CONFIRM":
                raise UsageError(f"bill {bill_no!r} is not waiting for user confirmation")
            self._succeed(bill)

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

    def deliver_callbacks(self, handler: Callable[[Mapping[str, str], bytes], object]) -> int:
        """Hand every queued callback to ``handler(headers, body)``; returns how many."""
        with self._lock:
            pending, self.callbacks = self.callbacks, []
        for cb in pending:
            handler(cb.headers, cb.body)
        return len(pending)

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
            if path == "/mmpaymkttransfers/gethbinfo":
                return self._v2_query(request, body, cert, fault)
        elif path.startswith(_TRANSFER_PATH):
            return self._v3(request, body, fault)
        return httpx.Response(404, text="not found")

    def _draw_fault(self) -> Fault | None:
        if self._forced:
            return self._forced.popleft()
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.faults)
        return None

    def _coin(self) -> bool:
        with self._lock:
            return self._rng.random() < 0.5

    # ------------------------------------------------------------------ v2

    def _xml(self, fields: Mapping[str, object]) -> httpx.Response:
        return httpx.Response(200, content=to_xml(fields), headers={"Content-Type": "text/xml"})

    def _v2_check(self, body: bytes, cert: object) -> dict[str, str] | httpx.Response:
        if cert != self._merchant_der:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="CA_ERROR", err_code_des="证书错误")
            )
        try:
            fields = from_xml(body)
        except DecryptError:
            return self._xml({"return_code": "FAIL", "return_msg": "XML_ERROR"})
        try:
            v2_verify(fields, self.api_key)
        except SignatureError:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="SIGN_ERROR", err_code_des="签名错误")
            )
        if fields.get("mch_id") != self.mch_id:
            return self._xml(
                _v2_reply(result_code="FAIL", err_code="PARAM_ERROR", err_code_des="mch_id")
            )
        return fields

    def _v2_error(self, code: str, des: str, fields: Mapping[str, str]) -> httpx.Response:
        return self._xml(
            _v2_reply(
                result_code="FAIL",
                err_code=code,
                err_code_des=des,
                mch_billno=fields.get("mch_billno", ""),
                mch_id=self.mch_id,
            )
        )

    def _user_day(self, product: str, openid: str, now: dt.datetime) -> tuple[int, int]:
        day = now.astimezone(BEIJING).date()
        n = fen = 0
        for p in self.payments:
            if (
                p.product == product
                and p.openid == openid
                and p.at.astimezone(BEIJING).date() == day
            ):
                n += 1
                fen += p.amount_fen
        return n, fen

    def _v2_send(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        f = checked
        bill_no = f.get("mch_billno", "")
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            if f.get("wxappid") != self.appid:
                return self._v2_error("PARAM_ERROR", "wxappid does not match the merchant", f)
            if not (0 < len(bill_no) <= _BILL_V2_MAX and bill_no.isalnum() and bill_no.isascii()):
                return self._v2_error("PARAM_ERROR", "mch_billno: ≤ 28 chars of [0-9a-zA-Z]", f)
            try:
                amount = int(f.get("total_amount", ""))
            except ValueError:
                return self._v2_error("PARAM_ERROR", "total_amount", f)
            openid = f.get("re_openid", "")
            existing = self.bills.get(bill_no)
            if existing is not None:
                if existing.openid != openid or existing.amount_fen != amount:
                    return self._v2_error("PARAM_ERROR", "mch_billno reused with other data", f)
                return self._v2_result(request, existing, f, fault)
            lo, hi = self.v2_bounds
            if not lo <= amount <= hi:
                return self._v2_error("PARAM_ERROR", f"amount must be within {lo}..{hi} fen", f)
            now = self._clock()
            n, fen = self._user_day("v2", openid, now)
            if self.per_user_daily_count is not None and n + 1 > self.per_user_daily_count:
                return self._v2_error("SENDNUMLIMIT", "该用户今日领取红包个数超过限制", f)
            if self.per_user_daily_fen is not None and fen + amount > self.per_user_daily_fen:
                return self._v2_error("RCVDAMOUNTLIMIT", "该用户今日领取金额超过限制", f)
            if not applied:
                return self._v2_fault_reply(request, f, fault)
            bill = _Bill(
                product="v2",
                bill_no=bill_no,
                openid=openid,
                amount_fen=amount,
                status="SENDING" if fault is Fault.PROCESSING else "SENT",
                platform_id=f"1000041701{secrets.token_hex(8)}",
                created_at=now,
            )
            self.bills[bill_no] = bill
            self.payments.append(
                Payment(bill_no=bill_no, product="v2", openid=openid, amount_fen=amount, at=now)
            )
            return self._v2_result(request, bill, f, fault)

    def _v2_fault_reply(
        self, request: httpx.Request, f: Mapping[str, str], fault: Fault | None
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout", request=request)
        return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)

    def _v2_result(
        self, request: httpx.Request, bill: _Bill, f: Mapping[str, str], fault: Fault | None
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout after the payment", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)
        if fault is Fault.PROCESSING or bill.status == "SENDING":
            bill.status = "SENT"  # the next query finds it sent
            return self._v2_error("PROCESSING", "请求已受理，请稍后使用原单号查询发放结果", f)
        return self._xml(
            _v2_reply(
                result_code="SUCCESS",
                mch_billno=bill.bill_no,
                mch_id=self.mch_id,
                wxappid=self.appid,
                re_openid=bill.openid,
                total_amount=bill.amount_fen,
                send_listid=bill.platform_id,
            )
        )

    def _v2_query(
        self, request: httpx.Request, body: bytes, cert: object, fault: Fault | None
    ) -> httpx.Response:
        checked = self._v2_check(body, cert)
        if isinstance(checked, httpx.Response):
            return checked
        f = checked
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v2_error("SYSTEMERROR", "系统繁忙,请稍后再试", f)
        with self._lock:
            bill = self.bills.get(f.get("mch_billno", ""))
            if bill is None or bill.product != "v2":
                return self._v2_error("NOT_FOUND", "指定单号数据不存在", f)
            reply = _v2_reply(
                result_code="SUCCESS",
                mch_billno=bill.bill_no,
                mch_id=self.mch_id,
                detail_id=bill.platform_id,
                status=bill.status,
                send_type="API",
                hb_type="NORMAL",
                total_num=1,
                total_amount=bill.amount_fen,
                send_time=bill.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        reply["sign"] = v2_sign(reply, self.api_key)
        return self._xml(reply)

    # ------------------------------------------------------------------ v3

    def _signed(self, status: int, payload: Mapping[str, Any] | None) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        ts = str(int(self._clock().timestamp()))
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "Request-ID": secrets.token_hex(12),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Serial": self.serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": rsa_sign(
                self._platform_key, v3_response_message(ts, nonce, body)
            ),
        }
        return httpx.Response(status, content=body, headers=headers)

    def _v3_error(self, status: int, code: str, message: str) -> httpx.Response:
        return self._signed(status, {"code": code, "message": message})

    def _v3_auth(self, request: httpx.Request, body: bytes) -> httpx.Response | None:
        try:
            auth = parse_authorization(request.headers.get("Authorization", ""))
        except SignatureError as exc:
            return self._v3_error(401, "SIGN_ERROR", str(exc))
        if auth["mchid"] != self.mch_id:
            return self._v3_error(401, "SIGN_ERROR", "mchid does not match")
        if auth["serial_no"] != self.credentials.merchant_serial:
            return self._v3_error(401, "SIGN_ERROR", "unknown merchant certificate serial_no")
        try:
            at = dt.datetime.fromtimestamp(int(auth["timestamp"]), dt.UTC)
        except (ValueError, OverflowError, OSError):
            return self._v3_error(401, "SIGN_ERROR", "bad timestamp")
        if abs(self._clock() - at) > self.max_skew:
            return self._v3_error(401, "SIGN_ERROR", "timestamp与发起请求的时间不得超过5分钟")
        target = request.url.raw_path.decode()
        message = v3_request_message(
            request.method, target, auth["timestamp"], auth["nonce_str"], body
        )
        if not rsa_verify(self._merchant_pub, message, auth["signature"]):
            return self._v3_error(401, "SIGN_ERROR", "签名错误")
        return None

    def _v3(self, request: httpx.Request, body: bytes, fault: Fault | None) -> httpx.Response:
        denied = self._v3_auth(request, body)
        if denied is not None:
            return denied
        path = request.url.path
        if request.method == "POST" and path == _TRANSFER_PATH:
            return self._v3_transfer(request, body, fault)
        prefix = f"{_TRANSFER_PATH}/out-bill-no/"
        if request.method == "GET" and path.startswith(prefix):
            if fault is Fault.TIMEOUT:
                raise httpx.ReadTimeout("emulated timeout", request=request)
            if fault is Fault.SYSTEMERROR:
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            with self._lock:
                bill = self.bills.get(path[len(prefix) :])
                if bill is None or bill.product != "v3":
                    return self._v3_error(404, "NOT_FOUND", "记录不存在")
                return self._signed(200, self._v3_view(bill))
        return self._v3_error(404, "NOT_FOUND", "no such API")

    def _v3_view(self, bill: _Bill) -> dict[str, Any]:
        view: dict[str, Any] = {
            "mch_id": self.mch_id,
            "out_bill_no": bill.bill_no,
            "transfer_bill_no": bill.platform_id,
            "appid": self.appid,
            "state": bill.status,
            "transfer_amount": bill.amount_fen,
            "transfer_remark": bill.fields.get("transfer_remark", ""),
            "openid": bill.openid,
            "create_time": bill.created_at.isoformat(),
        }
        if bill.status == "WAIT_USER_CONFIRM":
            view["package_info"] = f"emulated-package-{bill.platform_id}"
        return view

    def _v3_transfer(
        self, request: httpx.Request, body: bytes, fault: Fault | None
    ) -> httpx.Response:
        try:
            data = json.loads(body)
            bill_no = str(data["out_bill_no"])
            openid = str(data["openid"])
            amount = data["transfer_amount"]
        except (ValueError, KeyError, TypeError):
            return self._v3_error(400, "PARAM_ERROR", "malformed body")
        if data.get("appid") != self.appid:
            return self._v3_error(400, "PARAM_ERROR", "appid does not match the merchant")
        if not (0 < len(bill_no) <= _BILL_V3_MAX and bill_no.isalnum() and bill_no.isascii()):
            return self._v3_error(400, "PARAM_ERROR", "out_bill_no: ≤ 32 chars of [0-9a-zA-Z]")
        if isinstance(amount, bool) or not isinstance(amount, int):
            return self._v3_error(400, "PARAM_ERROR", "transfer_amount must be an integer")
        if amount >= 200_000 and not data.get("user_name"):
            return self._v3_error(400, "PARAM_ERROR", "user_name is required from 2000 CNY")
        applied = fault is None or fault is Fault.PROCESSING or self._coin()
        with self._lock:
            existing = self.bills.get(bill_no)
            if existing is not None:
                if existing.openid != openid or existing.amount_fen != amount:
                    return self._v3_error(400, "INVALID_REQUEST", "out_bill_no reused")
                return self._v3_answer(request, existing, fault)
            lo, hi = self.v3_bounds
            if not lo <= amount <= hi:
                return self._v3_error(400, "PARAM_ERROR", f"amount must be within {lo}..{hi}")
            if not applied:
                if fault is Fault.TIMEOUT:
                    raise httpx.ReadTimeout("emulated timeout", request=request)
                return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
            now = self._clock()
            bill = _Bill(
                product="v3",
                bill_no=bill_no,
                openid=openid,
                amount_fen=amount,
                status="ACCEPTED",
                platform_id=f"1330000{secrets.token_hex(10)}",
                created_at=now,
                fields=dict(data),
            )
            self.bills[bill_no] = bill
            if self.auto_confirm:
                self._succeed(bill)
            else:
                bill.status = "WAIT_USER_CONFIRM"
            return self._v3_answer(request, bill, fault, fresh=True)

    def _v3_answer(
        self, request: httpx.Request, bill: _Bill, fault: Fault | None, *, fresh: bool = False
    ) -> httpx.Response:
        if fault is Fault.TIMEOUT:
            raise httpx.ReadTimeout("emulated timeout after the transfer", request=request)
        if fault is Fault.SYSTEMERROR:
            return self._v3_error(500, "SYSTEM_ERROR", "系统异常，请稍后重试")
        view = {
            "out_bill_no": bill.bill_no,
            "transfer_bill_no": bill.platform_id,
            "create_time": bill.created_at.isoformat(),
            "state": "PROCESSING" if fault is Fault.PROCESSING else bill.status,
        }
        if fresh and self.auto_confirm and fault is None:
            view["state"] = "ACCEPTED"  # created; the query (or callback) shows SUCCESS
        if bill.status == "WAIT_USER_CONFIRM":
            view["package_info"] = f"emulated-package-{bill.platform_id}"
        return self._signed(200, view)

    def _succeed(self, bill: _Bill) -> None:
        now = self._clock()
        bill.status = "SUCCESS"
        self.payments.append(
            Payment(
                bill_no=bill.bill_no,
                product="v3",
                openid=bill.openid,
                amount_fen=bill.amount_fen,
                at=now,
            )
        )
        notify_url = str(bill.fields.get("notify_url") or "")
        if notify_url:
            self.callbacks.append(self._callback(notify_url, bill))

    def _callback(self, url: str, bill: _Bill) -> Callback:
        nonce = secrets.token_urlsafe(9)[:12]
        resource = json.dumps(self._v3_view(bill), ensure_ascii=False).encode()
        envelope = {
            "id": secrets.token_hex(16),
            "create_time": self._clock().isoformat(),
            "resource_type": "encrypt-resource",
            "event_type": "MCHTRANSFER.BILL.FINISHED",
            "summary": "商家转账单据终态通知",
            "resource": {
                "original_type": "mch_payment",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": aead_encrypt(self.api_v3_key, nonce, resource, "mch_payment"),
                "associated_data": "mch_payment",
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

    # ------------------------------------------------------------------ loopback

    @contextlib.contextmanager
    def serve(self, *, tls: bool = True, directory: str | None = None) -> Iterator[str]:
        """Serve the emulator on ``127.0.0.1`` in a background thread; yields the base URL.

        With ``tls=True`` (default) the server uses the test server certificate and asks for
        a client certificate signed by the test CA: the v2 gateway must be built with
        ``ca_file`` = the test CA and the merchant certificate, exactly as in production.
        ``directory`` receives the PEM files (a temporary directory by default).
        """
        import tempfile

        with contextlib.ExitStack() as stack:
            where = directory or stack.enter_context(tempfile.TemporaryDirectory())
            paths = self.credentials.write(where)
            emulator = self

            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def setup(self) -> None:
                    # Small writes are not held back by Nagle + delayed ACK.
                    self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    super().setup()

                def handle(self) -> None:
                    # The TLS handshake runs here, in the connection's own thread (not in
                    # the accept loop); a failed handshake just closes the connection.
                    try:
                        if isinstance(self.request, ssl.SSLSocket):
                            self.request.do_handshake()
                        super().handle()
                    except (ssl.SSLError, ConnectionError, TimeoutError):
                        self.close_connection = True

                def log_message(self, format: str, *args: Any) -> None:
                    return None

                def _serve(self) -> None:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else b""
                    extensions: dict[str, Any] = {}
                    if isinstance(self.connection, ssl.SSLSocket):
                        der = self.connection.getpeercert(binary_form=True)
                        if der:
                            extensions[CLIENT_CERT_EXTENSION] = der
                    req = httpx.Request(
                        self.command,
                        f"http://127.0.0.1{self.path}",
                        headers=list(self.headers.items()),
                        content=body,
                        extensions=extensions,
                    )
                    try:
                        resp = emulator.handle(req)
                    except httpx.TimeoutException:
                        self.close_connection = True
                        return  # no answer: the client sees the connection drop
                    except httpx.ConnectError:
                        self.close_connection = True
                        return
                    content = resp.read()
                    self.send_response(resp.status_code)
                    for k, v in resp.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)

                do_GET = _serve
                do_POST = _serve

            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            if tls:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(paths["server_cert"], paths["server_key"])
                ctx.load_verify_locations(paths["ca_cert"])
                ctx.verify_mode = ssl.CERT_OPTIONAL
                server.socket = ctx.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                scheme = "https" if tls else "http"
                yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
            finally:
                server.shutdown()
                server.server_close()
                thread.join()
