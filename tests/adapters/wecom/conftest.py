"""Fixtures: a WeCom emulator with one corp, and the sync/async twin clients (one script
drives both, as for the official account)."""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any

import pytest

from membermkt.channels.wecom import AsyncWeCom, WeCom
from membermkt.testing.emulator.wecom import Corp, WeComEmulator
from membermkt.wire.retry import RetryPolicy

CORPID, SECRET = "ww0000000000000001", "contact-secret"


class ManualClock:
    """A clock both the emulator (unix seconds) and the clients (datetime) read."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.UTC)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Twin:
    """Awaitable facade over either client."""

    def __init__(self, client: WeCom | AsyncWeCom, sleeps: list[float]) -> None:
        self.client = client
        self.sleeps = sleeps
        self.is_async = isinstance(client, AsyncWeCom)

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


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emu(clock: ManualClock) -> WeComEmulator:
    return WeComEmulator(seed=3, clock=clock)


@pytest.fixture
def corp(emu: WeComEmulator) -> Corp:
    c = emu.add_corp(CORPID, SECRET, "app-secret")
    c.add_staff("clerk1", "clerk2", "clerk3")
    return c


def make_client(
    kind: str, emu: WeComEmulator, clock: ManualClock, sleeps: list[float], **kw: Any
) -> WeCom | AsyncWeCom:
    async def asleep(s: float) -> None:
        sleeps.append(s)

    common: dict[str, Any] = {
        "transport": emu.transport(),
        "clock": clock,
        "retry": RetryPolicy(attempts=3, jitter=0.0),
    }
    common.update(kw)
    secret = common.pop("secret", SECRET)
    if kind == "sync":
        return WeCom(CORPID, secret, sleep=sleeps.append, **common)
    return AsyncWeCom(CORPID, secret, sleep=asleep, **common)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def twin(kind: str, emu: WeComEmulator, clock: ManualClock, corp: Corp) -> Twin:
    sleeps: list[float] = []
    return Twin(make_client(kind, emu, clock, sleeps), sleeps)


@pytest.fixture
def client(emu: WeComEmulator, clock: ManualClock, corp: Corp) -> WeCom:
    c = make_client("sync", emu, clock, [])
    assert isinstance(c, WeCom)
    return c
