"""The state every API group of the WeChat Pay emulator shares (configuration, keys, bills,
the money ledger, queued callbacks, the fault RNG)."""

from __future__ import annotations

import collections
import datetime as dt
import random
import threading
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from membermkt.core.redpackets import BEIJING, WECHATPAY_V2_REDPACK, WECHATPAY_V3_TRANSFER
from membermkt.errors import UsageError
from membermkt.testing.emulator.wechatpay._credentials import TestCredentials
from membermkt.testing.emulator.wechatpay._models import Callback, Fault, Payment, _Bill


class _Base:
    """State and shared helpers of
    :class:`~membermkt.testing.emulator.wechatpay.WeChatPayEmulator` (its API groups are
    mixins over this)."""

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
        balance_fen: int | None = None,
        merchant_daily_fen: int | None = 100_000_000,
        v2_rate_per_s: int | None = 30,
        v3_rate_per_s: int | None = 100,
        v2_scene_bounds: tuple[int, int] = (30, 499_900),
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
        # Rule: the merchant balance (None: unlimited); a payment that exceeds it is refused
        # with v2 NOTENOUGH / v3 NOT_ENOUGH and paid after top_up() under the same bill.
        self.balance_fen = balance_fen
        # Rule: merchant outflow <= 1,000,000 CNY per Beijing day (reference §4.2).
        self.merchant_daily_fen = merchant_daily_fen
        # Rule: sendredpack 30 requests/s, transfer-bills 100 requests/s (reference §5).
        self.v2_rate_per_s = v2_rate_per_s
        self.v3_rate_per_s = v3_rate_per_s
        # With a scene_id, amounts outside 1-200 CNY are allowed within the scene's range
        # (unconfirmed: 0.30-4999 CNY per older docs; the console sets the real one).
        self.v2_scene_bounds = v2_scene_bounds
        self._window: dict[str, tuple[int, int]] = {}

    def top_up(self, fen: int) -> None:
        """Add money to the merchant balance (a balance of ``None`` becomes ``fen``).

        Raises:
            UsageError: for a non-positive amount.
        """
        if isinstance(fen, bool) or not isinstance(fen, int) or fen < 1:
            raise UsageError(f"top_up needs a positive int of fen, got {fen!r}")
        with self._lock:
            self.balance_fen = (self.balance_fen or 0) + fen

    def _over_rate(self, api: str, per_s: int | None) -> bool:
        """Count one request of ``api`` in the current (emulator-clock) second; ``True``
        when it goes over ``per_s``."""
        if per_s is None:
            return False
        second = int(self._clock().timestamp())
        with self._lock:
            at, n = self._window.get(api, (second, 0))
            n = n + 1 if at == second else 1
            self._window[api] = (second, n)
            return n > per_s

    def _merchant_day_fen(self, now: dt.datetime) -> int:
        day = now.astimezone(BEIJING).date()
        return sum(p.amount_fen for p in self.payments if p.at.astimezone(BEIJING).date() == day)

    def _debit(self, amount: int) -> bool:
        """Take ``amount`` from the balance; ``False`` (nothing taken) when it is short."""
        if self.balance_fen is None:
            return True
        if amount > self.balance_fen:
            return False
        self.balance_fen -= amount
        return True

    def _coin(self) -> bool:
        with self._lock:
            return self._rng.random() < 0.5
