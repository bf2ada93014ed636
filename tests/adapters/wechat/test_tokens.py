"""Token caches (memory, SQL on SQLite/PostgreSQL/MariaDB, Redis) and single-flight refresh
across threads and processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import threading
import time
import uuid

import pytest

from membermkt.core.ports import AsyncTokenCache, TokenCache, TokenEntry
from membermkt.errors import StoreError
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.tokens import (
    AsyncMemoryTokenCache,
    AsyncSqlTokenCache,
    MemoryTokenCache,
    SqlTokenCache,
)

from . import _token_worker

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PG = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
MY = os.environ.get("MEMBERMKT_TEST_MYSQL_URL")
REDIS = os.environ.get("MEMBERMKT_TEST_REDIS_URL")


def _prefix() -> str:
    return "t" + uuid.uuid4().hex[:10] + "_"


@pytest.fixture(params=["memory", "sqlite", "postgres", "mysql", "redis"])
def cache(request, tmp_path):
    kind = request.param
    if kind == "memory":
        yield MemoryTokenCache()
    elif kind == "redis":
        if not REDIS:
            pytest.skip("MEMBERMKT_TEST_REDIS_URL not set")
        from membermkt.tokens.redis import RedisTokenCache

        yield RedisTokenCache(REDIS, prefix=_prefix())
    else:
        url = {"sqlite": f"sqlite:///{tmp_path / 'tokens.db'}", "postgres": PG, "mysql": MY}[kind]
        if not url:
            pytest.skip(f"no {kind} server URL in the environment")
        sql = SqlTokenCache(url, table_prefix=_prefix())
        yield sql
        sql.drop_tables()
        sql.close()


def test_cache_get_set_and_compare_then_expire(cache: TokenCache):
    """expire_if deletes only the token that failed, never a newer one."""
    assert isinstance(cache, TokenCache)
    assert cache.get("k") is None
    cache.set("k", TokenEntry("A" * 512, T0))
    assert cache.get("k") == TokenEntry("A" * 512, T0)
    cache.set("k", TokenEntry("B", T0 + dt.timedelta(seconds=1)))
    assert not cache.expire_if("k", "A" * 512)
    assert cache.get("k").token == "B"
    assert cache.expire_if("k", "B")
    assert cache.get("k") is None
    assert not cache.expire_if("k", "B")


def test_cache_lock_excludes_and_times_out(cache: TokenCache):
    """While one holder has the lock, another waiting past its timeout gets StoreError;
    afterwards the lock is free again."""
    inside = threading.Event()
    release = threading.Event()

    def holder():
        with cache.lock("k", timeout=5):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(5)
    with pytest.raises(StoreError), cache.lock("k", timeout=0.2):
        pass
    release.set()
    t.join()
    with cache.lock("k", timeout=2):
        pass


def test_cache_lock_serialises_threads(cache: TokenCache):
    """Under the lock, a read-modify-write from 6 threads never interleaves."""
    counter = {"n": 0, "overlap": 0, "inside": 0}
    guard = threading.Lock()

    def work():
        for _ in range(3):
            with cache.lock("k", timeout=20):
                with guard:
                    counter["inside"] += 1
                    if counter["inside"] > 1:
                        counter["overlap"] += 1
                n = counter["n"]
                time.sleep(0.002)
                counter["n"] = n + 1
                with guard:
                    counter["inside"] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter == {"n": 18, "overlap": 0, "inside": 0}


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def acache(request, tmp_path):
    if request.param == "memory":
        yield AsyncMemoryTokenCache()
    elif request.param == "sqlite":
        c = AsyncSqlTokenCache(f"sqlite:///{tmp_path / 't.db'}", table_prefix=_prefix())
        yield c
        c.sync.close()
    else:
        if not REDIS:
            pytest.skip("MEMBERMKT_TEST_REDIS_URL not set")
        from membermkt.tokens.redis import AsyncRedisTokenCache

        c = AsyncRedisTokenCache(REDIS, prefix=_prefix())
        yield c
        await c.aclose()


async def test_async_caches(acache: AsyncTokenCache):
    assert await acache.get("k") is None
    await acache.set("k", TokenEntry("A", T0))
    assert not await acache.expire_if("k", "B")
    assert (await acache.get("k")).token == "A"
    order = []

    async def hold(name: str):
        async with acache.lock("k", timeout=5):
            order.append(f"{name}+")
            await asyncio.sleep(0.02)
            order.append(f"{name}-")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert await acache.expire_if("k", "A")


async def test_async_client_single_flight_across_tasks():
    """50 concurrent tasks on a cold cache cause exactly one token fetch."""
    from membermkt.channels.wechat import AsyncOfficialAccount

    emu = WeChatEmulator()
    emu.add_account("wxT", "s").add_followers(["o1"])
    client = AsyncOfficialAccount("wxT", "s", transport=emu.transport(), budgets=())
    infos = await asyncio.gather(*(client.user_info("o1") for _ in range(50)))
    assert all(i.subscribed for i in infos)
    assert emu.calls["/cgi-bin/stable_token"] == 1


def test_sync_client_single_flight_across_threads():
    """16 threads sharing one client on a cold cache cause exactly one token fetch."""
    from membermkt.channels.wechat import OfficialAccount

    emu = WeChatEmulator()
    emu.add_account("wxT", "s").add_followers(["o1"])
    client = OfficialAccount("wxT", "s", transport=emu.transport(), budgets=())
    threads = [threading.Thread(target=client.user_info, args=("o1",)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert emu.calls["/cgi-bin/stable_token"] == 1
    assert emu.calls["/cgi-bin/user/info"] == 16


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_eight_processes_share_tokens_with_minimum_fetches(backend, tmp_path):
    """8 processes × 50 calls against the emulator on loopback, tokens living 2 s: no call
    fails, the platform never answers 40001, and no token fetch is redundant (every fetch
    happened when the shared token really needed rotating)."""
    if backend == "redis":
        if not REDIS:
            pytest.skip("MEMBERMKT_TEST_REDIS_URL not set")
        spec = ("redis", REDIS, "mm:" + uuid.uuid4().hex[:8] + ":")
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        spec = ("sql", url, _prefix())
        SqlTokenCache(url, table_prefix=spec[2]).close()  # create the tables once
    emu = WeChatEmulator(token_ttl=2.0, token_overlap=0.5, limits=())
    acct = emu.add_account("wxMP", "secret")
    acct.add_followers(["o1"])
    # Fork the workers before the server thread starts (no thread is copied mid-lock), so
    # they start without re-importing everything.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool, emu.serve() as server:
        args = [(server.url, spec, "wxMP", "secret", 50, 0.05)] * 8
        results = pool.starmap(_token_worker.run, args)
    ok = sum(r[0] for r in results)
    errors = [e for r in results for e in r[1]]
    assert errors == []
    assert ok == 400
    assert emu.errcodes[40001] == 0
    assert acct.token_repeats == 0
    assert acct.token_fetches >= 2  # the run outlived at least one token
