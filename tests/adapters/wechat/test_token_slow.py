"""Single flight holds while the token endpoint is slow: the holder's lock lease is
renewed while it fetches, and waiters keep waiting (re-checking the cache) instead of
fetching on their own. Six callers (think: six processes) sharing one cache, a token
endpoint that takes 2.5× the lock lease and 2× one lock wait: one fetch."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid

import pytest

from membermkt.channels.wechat.api.token import AccessToken
from membermkt.channels.wechat.token import TokenPolicy, TokenProvider
from membermkt.tokens import MemoryTokenCache, SqlTokenCache

REDIS = os.environ.get("MEMBERMKT_TEST_REDIS_URL")
LEASE = 0.4
FETCH_SECONDS = 1.0


@pytest.fixture(params=["memory", "sqlite", "redis"])
def cache(request, tmp_path):
    prefix = "t" + uuid.uuid4().hex[:8] + "_"
    if request.param == "memory":
        yield MemoryTokenCache()
    elif request.param == "sqlite":
        sql = SqlTokenCache(f"sqlite:///{tmp_path / 't.db'}", table_prefix=prefix, lease=LEASE)
        yield sql
        sql.drop_tables()
        sql.close()
    else:
        if not REDIS:
            pytest.skip("MEMBERMKT_TEST_REDIS_URL not set")
        from membermkt.tokens.redis import RedisTokenCache

        yield RedisTokenCache(REDIS, prefix=f"membermkt:test:{prefix}", lease=LEASE)


def test_one_fetch_under_a_slow_token_endpoint(cache):
    fetches = []
    lock = threading.Lock()

    def slow_fetch(call):
        with lock:
            fetches.append(call)
        time.sleep(FETCH_SECONDS)
        return AccessToken(f"TOKEN{len(fetches)}", 7200)

    policy = TokenPolicy(appid="wxSLOW", secret="s", lock_timeout=0.5)  # 6 rounds = 3 s of waiting

    def now():
        return dt.datetime.now(dt.UTC)

    providers = [TokenProvider(policy, cache, slow_fetch, now) for _ in range(6)]
    tokens: list[str] = []

    def run(p):
        tokens.append(p.get())

    threads = [threading.Thread(target=run, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(fetches) == 1, len(fetches)
    assert tokens == ["TOKEN1"] * 6
