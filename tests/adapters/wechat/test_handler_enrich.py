"""The callback handler with the account's client: new followers are enriched with their
unionid (user/info) off the answer path, rate-limited, and linked in the store."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from membermkt.channels.wechat import (
    AsyncOfficialAccount,
    CallbackHandler,
    Endpoint,
    FollowerEnricher,
    OfficialAccount,
)
from membermkt.core.identity import Identity
from membermkt.errors import ConfigError
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wechat import Account, WeChatEmulator
from membermkt.wire.retry import RetryPolicy

A, B = "wxenrichA0000001", "wxenrichB0000001"
NOW = lambda: 1_700_000_000.0  # noqa: E731
AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class FakeTime:
    """A monotonic clock the limiter's sleeps advance (no real waiting)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 6))
        self.t += s


def client(emu: WeChatEmulator, appid: str) -> OfficialAccount:
    return OfficialAccount(
        appid,
        "s",
        transport=emu.transport(),
        budgets=(),
        sleep=lambda s: None,
        retry=RetryPolicy(attempts=1, jitter=0),
    )


def endpoint(acct: Account) -> Endpoint:
    return Endpoint(appid=acct.appid, token=acct.token, encoding_aes_key=acct.encoding_aes_key)


def post(handler: CallbackHandler, push, appid: str | None = None) -> tuple[int, bytes]:
    status, _, body = handler.handle(push.method, dict(push.query), push.body, appid=appid)
    return status, body


@pytest.fixture
def emu() -> WeChatEmulator:
    return WeChatEmulator(seed=5, clock=NOW)


def _accounts(emu: WeChatEmulator) -> tuple[Account, Account]:
    a, b = emu.add_account(A, "s"), emu.add_account(B, "s")
    # the same person follows both accounts: one unionid (Open Platform binding)
    a.add_followers(["oa-ann", "oa-nounion"], unionid=lambda o: "" if "nounion" in o else "u-ann")
    b.add_followers(["ob-ann"], unionid=lambda o: "u-ann")
    return a, b


POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set"),
            ],
        ),
    ]
)
def any_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    url = POSTGRES_URL if request.param == "postgresql" else "sqlite://"
    store = SqlStore(url, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    yield store
    store.drop_tables()
    store.close()


def test_follows_on_two_accounts_become_one_member_after_enrichment(emu, any_store) -> None:
    a, b = _accounts(emu)
    store = any_store
    enrichers = [
        FollowerEnricher(client(emu, A), store, autostart=False, now=lambda: AT),
        FollowerEnricher(client(emu, B), store, autostart=False, now=lambda: AT),
    ]
    handler = CallbackHandler(
        [endpoint(a), endpoint(b)],
        store=store,
        enricher=enrichers,
        clock=NOW,
        route_by_signature=False,  # the emulator's accounts share a Token
    )
    assert post(handler, a.follow("oa-ann", scene="parcel"), A) == (200, b"success")
    assert post(handler, b.follow("ob-ann"), B) == (200, b"success")
    assert post(handler, a.follow("oa-nounion"), A) == (200, b"success")
    # answered without calling the platform: the openids wait in the queues
    assert emu.calls["/cgi-bin/user/info"] + emu.calls["/cgi-bin/user/info/batchget"] == 0
    oa = Identity.openid(A, "oa-ann")
    ob = Identity.openid(B, "ob-ann")
    assert store.resolve(oa) != store.resolve(ob)
    assert [handler.enrichers[x].pending for x in (A, B)] == [2, 1]
    assert handler.enrichers[A].drain() == 1  # two openids, one batchget call
    assert handler.enrichers[B].drain() == 1  # one openid, one user/info call
    assert emu.calls["/cgi-bin/user/info/batchget"] == 1
    assert emu.calls["/cgi-bin/user/info"] == 1
    one = store.resolve(Identity.unionid("u-ann"))
    assert one is not None
    assert store.resolve(oa) == one == store.resolve(ob)
    member = store.get_member(one)
    assert member is not None
    assert member.state.source == "parcel"
    [merge] = store.merges(one)
    assert merge.link.by == "wechat.callback"
    assert merge.link.evidence.value == "unionid"
    stats = handler.enrichers[A].stats
    assert (stats["followers"], stats["with_unionid"], stats["linked"]) == (2, 1, 1)
    assert store.resolve(Identity.openid(A, "oa-nounion")) is not None  # still its member
    # a re-push is not enriched again; a message from a known follower is not either
    post(handler, a.follow("oa-ann", scene="parcel"), A)
    post(handler, a.text_push("oa-ann", "hi"), A)
    assert handler.enrichers[A].pending == 0
    handler.close()


def test_the_client_argument_starts_a_background_worker(emu) -> None:
    a, _ = _accounts(emu)
    store = InMemoryStore()
    handler = CallbackHandler(endpoint(a), store=store, client=client(emu, A), clock=NOW)
    done = threading.Event()
    enricher = handler.enrichers[A]
    original = enricher._link

    def link_and_signal(infos):
        original(infos)
        done.set()

    enricher._link = link_and_signal  # type: ignore[method-assign]
    assert post(handler, a.follow("oa-ann")) == (200, b"success")
    assert done.wait(30), "the worker thread never linked the follower"
    assert store.resolve(Identity.openid(A, "oa-ann")) == store.resolve(Identity.unionid("u-ann"))
    handler.close()
    assert enricher._thread is None


def test_calls_are_rate_limited_and_the_queue_is_bounded(emu) -> None:
    a, _ = _accounts(emu)
    a.add_followers([f"o{i}" for i in range(5)], unionid=lambda o: f"u-{o}")
    store = InMemoryStore()
    t = FakeTime()
    e = FollowerEnricher(
        client(emu, A),
        store,
        rate=2.0,
        batch=2,
        max_pending=4,
        autostart=False,
        clock=t.clock,
        sleep=t.sleep,
    )
    assert [e.submit(f"o{i}") for i in range(5)] == [True, True, True, True, False]
    assert e.submit("o0") is True  # already pending: not queued twice
    assert (e.stats["submitted"], e.stats["dropped"], e.pending) == (4, 1, 4)
    assert e.drain() == 2
    assert t.sleeps == [0.5]  # the second call waited for the 2-calls/s limit
    assert e.stats["linked"] == 4
    assert store.resolve(Identity.unionid("u-o3")) == store.resolve(Identity.openid(A, "o3"))


def test_a_failed_call_is_retried_later_then_dropped(emu) -> None:
    _a, _ = _accounts(emu)
    t = FakeTime()
    e = FollowerEnricher(
        client(emu, A),
        InMemoryStore(),
        batch=1,
        retry_after=30,
        max_attempts=2,
        autostart=False,
        clock=t.clock,
        sleep=t.sleep,
    )
    e.submit("o-unknown")  # the platform refuses it (40003 invalid openid)
    assert e.drain() == 2
    assert t.sleeps == [30.0]  # backed off before the retry
    assert (e.stats["failed_calls"], e.stats["dropped"], e.pending) == (2, 1, 0)


def test_async_client_is_drained_on_the_event_loop(emu) -> None:
    a, _b = _accounts(emu)
    store = SqlStore("sqlite://")

    async def main() -> None:
        async with AsyncOfficialAccount(
            A, "s", transport=emu.transport(), budgets=(), retry=RetryPolicy(attempts=1)
        ) as ac:
            e = FollowerEnricher(ac, store, now=lambda: AT)
            handler = CallbackHandler(endpoint(a), store=store, enricher=e, clock=NOW)
            assert post(handler, a.follow("oa-ann")) == (200, b"success")
            assert e._thread is None  # an async client never gets a thread
            with pytest.raises(ConfigError, match="async"):
                e.drain()
            e.submit("oa-ann")
            assert await e.adrain() == 1
            task = asyncio.create_task(e.run(idle=0.01))
            post(handler, a.follow("oa-nounion"))
            for _ in range(500):
                if e.pending == 0 and e.stats["calls"] >= 2:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            assert e.stats["calls"] >= 2

    asyncio.run(main())
    assert store.resolve(Identity.openid(A, "oa-ann")) == store.resolve(Identity.unionid("u-ann"))
    store.close()


def test_configuration_errors(emu) -> None:
    a, _ = _accounts(emu)
    store = InMemoryStore()
    with pytest.raises(ConfigError, match="no endpoint"):
        CallbackHandler(endpoint(a), store=store, client=client(emu, B))
    with pytest.raises(ConfigError, match="two"):
        CallbackHandler(endpoint(a), store=store, client=[client(emu, A), client(emu, A)])
    with pytest.raises(ConfigError, match="batch"):
        FollowerEnricher(client(emu, A), store, batch=101)
    with pytest.raises(ConfigError, match="rate"):
        FollowerEnricher(client(emu, A), store, rate=0)
    with pytest.raises(ConfigError, match="official-account"):
        FollowerEnricher(object(), store)


def test_one_refused_openid_does_not_sink_its_batch(emu) -> None:
    _accounts(emu)
    store = InMemoryStore()
    t = FakeTime()
    e = FollowerEnricher(
        client(emu, A),
        store,
        max_attempts=2,
        autostart=False,
        clock=t.clock,
        sleep=t.sleep,
    )
    for openid in ("oa-ann", "o-unknown", "oa-nounion"):
        e.submit(openid)
    # the batch is refused (40003 for the unknown openid), then each goes alone
    assert e.drain() == 4
    assert emu.calls["/cgi-bin/user/info/batchget"] == 1
    assert emu.calls["/cgi-bin/user/info"] == 3
    assert (e.stats["failed_calls"], e.stats["dropped"], e.stats["linked"]) == (2, 1, 1)
    assert store.resolve(Identity.openid(A, "oa-ann")) == store.resolve(Identity.unionid("u-ann"))
    assert e._solo == set()


def _wait(cond: Any, timeout: float = 30.0) -> bool:
    """Poll ``cond`` until true (waiting for a worker, not measuring it)."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


def test_wsgi_app_with_the_sync_client(emu) -> None:
    import httpx

    from membermkt.contrib.wsgi import wsgi_app

    a, _ = _accounts(emu)
    store = InMemoryStore()
    handler = CallbackHandler(endpoint(a), store=store, client=client(emu, A), clock=NOW)
    push = a.follow("oa-ann")
    with httpx.Client(
        transport=httpx.WSGITransport(app=wsgi_app(handler)), base_url="http://t"
    ) as c:
        r = c.post("/cb", params=dict(push.query), content=push.body)
    assert (r.status_code, r.text) == (200, "success")
    oa, union = Identity.openid(A, "oa-ann"), Identity.unionid("u-ann")
    assert _wait(lambda: store.resolve(union) is not None)
    assert store.resolve(oa) == store.resolve(union)
    handler.close()


async def test_asgi_app_with_the_async_client_in_its_lifespan(emu) -> None:
    import httpx

    from membermkt.contrib.asgi import asgi_app

    a, _ = _accounts(emu)
    store = InMemoryStore()
    async with AsyncOfficialAccount(
        A, "s", transport=emu.transport(), budgets=(), retry=RetryPolicy(attempts=1)
    ) as ac:
        enricher = FollowerEnricher(ac, store)
        handler = CallbackHandler(endpoint(a), store=store, enricher=enricher, clock=NOW)
        task = asyncio.create_task(enricher.run(idle=0.01))  # the app's lifespan starts it
        push = a.follow("oa-ann")
        app = asgi_app(handler)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.post("/", params=dict(push.query), content=push.body)
        assert (r.status_code, r.text) == (200, "success")
        union = Identity.unionid("u-ann")
        for _ in range(3000):
            if store.resolve(union) is not None:
                break
            await asyncio.sleep(0.01)
        task.cancel()
    assert store.resolve(Identity.openid(A, "oa-ann")) == store.resolve(union) is not None


def test_drain_after_close_flushes_what_is_pending(emu) -> None:
    _accounts(emu)
    store = InMemoryStore()
    t = FakeTime()
    e = FollowerEnricher(
        client(emu, A), store, rate=1, batch=1, autostart=False, clock=t.clock, sleep=t.sleep
    )
    e.start()
    e.close()  # the handler was closed at shutdown, openids still queued
    assert e._thread is None
    e.submit("oa-ann")
    e.submit("oa-nounion")
    assert e.drain() == 2
    assert t.sleeps == [1.0]  # still rate-limited
    assert store.resolve(Identity.openid(A, "oa-ann")) == store.resolve(Identity.unionid("u-ann"))
