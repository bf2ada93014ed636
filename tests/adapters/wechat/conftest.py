"""Fixtures: an emulator with one account, and the same script run on the sync and the
async client (``twin``), so both clients are held to one suite."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import pytest

from membermkt.channels.wechat import AsyncOfficialAccount, OfficialAccount
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.wire.retry import RetryPolicy

APPID, SECRET = "wx0000000000000001", "secret-1"


class ManualClock:
    """A clock both the emulator (unix seconds) and the clients (datetime) read."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Twin:
    """Awaitable facade over either client, so one ``async`` test script drives both."""

    def __init__(self, client: OfficialAccount | AsyncOfficialAccount, sleeps: list[float]):
        self.client = client
        self.sleeps = sleeps
        self.is_async = isinstance(client, AsyncOfficialAccount)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return await result
            return result

        return call

    async def all_followers(self) -> list[str]:
        it = self.client.iter_followers()
        if self.is_async:
            return [o async for o in it]  # type: ignore[union-attr]
        return list(it)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> WeChatEmulator:
    return WeChatEmulator(seed=7, clock=clock)


@pytest.fixture
def account(emu: WeChatEmulator):
    acct = emu.add_account(APPID, SECRET)
    acct.add_followers([f"o{i:05d}" for i in range(30)])
    return acct


def make_client(kind: str, emu: WeChatEmulator, clock: ManualClock, sleeps: list[float], **kw: Any):
    async def asleep(s: float) -> None:
        sleeps.append(s)

    common: dict[str, Any] = {
        "transport": emu.transport(),
        "clock": clock,
        "retry": RetryPolicy(attempts=3, jitter=0.0),
    }
    common.update(kw)
    if kind == "sync":
        return OfficialAccount(APPID, SECRET, sleep=sleeps.append, **common)
    return AsyncOfficialAccount(APPID, SECRET, sleep=asleep, **common)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def twin(kind: str, emu: WeChatEmulator, clock: ManualClock, account) -> Twin:
    sleeps: list[float] = []
    return Twin(make_client(kind, emu, clock, sleeps), sleeps)
