"""upsert_members over several SQL transactions: a shared identity is refused before the
first transaction writes; merges across chunks end in one member."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.errors import IdentityConflict
from membermkt.stores.sql import SqlStore
from membermkt.stores.sql.store import _members

from .conftest import SQL_BACKENDS, make_store

AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
O1 = Identity.openid("wxapp", "o1")


@pytest.fixture(params=SQL_BACKENDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlStore]:
    monkeypatch.setattr(_members, "_UPSERT_CHUNK", 2)
    s = make_store(str(request.param))
    yield s
    s.drop_tables()
    s.close()


def test_a_conflict_in_a_later_chunk_writes_nothing(store: SqlStore) -> None:
    store.upsert_members([Member("holder", identities=[O1])])
    batch = [Member(f"m{i}") for i in range(4)] + [Member("m9", identities=[O1])]
    with pytest.raises(IdentityConflict):
        store.upsert_members(batch)
    assert store.get_members([m.id for m in batch]) == {}
    assert store.resolve(O1) == "holder"


def test_merges_across_chunks(store: SqlStore) -> None:
    o2 = Identity.openid("wxapp", "o2")
    store.upsert_members([Member("a-holder", identities=[O1])])
    batch = [
        Member("b1", identities=[o2]),
        Member("b2"),
        Member("b3", identities=[O1]),
        Member("b4", identities=[o2]),
    ]
    assert store.upsert_members(batch, on_shared_identity="merge", at=AT, by="test") == 4
    assert store.resolve(O1) == "a-holder"
    assert store.resolve(o2) == "b1"
    assert store.get_member("b3") is None
    assert store.get_member("b4") is None
    assert sorted((m.keep, m.drop) for m in store.merges()) == [
        ("a-holder", "b3"),
        ("b1", "b4"),
    ]
