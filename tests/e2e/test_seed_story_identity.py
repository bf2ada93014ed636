"""The seed story at the store level (SQLite and PostgreSQL): an imported marketplace buyer
known by phone, a parcel QR follow, a verified phone, one red packet, later revenue — one
member, and the parcel source credited only with the revenue after the follow.

(Store and public API only; the callback/phone-form/payout emulators are exercised by their
own tests.)"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid

import pytest

from membermkt import analytics
from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.segments import TRUE, attr
from membermkt.stores.io import import_events_csv, import_members_csv
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

T0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
URLS = {"sqlite": "sqlite://", "postgresql": os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_member_and_parcel_credited_with_later_revenue(backend: str) -> None:
    url = URLS[backend]
    if url is None:
        pytest.skip("MEMBERMKT_TEST_POSTGRES_URL not set")
    store = SqlStore(url, table_prefix=f"t{uuid.uuid4().hex[:10]}_", phones=TEST_PHONES)
    try:
        phone = TEST_PHONES.identity("138 0013 8000")
        buyer = Identity.platform_buyer("tmall", "tb-42")
        openid = Identity.openid("wxoa", "o-parcel")
        # 1. imported Tmall buyer, known by phone, with an order before the parcel arrives
        tokens = json.dumps([buyer.token, phone.token]).replace('"', '""')
        assert import_members_csv(store, io.StringIO(f'id,identities\nb1,"{tokens}"\n')).ok
        order = {"amount_fen": 9900, "channel": "tmall", "order_id": "T1"}
        props = json.dumps(order).replace('"', '""')
        events_csv = (
            f'member_id,type,at,key,properties\nb1,purchase,{T0.isoformat()},T1,"{props}"\n'
        )
        assert import_events_csv(store, io.StringIO(events_csv)).ok
        # 2. the parcel QR code: a follow with the parcel scene as source
        store.link(openid, Identity.unionid("u-42"), "unionid", T0 + DAY, by="wechat.user_info")
        fid = store.resolve(openid)
        assert fid is not None
        store.append_events(
            [Event(fid, "follow", T0 + DAY, {"source": "parcel"}, key="wx:follow:1")]
        )
        # 3. the phone typed and verified: one person
        out = store.link(phone, openid, "verified_phone", T0 + DAY, by="phoneform")
        assert out.merge is not None
        member = out.member_id
        # 4. one red packet, paid once (the payout ledger is tested elsewhere)
        paid = Event(member, "redpacket_paid", T0 + DAY, {"amount_fen": 500}, key="rp:1")
        assert store.append_events([paid, paid]) == 1
        # 5. later revenue through WeChat Pay
        store.append_events(
            [Event(member, "purchase", T0 + 3 * DAY, {"amount_fen": 2000, "channel": "wechatpay"})]
        )
        # 6. later orders addressed to the ids the world still uses (#14): the next Tmall
        # import under the buyer's id, a WeChat Pay order under the follower's id (resolved
        # before the merge) — one of the two was merged away; both land on the one member
        merged_away = out.merge.drop
        assert merged_away in {"b1", fid}
        later = T0 + 5 * DAY
        props = json.dumps({"amount_fen": 5900, "channel": "tmall", "order_id": "T2"})
        events_csv = (
            f"member_id,type,at,key,properties\nb1,purchase,{later.isoformat()},T2,"
            f'"{props.replace(chr(34), chr(34) * 2)}"\n'
        )
        assert import_events_csv(store, io.StringIO(events_csv)).ok
        store.append_events(
            [Event(fid, "purchase", later, {"amount_fen": 100, "channel": "wechatpay"}, key="W2")]
        )
        assert store.get_member(merged_away) is None
        as_of = T0 + 10 * DAY
        assert store.count(TRUE, as_of) == 1
        assert list(store.select(attr("source") == "parcel", as_of)) == [member]
        assert store.count(attr("orders_count") >= 1, as_of) == 1
        got = store.get_member(member)
        assert got is not None
        assert {buyer, phone, openid, Identity.unionid("u-42")} <= set(got.identities)
        assert got.state.purchases.total_fen == 17900
        result = analytics.attribution(store, as_of=as_of)
        parcel = result.row("parcel")
        assert parcel is not None
        assert (parcel.members, parcel.orders, parcel.revenue_fen) == (1, 3, 8000)
        unknown = result.row("(unknown)")
        assert unknown is not None
        assert (unknown.members, unknown.revenue_fen) == (0, 9900)
        assert fid in {r.drop for r in store.merges(member)} or fid == member
    finally:
        store.drop_tables()
        store.close()
