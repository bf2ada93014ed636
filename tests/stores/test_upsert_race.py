"""Two upserts of one member at once (a double-tapped phone form records consent twice) on
a SqlStore: the second waits for the first and replaces its tags, attributes and
identities — no duplicate key (#14).

Found by the seed-story e2e test on PostgreSQL: the second ``upsert_members`` failed with a
duplicate key on the tags table (both deleted the old rows, then both inserted)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import attrs
import pytest

from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Member, MemberState
from membermkt.stores.sql import SqlStore

from .conftest import SQL_BACKENDS, make_store

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_concurrent_upserts_of_one_member(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store: SqlStore = make_store(backend)
    try:
        openid = Identity.openid("wxrace", "o-race")
        store.upsert_members(
            [Member("m1", tags=frozenset({"old"}), attributes={"a": 1}, identities=(openid,))]
        )
        store.append_events([Event("m1", "follow", AT, {"source": "parcel"}, key="f1")])
        # the first writer holds its transaction open after its writes until the second
        # has started its own and had time to block on the first's locks (where the
        # database serialises whole transactions — SQLite — the waits time out)
        wait = 2 if backend == "sqlite" else 30
        first_wrote, second_started = threading.Event(), threading.Event()
        real_owners, real_insert = SqlStore._owners, SqlStore._insert_rows

        def owners(self: SqlStore, conn: Any, tokens: Any) -> Any:
            if threading.current_thread().name == "second":
                first_wrote.wait(wait)
                second_started.set()
            return real_owners(self, conn, tokens)

        def insert_rows(self: SqlStore, conn: Any, table: Any, rows: Any, **kw: Any) -> Any:
            out = real_insert(self, conn, table, rows, **kw)
            if threading.current_thread().name == "first" and table is self.tables.identities:
                first_wrote.set()
                second_started.wait(wait)
                time.sleep(0.5)  # not an assertion: lets the second reach its first write
            return out

        monkeypatch.setattr(SqlStore, "_owners", owners)
        monkeypatch.setattr(SqlStore, "_insert_rows", insert_rows)
        # read-modify-write of a member with a state (as the phone form records consent):
        # a non-empty state is written as given, so no row lock is taken to keep the old one
        base = store.get_member("m1")
        assert base is not None
        assert base.state != MemberState()
        versions = [
            attrs.evolve(base, tags=frozenset({"vip", "x"}), attributes={"a": 2}),
            attrs.evolve(base, tags=frozenset({"vip", "y"}), attributes={"a": 3}),
        ]
        errors: list[BaseException] = []

        def run(m: Member) -> None:
            try:
                store.upsert_members([m])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(m,), name=name)
            for m, name in zip(versions, ("first", "second"), strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        got = store.get_member("m1")
        assert got is not None
        # one of the two, whole: never a mix of both or of the old one
        assert (got.tags, dict(got.attributes)) in [(m.tags, dict(m.attributes)) for m in versions]
        assert got.identities == (openid,)
        assert store.resolve(openid) == "m1"
    finally:
        store.drop_tables()
        store.close()
