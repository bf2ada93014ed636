"""A worker process for the multi-process token test (imported by spawned children)."""

from __future__ import annotations

import time

from membermkt.channels.wechat import OfficialAccount
from membermkt.errors import MembermktError
from membermkt.wire.retry import RetryPolicy


def make_cache(spec: tuple[str, str, str]):
    kind, url, prefix = spec
    if kind == "sql":
        from membermkt.tokens import SqlTokenCache

        return SqlTokenCache(url, table_prefix=prefix)
    from membermkt.tokens.redis import RedisTokenCache

    return RedisTokenCache(url, prefix=prefix)


def run(
    base_url: str, spec: tuple[str, str, str], appid: str, secret: str, calls: int, pause: float
) -> tuple[int, list[str]]:
    """Make ``calls`` API calls; return (successes, error reprs)."""
    client = OfficialAccount(
        appid,
        secret,
        base_url=base_url,
        token_cache=make_cache(spec),
        budgets=(),
        retry=RetryPolicy(attempts=3, backoff=0.05),
    )
    ok, errors = 0, []
    with client:
        for _ in range(calls):
            try:
                client.user_info("o1")
                ok += 1
            except MembermktError as exc:
                errors.append(repr(exc))
            time.sleep(pause)
    return ok, errors
