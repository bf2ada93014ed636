"""The seed story end to end, through the public API and the emulators, on SQLite and
PostgreSQL (#14):

1. a Tmall buyer known only by phone is imported (CSV import with a phone key from
   ``MEMBERMKT_PHONE_KEYS``; on SQLite through ``membermkt members import``), with an order
   placed before anything else happens;
2. the parcel's QR code: the buyer follows the official account through the parcel scene —
   a signed, encrypted ``subscribe`` push from the WeChat emulator into the callback handler
   served as an ASGI app; the follower is enriched with their unionid (``user/info``);
3. the follower opens the phone form inside WeChat (OAuth on the emulator), types the phone,
   gets a texted code and enters it — submitting the code twice (a double tap);
4. a red packet is paid exactly once (WeChat Pay emulator);
5. the buyer pays later through WeChat Pay;
6. the next Tmall export is imported: a later order, still under the marketplace's member
   id ``tmall-42`` — merged away in step 3, so it lands on the one member (#14).

Then there is ONE member holding the Tmall buyer id, the phone, the openid and the unionid,
and ``analytics.attribution`` credits the parcel source with the later revenue only (the
WeChat Pay order and the later Tmall order) — the earlier Tmall order counts in
``"(unknown)"``.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from _phoneform import (
    API_KEY,
    API_V3_KEY,
    APPID,
    MCH_ID,
    SECRET,
    SharedClock,
    follow_redirect_to_emulator,
)
from membermkt import analytics
from membermkt.channels.wechat import CallbackHandler, Endpoint, FollowerEnricher, OfficialAccount
from membermkt.contrib.asgi import asgi_app
from membermkt.contrib.phoneform import PhoneFormApp
from membermkt.contrib.phoneverify import PhoneVerifier
from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.redpackets import FixedAmount, RedPacketRule
from membermkt.engine.redpackets import RedPacketService
from membermkt.payouts.wechatpay.gateway import MerchantCertificate, WeChatPayV2Gateway
from membermkt.payouts.wechatpay.v2 import RedPacketConfig
from membermkt.security.phones import ENV_VAR, PhoneKey, PhoneProtector
from membermkt.segments import TRUE, attr
from membermkt.stores.io import import_events_csv, import_members_csv
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wechatpay import WeChatPayEmulator, make_test_credentials

OPENID = "oParcelBuyer0000000000000001"
UNIONID = "uParcelBuyer01"
NUMBER = "138 0013 8000"
TMALL_ID = "tb-buyer-42"
DAY = dt.timedelta(days=1)
POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set"),
        ],
    ),
]


@pytest.fixture
def phone_key(monkeypatch: pytest.MonkeyPatch) -> PhoneProtector:
    """The merchant's phone key, configured the production way (the environment)."""
    monkeypatch.setenv(ENV_VAR, PhoneKey.generate("k1").serialize())
    return PhoneProtector.from_env()


def _csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _tmall_members(phones: PhoneProtector, tags: str = '["tmall"]') -> str:
    """The marketplace's member export: the buyer ``tmall-42``, known by phone."""
    tokens = [Identity.platform_buyer("tmall", TMALL_ID).token, phones.identity(NUMBER).token]
    return _csv([{"id": "tmall-42", "tags": tags, "identities": json.dumps(tokens)}])


def _tmall_orders(orders: list[tuple[str, int, dt.datetime]]) -> str:
    """The marketplace's order export: rows addressed to its member id ``tmall-42``."""
    return _csv(
        [
            {
                "member_id": "tmall-42",
                "type": "purchase",
                "at": at.isoformat(),
                "key": f"tmall:{order_id}",
                "properties": json.dumps(
                    {"order_id": order_id, "amount_fen": fen, "channel": "tmall"}
                ),
            }
            for order_id, fen, at in orders
        ]
    )


def _import_buyer(
    backend: str, url: str, prefix: str, tmp: Path, phones: PhoneProtector, ordered_at: dt.datetime
) -> None:
    """Step 1: the marketplace export, imported — on SQLite with the command line."""
    members = _tmall_members(phones)
    events = _tmall_orders([("TM-1", 9900, ordered_at)])
    if backend == "sqlite":
        from membermkt.cli import main

        (tmp / "members.csv").write_text(members, encoding="utf-8")
        (tmp / "orders.csv").write_text(events, encoding="utf-8")
        assert main(["members", "import", str(tmp / "members.csv"), "--db", url]) == 0
        assert main(["members", "import", str(tmp / "orders.csv"), "--events", "--db", url]) == 0
        return
    store = SqlStore(url, table_prefix=prefix)  # keys from MEMBERMKT_PHONE_KEYS
    try:
        assert import_members_csv(store, io.StringIO(members)).ok
        assert import_events_csv(store, io.StringIO(events)).ok
    finally:
        store.close()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(backend, URL, table prefix) of an empty database."""
    backend = str(request.param)
    if backend == "sqlite":
        yield backend, f"sqlite:///{tmp_path / 'membermkt.db'}", "mm_"  # the CLI's prefix
        return
    assert POSTGRES_URL
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield backend, POSTGRES_URL, prefix
    store = SqlStore(POSTGRES_URL, table_prefix=prefix, insecure_demo=True)
    store.drop_tables()
    store.close()


def _outcome(html: str) -> str:
    """The red-packet outcome shown on a result page (``data-status``)."""
    return html.split('id="result" data-status="', 1)[1].split('"', 1)[0]


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_seed_story_one_member_parcel_credited_with_later_revenue(
    db: tuple[str, str, str], phone_key: PhoneProtector, tmp_path: Path
) -> None:
    backend, url, prefix = db
    clock = SharedClock()
    start = clock.now()
    # 1. the imported Tmall buyer (by phone) and their order, ten days before the parcel
    _import_buyer(backend, url, prefix, tmp_path, phone_key, start - 10 * DAY)
    store = SqlStore(url, table_prefix=prefix)  # the same key ring, from the environment
    assert store.phones is not None
    buyer = store.resolve(Identity.platform_buyer("tmall", TMALL_ID))
    assert buyer is not None
    assert store.resolve(phone_key.identity(NUMBER)) == buyer

    wechat = WeChatEmulator(seed=3, clock=clock)
    acct = wechat.add_account(APPID, SECRET)
    creds = make_test_credentials(MCH_ID)
    pay = WeChatPayEmulator(creds, appid=APPID, api_key=API_KEY, api_v3_key=API_V3_KEY)
    files = creds.write(tmp_path)
    cert = MerchantCertificate.load(files["merchant_cert"], files["merchant_key"])
    config = RedPacketConfig(
        mch_id=MCH_ID,
        wxappid=APPID,
        api_key=API_KEY,
        send_name="榴莲小店",
        act_name="包裹扫码留电话",
        wishing="感谢关注",
        remark="手机号领红包",
    )
    rule = RedPacketRule(
        id="parcel-phone", mch_id=MCH_ID, amount=FixedAmount(300), total_budget_fen=30_000
    )
    texted: list[tuple[str, str]] = []
    try:
        with (
            WeChatPayV2Gateway(config, cert, transport=pay.transport()) as gateway,
            OfficialAccount(APPID, SECRET, transport=wechat.transport(), clock=clock) as account,
        ):
            # 2. the parcel QR code: a signed, encrypted subscribe push through the handler
            enricher = FollowerEnricher(account, store, autostart=False, now=clock.now)
            handler = CallbackHandler(
                Endpoint(
                    appid=APPID,
                    token=acct.token,
                    encoding_aes_key=acct.encoding_aes_key,
                    scene_channels={"parcel-sf-2026w47": "parcel"},
                ),
                store=store,
                enricher=enricher,
                clock=clock,
            )
            push = acct.follow(OPENID, scene="parcel-sf-2026w47")
            acct.followers[OPENID].unionid = UNIONID  # the Open Platform binding
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=asgi_app(handler)),
                base_url="https://shop.example",
            ) as c:
                r = await c.post("/wechat", params=dict(push.query), content=push.body)
                assert r.status_code == 200
                forged = await c.post(
                    "/wechat",
                    params={**push.query, "msg_signature": "0" * 40},
                    content=push.body,
                )
                assert forged.status_code == 403
            assert enricher.drain() == 1  # user/info: the unionid, linked
            handler.close()
            follower = store.resolve(Identity.openid(APPID, OPENID))
            assert follower is not None
            assert store.resolve(Identity.unionid(UNIONID)) == follower
            assert follower != buyer  # nothing proves yet that they are one person

            # 3. the phone form inside WeChat: OAuth, phone, texted code (tapped twice)
            clock.advance(60)
            service = RedPacketService(
                store, gateway, clock=clock, rng=random.Random(5), sleep=lambda s: None
            )
            app = PhoneFormApp(
                account=account,
                store=store,
                redpackets=service,
                rule=rule,
                public_url="https://shop.example/redpacket/",
                secret=b"s" * 32,
                clock=clock,
                verifier=PhoneVerifier(lambda n, code: texted.append((n, code)), secret=b"v" * 32),
            )
            wechat.browse_as(APPID, OPENID)
            world = SimpleNamespace(wechat=wechat)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="https://shop.example"
            ) as c:
                r = await c.get("/redpacket/")
                await c.get(follow_redirect_to_emulator(world, r.headers["location"]))  # type: ignore[arg-type]
                form = await c.get("/redpacket/")
                assert form.status_code == 200
                r = await c.post(
                    "/redpacket/",
                    data={"phone": NUMBER, "consent": "yes", "csrf": _csrf(form.text)},
                )
                assert r.status_code == 200, r.text
                assert 'name="code"' in r.text
                [(number, code)] = texted
                assert number == "8613800138000"
                # a double tap: the code form sent twice at once, with the same session
                cookies = dict(c.cookies)
                data = {"code": code, "csrf": _csrf(r.text)}

                async def tap() -> httpx.Response:
                    async with httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=app),
                        base_url="https://shop.example",
                        cookies=cookies,
                    ) as tapper:
                        return await tapper.post("/redpacket/", data=data)

                taps = await asyncio.gather(tap(), tap())
                # one pays; the other is denied by the rule's per-member limit, or — when it
                # finds that payment still in flight — says it is on its way (202)
                assert {t.status_code for t in taps} <= {200, 202}, [t.text for t in taps]
                outcomes = sorted(_outcome(t.text) for t in taps)
                assert outcomes in (["denied", "paid"], ["paid", "pending"]), outcomes
                # the whole form once more, a minute later: a new code, no new payment
                clock.advance(60)
                c.cookies.update(taps[0].cookies)  # the browser keeps the session it got back
                form = await c.get("/redpacket/")
                r = await c.post(
                    "/redpacket/",
                    data={"phone": NUMBER, "consent": "yes", "csrf": _csrf(form.text)},
                )
                assert r.status_code == 200, r.text
                assert len(texted) == 2
                r = await c.post("/redpacket/", data={"code": texted[-1][1], "csrf": _csrf(r.text)})
                assert _outcome(r.text) == "denied"

            # 4. one red packet, paid once
            assert pay.paid_per_openid()[OPENID] == 1
            assert pay.total_paid_fen == 300

            # 5. the buyer pays later through WeChat Pay (the merchant's order notification)
            clock.advance(2 * 86_400)
            payer = store.resolve(Identity.openid(APPID, OPENID))
            assert payer is not None
            paid_at = clock.now()
            store.append_events(
                [
                    Event(
                        payer,
                        "purchase",
                        paid_at,
                        {"order_id": "WX-1", "amount_fen": 2000, "channel": "wechatpay"},
                        key="wxpay:WX-1",
                    )
                ]
            )

        # 6. the next Tmall export, a day later: the buyer again (now a "repeat" buyer), the
        # earlier order again (de-duplicated by key) and a new one, all under the
        # marketplace's id tmall-42, merged away in step 3
        later = paid_at + DAY
        buyers = _tmall_members(phone_key, tags='["tmall", "repeat"]')
        assert import_members_csv(store, io.StringIO(buyers)).ok
        export = _tmall_orders([("TM-1", 9900, start - 10 * DAY), ("TM-2", 5900, later)])
        report = import_events_csv(store, io.StringIO(export))
        assert report.ok

        # ONE member: every identity resolves to it
        as_of = later + DAY
        member_id = store.resolve(Identity.openid(APPID, OPENID))
        assert member_id is not None
        for ident in (
            Identity.platform_buyer("tmall", TMALL_ID),
            phone_key.identity(NUMBER),
            Identity.unionid(UNIONID),
        ):
            assert store.resolve(ident) == member_id, ident.kind
        assert store.count(TRUE, as_of) == 1
        member = store.get_member(member_id)
        assert member is not None
        assert member.state.source == "parcel"
        assert (member.state.purchases.count, member.state.purchases.total_fen) == (3, 17800)
        assert {"tmall", "repeat"} <= member.tags
        assert store.get_member("tmall-42") is None  # not re-created by the later import
        assert store.survivors(["tmall-42"]) == {"tmall-42": member_id}
        [merge] = store.merges(member_id)
        assert merge.link.evidence.value == "verified_phone"
        paid = store.events_for(member_id, types=["redpacket_paid"])
        assert len(paid) == 1
        # the parcel is credited with the later orders: WeChat Pay and the later Tmall one
        result = analytics.attribution(store, as_of=as_of)
        parcel = result.row("parcel")
        assert parcel is not None
        assert (parcel.members, parcel.followers, parcel.buyers) == (1, 1, 1)
        assert (parcel.orders, parcel.revenue_fen) == (2, 7900)
        unknown = result.row("(unknown)")
        assert unknown is not None
        assert (unknown.members, unknown.orders, unknown.revenue_fen) == (0, 1, 9900)
        # and as of the day before the follow: no source, one Tmall buyer
        before = analytics.attribution(store, as_of=start - DAY)
        assert before.row("parcel") is None
        assert list(store.select(attr("source") == "parcel", start - DAY)) == []
        assert list(store.select(attr("source") == "parcel", as_of)) == [member_id]
    finally:
        store.close()
