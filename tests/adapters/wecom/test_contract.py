"""The built-in WeCom channels run the shipped channel contract suite (dogfooding
:mod:`membermkt.testing.contract`) against the emulator."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from membermkt.channels.wecom import (
    AsyncWeCom,
    AsyncWeComGroupChannel,
    AsyncWeComMassChannel,
    AsyncWeComWelcomeChannel,
    WeCom,
    WeComGroupChannel,
    WeComMassChannel,
    WeComWelcomeChannel,
)
from membermkt.core.delivery import Delivery
from membermkt.testing.contract import ChannelContract, Requirements, make_delivery
from membermkt.testing.emulator.wecom import WeComEmulator
from membermkt.wire.retry import RetryPolicy

CORP = "wwcontract0000001"
MASS_API = "/cgi-bin/externalcontact/add_msg_template"
WELCOME_API = "/cgi-bin/externalcontact/send_welcome_msg"


class _WeComContract(ChannelContract):
    """One emulator per test; no client-side retries (the runner retries), no budgets."""

    @pytest.fixture
    def platform(self) -> WeComEmulator:
        emu = WeComEmulator(seed=9)
        emu.add_corp(CORP, "secret").add_staff("clerk1")
        return emu

    @pytest.fixture
    def client(self, platform: WeComEmulator) -> WeCom:
        return WeCom(
            CORP,
            "secret",
            transport=platform.transport(),
            budgets=(),
            retry=RetryPolicy(attempts=1),
        )

    @pytest.fixture
    def async_client(self, platform: WeComEmulator) -> AsyncWeCom:
        return AsyncWeCom(
            CORP,
            "secret",
            transport=platform.transport(),
            budgets=(),
            retry=RetryPolicy(attempts=1),
        )


class _MassRequirements(Requirements):
    idempotency_keys = False
    max_batch_size = 10_000
    oversize = "split"
    error_codes = {-1: "retryable", 45009: "retryable", 45033: "retryable", 48002: "permanent"}
    transient_error = -1
    async_variant = True
    entry_point = "wecom.mass"
    stateful_examples = 15


class TestWeComMassChannel(_WeComContract):
    @pytest.fixture
    def requirements(self) -> Requirements:
        return _MassRequirements()

    @pytest.fixture
    def make_deliveries(self, platform: WeComEmulator) -> Callable[[int], list[Delivery]]:
        corp = platform.corps[CORP]
        counter = itertools.count()

        def make(n: int) -> list[Delivery]:
            ids = [f"wc{next(counter):07d}" for _ in range(n)]
            corp.add_customers("clerk1", ids)
            return [
                make_delivery("wecom.mass", e, key=e, text="contract", sender="clerk1") for e in ids
            ]

        return make

    @pytest.fixture
    def received(self, platform: WeComEmulator) -> Callable[[str], int]:
        # Keys are the external_userids (the stateful test prefixes "<campaign>-").
        return lambda key: platform.corps[CORP].mass_count(key.rsplit("-", 1)[-1])

    @pytest.fixture
    def inject_error(self, platform: WeComEmulator) -> Callable[[int], None]:
        return lambda code: platform.fail_next(code, api=MASS_API)

    @pytest.fixture
    def channel_factory(self, client: WeCom) -> Callable[[], WeComMassChannel]:
        return lambda: WeComMassChannel(client)

    @pytest.fixture
    def async_channel_factory(self, async_client: AsyncWeCom):
        return lambda: AsyncWeComMassChannel(async_client)


class _GroupRequirements(Requirements):
    idempotency_keys = False
    max_batch_size = 2000
    oversize = "split"
    error_codes = {-1: "retryable", 45009: "retryable", 45033: "retryable", 48002: "permanent"}
    transient_error = -1
    async_variant = True
    entry_point = "wecom.group"
    stateful_examples = 15


class TestWeComGroupChannel(_WeComContract):
    """Customer-group mass send (chat_type=group): one fresh group per delivery, owned by
    the sender."""

    @pytest.fixture
    def requirements(self) -> Requirements:
        return _GroupRequirements()

    @pytest.fixture
    def make_deliveries(self, platform: WeComEmulator) -> Callable[[int], list[Delivery]]:
        corp = platform.corps[CORP]
        counter = itertools.count()

        def make(n: int) -> list[Delivery]:
            ids = [f"wr{next(counter):07d}" for _ in range(n)]
            for c in ids:
                corp.add_chat(c, "clerk1")
            return [
                make_delivery("wecom.group", c, key=c, text="contract", sender="clerk1")
                for c in ids
            ]

        return make

    @pytest.fixture
    def received(self, platform: WeComEmulator) -> Callable[[str], int]:
        return lambda key: platform.corps[CORP].group_mass_count(key.rsplit("-", 1)[-1])

    @pytest.fixture
    def inject_error(self, platform: WeComEmulator) -> Callable[[int], None]:
        return lambda code: platform.fail_next(code, api=MASS_API)

    @pytest.fixture
    def channel_factory(self, client: WeCom) -> Callable[[], WeComGroupChannel]:
        return lambda: WeComGroupChannel(client)

    @pytest.fixture
    def async_channel_factory(self, async_client: AsyncWeCom):
        return lambda: AsyncWeComGroupChannel(async_client)


class _WelcomeRequirements(Requirements):
    idempotency_keys = False
    partial_batch_failure = True
    max_batch_size = 100
    oversize = "split"
    error_codes = {-1: "retryable", 41051: "permanent", 40096: "permanent"}
    transient_error = -1
    async_variant = True
    entry_point = "wecom.welcome"
    stateful_examples = 15


class TestWeComWelcomeChannel(_WeComContract):
    @pytest.fixture
    def requirements(self) -> Requirements:
        return _WelcomeRequirements()

    @pytest.fixture
    def make_deliveries(self, platform: WeComEmulator) -> Callable[[int], list[Delivery]]:
        corp = platform.corps[CORP]
        counter = itertools.count()

        def make(n: int) -> list[Delivery]:
            out = []
            for _ in range(n):
                ext = f"wc{next(counter):07d}"
                corp.add_customer("clerk1", ext)
                code = next(c for c, w in corp.welcome_codes.items() if w.external_userid == ext)
                out.append(
                    make_delivery("wecom.welcome", ext, key=ext, welcome_code=code, text="欢迎")
                )
            return out

        return make

    @pytest.fixture
    def make_invalid_delivery(self) -> Callable[[], Delivery]:
        return lambda: make_delivery(
            "wecom.welcome", "wc-nobody", key="invalid", welcome_code="WC-unknown", text="x"
        )

    @pytest.fixture
    def received(self, platform: WeComEmulator) -> Callable[[str], int]:
        return lambda key: platform.corps[CORP].welcome_counts[key.rsplit("-", 1)[-1]]

    @pytest.fixture
    def inject_error(self, platform: WeComEmulator) -> Callable[[int], None]:
        return lambda code: platform.fail_next(code, api=WELCOME_API)

    @pytest.fixture
    def channel_factory(self, client: WeCom) -> Callable[[], WeComWelcomeChannel]:
        return lambda: WeComWelcomeChannel(client)

    @pytest.fixture
    def async_channel_factory(self, async_client: AsyncWeCom):
        return lambda: AsyncWeComWelcomeChannel(async_client)
