"""InMemoryStore: the store contract, plus memory-only behaviour."""

from __future__ import annotations

import threading

import pytest

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import SegmentError, UsageError
from membermkt.segments import attr
from membermkt.stores import InMemoryStore
from membermkt.testing.store_contract import T0, StoreContract


class TestInMemoryContract(StoreContract):
    @pytest.fixture
    def store(self) -> InMemoryStore:
        return InMemoryStore()


def test_concurrent_appends_from_threads_lose_nothing() -> None:
    """Threads appending overlapping batches store each key exactly once."""
    store = InMemoryStore()
    evs = [Event(f"m{i % 7}", "view", T0, key=f"k{i}") for i in range(400)]
    counts: list[int] = []

    def work(offset: int) -> None:
        counts.append(store.append_events(evs[offset:] + evs[:offset]))

    threads = [threading.Thread(target=work, args=(o,)) for o in (0, 100, 200, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 400
    assert sum(len(store.events_for(f"m{i}")) for i in range(7)) == 400


def test_declared_attributes_refuse_wrong_types_and_unknown_names() -> None:
    """A declared schema turns type mistakes and (strict) typos into clear errors."""
    store = InMemoryStore(attributes={"vip_level": int}, strict=True)
    store.upsert_members([Member("m1", attributes={"vip_level": 2})])
    assert store.count(attr("vip_level") >= 2, T0) == 1
    with pytest.raises(SegmentError, match="vip_level"):
        store.count(attr("vip_level") == "gold", T0)
    with pytest.raises(SegmentError, match="vip_levle"):
        store.count(attr("vip_levle") == 2, T0)
    with pytest.raises(UsageError, match="vip_level"):
        store.upsert_members([Member("m2", attributes={"vip_level": "gold"})])
    with pytest.raises(UsageError):
        InMemoryStore(attributes={"city": str})
    lax = InMemoryStore(attributes={"vip_level": int})
    assert lax.count(attr("other") == 1, T0) == 0
