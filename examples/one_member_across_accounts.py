"""One person, two official accounts and a WeCom clerk: one member.

A buyer follows the shop's service account (parcel QR code), then its second account, then
is added by a WeCom clerk. Each push lands under its own id (two openids, an
external_userid); the callbacks then ask the platforms who that is — ``user/info`` and
``externalcontact/get``, in the background, rate-limited, never on the 5-second answer
path — and link every id to the unionid they report. The three become one member, with
every event, and each merge is in the store's audit trail.

This app runs the async clients' enrichers as tasks of the FastAPI lifespan; with the sync
clients, ``CallbackHandler(..., client=account)`` starts a worker thread instead.

Run this file to try it against the emulators, no account needed::

    python examples/one_member_across_accounts.py
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from membermkt.channels.wechat import (
    AsyncOfficialAccount,
    CallbackHandler,
    Endpoint,
    FollowerEnricher,
)
from membermkt.channels.wecom import (
    AsyncWeCom,
    ContactEnricher,
    WeComCallbackHandler,
    WeComEndpoint,
)
from membermkt.contrib.asgi import asgi_app
from membermkt.core.identity import Identity
from membermkt.stores import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wecom import WeComEmulator

SHOP, CLUB, CORP = "wxshop0000000001", "wxclub0000000001", "wwshop0000000001"

# the platforms (emulated here; in production: the real APIs and your credentials)
wechat, wecom = WeChatEmulator(), WeComEmulator()
shop = wechat.add_account(SHOP, "shop-secret", token="shop-token")
club = wechat.add_account(CLUB, "club-secret", token="club-token")
corp = wecom.add_corp(CORP, "contact-secret")
corp.add_staff("clerk1")

store = SqlStore("sqlite://")  # SqlStore("postgresql+psycopg://...") in production
shop_api = AsyncOfficialAccount(SHOP, "shop-secret", transport=wechat.transport())
club_api = AsyncOfficialAccount(CLUB, "club-secret", transport=wechat.transport())
corp_api = AsyncWeCom(CORP, "contact-secret", transport=wecom.transport())
enrichers = [
    FollowerEnricher(shop_api, store, rate=5),
    FollowerEnricher(club_api, store, rate=5),
    ContactEnricher(corp_api, store, rate=5),
]
official = CallbackHandler(
    [
        Endpoint(
            appid=SHOP,
            token=shop.token,
            encoding_aes_key=shop.encoding_aes_key,
            scene_channels={"parcel": "parcel"},
        ),
        Endpoint(appid=CLUB, token=club.token, encoding_aes_key=club.encoding_aes_key),
    ],
    store=store,
    enricher=enrichers[:2],
)
contacts = WeComCallbackHandler(
    WeComEndpoint(corpid=CORP, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
    store=store,
    enricher=enrichers[2],
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(e.run(idle=0.05)) for e in enrichers]
    yield
    for task in tasks:
        task.cancel()
    for api in (shop_api, club_api, corp_api):
        await api.aclose()


app = FastAPI(title="one member across accounts", lifespan=lifespan)
app.mount("/wechat", asgi_app(official))  # /wechat/<appid>
app.mount("/wecom", asgi_app(contacts))


async def self_test() -> None:
    """The buyer's three pushes, as the platforms would send them."""
    person = "unionid-of-the-buyer"  # both accounts and the corp: one Open Platform account
    shop.add_followers(["o-shop-1"], unionid=lambda o: person)
    club.add_followers(["o-club-1"], unionid=lambda o: person)
    pushes = [
        (f"/wechat/{SHOP}", shop.follow("o-shop-1", scene="parcel")),
        (f"/wechat/{CLUB}", club.follow("o-club-1")),
        ("/wecom/", corp.add_customer("clerk1", "wm-buyer-1", unionid=person)),
    ]
    ids = [
        Identity.openid(SHOP, "o-shop-1"),
        Identity.openid(CLUB, "o-club-1"),
        Identity.external_userid(CORP, "wm-buyer-1"),
    ]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            for path, push in pushes:
                r = await client.post(path, params=dict(push.query), content=push.body)
                assert (r.status_code, r.text) == (200, "success"), r.text
        print("answered:", [store.resolve(i) for i in ids], "(three members, for now)")
        for _ in range(3000):  # the enrichers link in the background
            if len({store.resolve(i) for i in ids}) == 1:
                break
            await asyncio.sleep(0.01)
    [member_id] = {store.resolve(i) for i in ids}
    assert member_id is not None
    assert member_id == store.resolve(Identity.unionid(person))
    member = store.get_member(member_id)
    assert member is not None
    assert member.state.source == "parcel"
    kinds = sorted(e.type for e in store.events_for(member_id))
    assert kinds == ["contact_added", "follow", "follow"], kinds
    print(f"one member {member_id}: {kinds}, source {member.state.source}")
    for merge in store.merges():  # the audit trail: each merge, by whom and why
        print(f"  merged {merge.drop} into {merge.keep} by {merge.link.by} ({merge.link.evidence})")
    store.close()


if __name__ == "__main__":
    asyncio.run(self_test())
