"""The membermkt channel contract suite, run on the SMS channels against the gateway emulator."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
from membermkt_sms import AsyncSmsChannel, SmsChannel, SmsGateway

from membermkt.core.delivery import Delivery
from membermkt.testing.contract import ChannelContract, Requirements, make_delivery

_addresses = itertools.count()


class IdempotentSms(Requirements):
    idempotency_keys = True
    partial_batch_failure = True
    max_batch_size = 100
    oversize = "refuse"
    error_codes: ClassVar[Mapping[Any, str]] = {
        "transient": "retryable",
        "invalid": "permanent",
        "slow": "retryable",
    }
    transient_error = "transient"
    async_variant = True
    entry_point = "sms.example"


class NonIdempotentSms(IdempotentSms):
    idempotency_keys = False


class _Fixtures:
    idempotent = True

    @pytest.fixture
    def requirements(self) -> Requirements:
        return IdempotentSms() if self.idempotent else NonIdempotentSms()

    @pytest.fixture
    def platform(self) -> SmsGateway:
        return SmsGateway(idempotent=self.idempotent)

    @pytest.fixture
    def channel_factory(self, platform: SmsGateway) -> Callable[[], Any]:
        return lambda: SmsChannel(transport=platform.transport(), idempotent=self.idempotent)

    @pytest.fixture
    def async_channel_factory(self, platform: SmsGateway) -> Callable[[], Any]:
        return lambda: AsyncSmsChannel(transport=platform.transport(), idempotent=self.idempotent)

    @pytest.fixture
    def make_deliveries(self) -> Callable[[int], list[Delivery]]:
        def make(n: int) -> list[Delivery]:
            return [
                make_delivery("sms.example", f"+86-{next(_addresses)}", text="春季上新")
                for _ in range(n)
            ]

        return make

    @pytest.fixture
    def make_invalid_delivery(self, platform: SmsGateway) -> Callable[[], Delivery]:
        def make() -> Delivery:
            address = f"bad-{next(_addresses)}"
            platform.invalid.add(address)
            return make_delivery("sms.example", address, text="x")

        return make

    @pytest.fixture
    def received(self, platform: SmsGateway) -> Callable[[str], int]:
        return lambda key: platform.received[key]

    @pytest.fixture
    def inject_error(self, platform: SmsGateway) -> Callable[[Any], None]:
        return lambda code: platform.fail_next(code)


class TestSmsChannel(_Fixtures, ChannelContract):
    """The idempotent gateway account."""


class TestSmsChannelWithoutDeduplication(_Fixtures, ChannelContract):
    """A gateway account that does not de-duplicate message ids."""

    idempotent = False
