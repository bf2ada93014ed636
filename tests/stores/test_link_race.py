"""Two links of the same pair at once (a double-tapped phone form) on a SqlStore: both
decide to merge before either holds the row locks; the second, once the first committed,
decides again and finds one member — no error, one merge record (#14).

Found by the seed-story e2e test on PostgreSQL: the second link failed with ``KeyError``
on the member the first had just merged away."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any

import pytest

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.stores.sql import SqlStore
from membermkt.stores.sql.store import _links
from membermkt.testing.phones import TEST_PHONES

from .conftest import SQL_BACKENDS, make_store

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_concurrent_links_of_one_pair_merge_once(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: SqlStore = make_store(backend, phones=TEST_PHONES)
    try:
        phone = TEST_PHONES.identity("138 0013 8000")
        openid = Identity.openid("wxrace", "o-race")
        store.upsert_members([Member("buyer", identities=(phone,))])
        store.upsert_members([Member("follower", identities=(openid,))])
        # both threads decide (a merge) before either goes on to lock the members; where
        # the database serialises whole transactions (SQLite) the second cannot decide
        # until the first is done, and the barrier just times out
        barrier = threading.Barrier(2, timeout=2 if backend == "sqlite" else 30)
        decided = threading.local()
        real = _links.decide

        def decide_then_wait(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)
            if not getattr(decided, "once", False):
                decided.once = True
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return out

        monkeypatch.setattr(_links, "decide", decide_then_wait)
        results: list[Any] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(store.link(openid, phone, "verified_phone", AT, by="phoneform"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert len(results) == 2
        [one] = {r.member_id for r in results}
        assert [r.merge is not None for r in results].count(True) == 1
        assert store.resolve(phone) == store.resolve(openid) == one
        assert len(store.merges(one)) == 1
        assert len(list(store.iter_members())) == 1
    finally:
        store.drop_tables()
        store.close()
