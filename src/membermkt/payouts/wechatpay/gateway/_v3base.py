"""What every WeChat Pay v3 gateway holds and does before its product's own work: the
merchant's configuration, signer and platform keys, the clock and nonce, and signed
requests (merchant transfers and the favor/coupon API share it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Generic, TypeVar

from membermkt.core.ports import Clock
from membermkt.errors import ConfigError
from membermkt.payouts.base import HttpRequest
from membermkt.payouts.wechatpay import v3
from membermkt.payouts.wechatpay.gateway._shared import API_BASE, _nonce
from membermkt.payouts.wechatpay.signing import PublicKeys

C = TypeVar("C")


class _V3Base(Generic[C]):
    """Configuration, clock and request signing of a v3 gateway (``C``: its config type)."""

    def __init__(
        self,
        config: C,
        signer: v3.MerchantSigner,
        platform_keys: PublicKeys,
        *,
        api_v3_key: str | None = None,
        base_url: str = API_BASE,
        clock: Clock | None = None,
        timeout: float = 10.0,
        nonce: Callable[[], str] = _nonce,
        check_timestamp: bool = True,
    ) -> None:
        if not platform_keys:
            raise ConfigError(
                "no platform keys: pass load_platform_keys(certificates=..., public_keys=...)"
            )
        if api_v3_key is not None and len(api_v3_key.encode()) != 32:
            raise ConfigError("the APIv3 key must be 32 bytes (set it in the merchant console)")
        self.config = config
        self.signer = signer
        self.platform_keys = dict(platform_keys)
        self.base_url = base_url
        self._api_v3_key = api_v3_key
        self._clock = clock
        self._timeout = timeout
        self._nonce = nonce
        self._check_timestamp = check_timestamp

    def _now(self) -> dt.datetime:
        return self._clock.now() if self._clock is not None else dt.datetime.now(dt.UTC)

    def _verify_now(self) -> dt.datetime | None:
        return self._now() if self._check_timestamp else None

    def _signed(
        self, method: str, path: str, body: bytes, platform_serial: str | None = None
    ) -> HttpRequest:
        return v3.sign_request(
            self.signer,
            method,
            path,
            body,
            timestamp=int(self._now().timestamp()),
            nonce=self._nonce(),
            platform_serial=platform_serial,
        )
