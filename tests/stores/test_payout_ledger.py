"""The payout ledger's keyed operations on every store: insert-or-get, intent by bill
number, intents by member, compare-and-set status update."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from membermkt.core.ports import PayoutIntent
from membermkt.errors import LedgerError, UsageError
from membermkt.stores.memory import InMemoryStore

from .conftest import SQL_BACKENDS, make_store

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.UTC)


@pytest.fixture(params=[pytest.param("memory", id="memory"), *SQL_BACKENDS])
def ledger(request: pytest.FixtureRequest) -> Iterator[object]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    store = make_store(request.param)
    yield store
    store.drop_tables()
    store.close()


def intent(bill: str, member: str = "m1", rule: str = "r1", **kw: object) -> PayoutIntent:
    return PayoutIntent(
        bill_no=bill,
        rule_id=rule,
        member_id=member,
        address=f"o-{member}",
        amount_fen=500,
        reservations=((f"rp:{rule}:total", 500),),
        created_at=T0,
        updated_at=T0,
        **kw,  # type: ignore[arg-type]
    )


def test_insert_or_get_keeps_the_first(ledger: InMemoryStore) -> None:
    first = ledger.record_intent(intent("B1", detail="owner:a"))
    second = ledger.record_intent(intent("B1", member="m2", detail="owner:b"))
    assert first.detail == second.detail == "owner:a"
    assert second.member_id == "m1"
    assert ledger.intent("B1") == first
    assert ledger.intent("nope") is None


def test_member_intents_are_keyed_by_rule_and_member(ledger: InMemoryStore) -> None:
    for bill, member, rule in [
        ("B3", "m1", "r1"),
        ("B1", "m1", "r1"),
        ("B2", "m2", "r1"),
        ("B4", "m1", "r2"),
    ]:
        ledger.record_intent(intent(bill, member, rule))
    assert [i.bill_no for i in ledger.member_intents("r1", "m1")] == ["B1", "B3"]
    assert [i.bill_no for i in ledger.member_intents("r2", "m1")] == ["B4"]
    assert ledger.member_intents("r1", "ghost") == []


def test_swap_intent_is_compare_and_set(ledger: InMemoryStore) -> None:
    ledger.record_intent(intent("B1"))
    later = T0 + dt.timedelta(minutes=1)
    assert ledger.swap_intent("B1", expect="reserved", status="waiting_funds", now=later)
    assert not ledger.swap_intent("B1", expect="reserved", status="paid", now=later)
    got = ledger.intent("B1")
    assert got is not None
    assert (got.status, got.updated_at) == ("waiting_funds", later)
    assert ledger.swap_intent(
        "B1", expect="waiting_funds", status="paid", now=later, detail="success SENT"
    )
    got = ledger.intent("B1")
    assert got is not None
    assert (got.status, got.detail) == ("paid", "success SENT")
    with pytest.raises(LedgerError, match="B9"):
        ledger.swap_intent("B9", expect="reserved", status="paid", now=later)
    with pytest.raises(UsageError, match="payout status"):
        ledger.swap_intent("B1", expect="paid", status="lost", now=later)
