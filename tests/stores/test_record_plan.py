"""``record_plan`` (the bulk path of ``prepare``): new keys only, refusals, one payload
encoding shared by a static variant (#12)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from membermkt import Identity, Member, MemberState
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import Delivery, DeliveryStatus
from membermkt.engine.campaigns import prepare
from membermkt.errors import UsageError
from membermkt.segments import TRUE
from membermkt.stores.sql import SqlStore

from .conftest import make_store

NOW = dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC)
APPID = "wx-rp"


@pytest.fixture
def store(sql_backend: str) -> Iterator[SqlStore]:
    s = make_store(sql_backend)
    s.create_schema()
    try:
        yield s
    finally:
        s.drop_tables()
        s.close()


def delivery(i: int, **kw: object) -> Delivery:
    base: dict[str, object] = {
        "key": f"k{i}",
        "campaign_id": "c",
        "member_id": f"m{i}",
        "channel": "wechat.mass",
        "address": f"o{i}",
        "variant": "A",
        "payload": {"msgtype": "text", "text": {"content": f"hi {i}"}},
    }
    base.update(kw)
    return Delivery(**base)  # type: ignore[arg-type]


def test_record_plan_inserts_new_keys_once(store: SqlStore) -> None:
    assert store.record_plan([delivery(1), delivery(2), delivery(1)], now=NOW) == 2
    assert store.record_plan([delivery(2), delivery(3)], now=NOW) == 1
    got = {r.delivery.key: r for r in store.deliveries("c")}
    assert set(got) == {"k1", "k2", "k3"}
    assert all(r.status is DeliveryStatus.PLANNED and r.attempts == 0 for r in got.values())
    assert got["k3"].delivery == delivery(3)
    assert got["k1"].updated_at == NOW
    assert store.record_plan([], now=NOW) == 0


def test_record_plan_counts_new_keys_across_chunks(store: SqlStore) -> None:
    # several 1,000-row statements, existing keys scattered through them: the count is the
    # rows really inserted, and an existing row keeps its first payload
    assert store.record_plan([delivery(i) for i in range(0, 2600, 2)], now=NOW) == 1300
    again = [
        delivery(i, payload={"msgtype": "text", "text": {"content": "new"}}) for i in range(2600)
    ]
    assert store.record_plan(again, now=NOW) == 1300
    got = {r.delivery.key: r.delivery for r in store.deliveries("c")}
    assert len(got) == 2600
    assert got["k0"] == delivery(0)
    assert got["k1"].payload.to_dict()["text"] == {"content": "new"}


def test_record_plan_refuses_bad_values_and_writes_nothing(store: SqlStore) -> None:
    with pytest.raises(UsageError, match=r"Delivery\.address is too long"):
        store.record_plan([delivery(1), delivery(2, address="o" * 5000)], now=NOW)
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        store.record_plan([delivery(1), delivery(2, payload={"x": object()})], now=NOW)
    with pytest.raises(UsageError, match="Delivery values"):
        store.record_plan([delivery(1), "k2"], now=NOW)  # type: ignore[list-item]
    assert list(store.deliveries("c")) == []


def test_prepare_static_and_personalised_variants_round_trip(store: SqlStore) -> None:
    members = [
        Member(
            f"m{i:04d}",
            identities=[Identity("openid", f"o{i}", APPID)],
            state=MemberState(subscribed=True),
            attributes={"name": f"n{i}"},
        )
        for i in range(300)
    ]
    camp = Campaign(
        id="rp",
        audience=TRUE,
        channel="wechat.template",
        variants=(
            Variant(name="A", content={"template_id": "T", "data": {"k": "v"}}),
            Variant(name="B", content={"template_id": "T", "data": {"k": "{{ name }}"}}),
        ),
        address_namespace=APPID,
    )
    summary = prepare(store, camp, members, {}, NOW, chunk=64)
    rows = {r.delivery.member_id: r.delivery for r in store.deliveries("rp")}
    assert len(rows) == summary.total_deliveries == 300
    for m in members:
        d = rows[m.id]
        if d.variant == "A":
            assert d.payload.to_dict() == {"template_id": "T", "data": {"k": "v"}}
        else:
            assert d.payload.to_dict() == {"template_id": "T", "data": {"k": m.attributes["name"]}}
    assert {d.variant for d in rows.values()} == {"A", "B"}
