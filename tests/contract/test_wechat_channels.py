"""The built-in official-account channels run the shipped channel contract suite
(dogfooding :mod:`membermkt.testing.contract`) against the emulator."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from membermkt.channels.wechat import (
    AsyncOfficialAccount,
    AsyncWeChatMassChannel,
    AsyncWeChatTemplateChannel,
    OfficialAccount,
    WeChatCustomChannel,
    WeChatMassChannel,
    WeChatTemplateChannel,
)
from membermkt.core.delivery import Delivery
from membermkt.testing.contract import ChannelContract, Requirements, make_delivery
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID = "wxcontract000001"
TEXT = {"msgtype": "text", "text": {"content": "contract"}}
TEMPLATE = {"template_id": "TPL", "data": {"first": "hi"}}


class _SkippableClock:
    """The emulator's clock: real time plus the time the suite let pass."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.time() + self.skipped

    def skip(self, seconds: float) -> None:
        self.skipped += seconds


class _WeChatContract(ChannelContract):
    """Shared fixtures: one emulator per test, fresh followers per delivery (each with an
    open 48-hour window), no client-side retries (the runner retries), no limits."""

    payload: dict = TEXT
    channel_name = ""

    @pytest.fixture
    def platform_clock(self) -> _SkippableClock:
        return _SkippableClock()

    @pytest.fixture
    def platform(self, platform_clock: _SkippableClock) -> WeChatEmulator:
        emu = WeChatEmulator(seed=5, limits=(), clock=platform_clock)
        emu.add_account(APPID, "secret").add_template("TPL")
        return emu

    @pytest.fixture
    def pass_time(self, platform_clock: _SkippableClock) -> Callable[[float], None]:
        return platform_clock.skip

    @pytest.fixture
    def client(self, platform: WeChatEmulator) -> OfficialAccount:
        return OfficialAccount(
            APPID,
            "secret",
            transport=platform.transport(),
            budgets=(),
            retry=RetryPolicy(attempts=1),
        )

    @pytest.fixture
    def async_client(self, platform: WeChatEmulator) -> AsyncOfficialAccount:
        return AsyncOfficialAccount(
            APPID,
            "secret",
            transport=platform.transport(),
            budgets=(),
            retry=RetryPolicy(attempts=1),
        )

    @pytest.fixture
    def make_deliveries(self, platform: WeChatEmulator) -> Callable[[int], list[Delivery]]:
        acct = platform.accounts[APPID]
        counter = itertools.count()

        def make(n: int) -> list[Delivery]:
            out = []
            for _ in range(n):
                openid = f"oc{next(counter):07d}"
                acct.add_followers([openid])
                acct.interact(openid, "message")
                out.append(make_delivery(self.channel_name, openid, key=openid, **self.payload))
            return out

        return make

    @pytest.fixture
    def received(self, platform: WeChatEmulator) -> Callable[[str], int]:
        # Keys are the openids (the stateful test prefixes them with "<campaign>-").
        return lambda key: len(platform.received(APPID, key.rsplit("-", 1)[-1]))

    @pytest.fixture
    def inject_error(self, platform: WeChatEmulator) -> Callable[[int], None]:
        return lambda code: platform.fail_next(code)


class _MassRequirements(Requirements):
    idempotency_keys = True
    max_batch_size = 10_000
    oversize = "split"
    error_codes = {-1: "retryable", 45009: "retryable", 45028: "permanent", 48001: "permanent"}
    transient_error = -1
    async_variant = True
    entry_point = "wechat.mass"
    stateful_examples = 15


class TestWeChatMassChannel(_WeChatContract):
    channel_name = "wechat.mass"

    @pytest.fixture
    def requirements(self) -> Requirements:
        return _MassRequirements()

    @pytest.fixture
    def channel_factory(self, client: OfficialAccount) -> Callable[[], WeChatMassChannel]:
        return lambda: WeChatMassChannel(client)

    @pytest.fixture
    def async_channel_factory(self, async_client: AsyncOfficialAccount):
        return lambda: AsyncWeChatMassChannel(async_client)


class _TemplateRequirements(Requirements):
    idempotency_keys = False
    partial_batch_failure = True
    max_batch_size = 100
    oversize = "split"
    error_codes = {-1: "retryable", 45009: "retryable", 43004: "permanent", 40037: "permanent"}
    transient_error = -1
    async_variant = True
    entry_point = "wechat.template"
    stateful_examples = 15


class TestWeChatTemplateChannel(_WeChatContract):
    channel_name = "wechat.template"
    payload = TEMPLATE

    @pytest.fixture
    def requirements(self) -> Requirements:
        return _TemplateRequirements()

    @pytest.fixture
    def channel_factory(self, client: OfficialAccount) -> Callable[[], WeChatTemplateChannel]:
        return lambda: WeChatTemplateChannel(client)

    @pytest.fixture
    def async_channel_factory(self, async_client: AsyncOfficialAccount):
        return lambda: AsyncWeChatTemplateChannel(async_client)

    @pytest.fixture
    def make_invalid_delivery(self) -> Callable[[], Delivery]:
        return lambda: make_delivery("wechat.template", "oc-nobody", key="invalid", **TEMPLATE)


class _CustomRequirements(Requirements):
    idempotency_keys = False
    partial_batch_failure = True
    max_batch_size = 100
    oversize = "split"
    error_codes = {-1: "retryable", 45015: "permanent", 45047: "permanent"}
    transient_error = -1
    entry_point = "wechat.custom"
    stateful_examples = 15


class TestWeChatCustomChannel(_WeChatContract):
    channel_name = "wechat.custom"

    @pytest.fixture
    def requirements(self) -> Requirements:
        return _CustomRequirements()

    @pytest.fixture
    def channel_factory(self, client: OfficialAccount) -> Callable[[], WeChatCustomChannel]:
        return lambda: WeChatCustomChannel(client)

    @pytest.fixture
    def make_invalid_delivery(self, platform: WeChatEmulator) -> Callable[[], Delivery]:
        platform.accounts[APPID].add_followers(["oc-silent"])  # following, but no window
        return lambda: make_delivery("wechat.custom", "oc-silent", key="invalid", **TEXT)
