"""The phone page inside WeCom (``auth/getuserinfo`` against the WeCom emulator): a customer
verifies their phone and becomes one member with the buyer/follower known by it, paid to
that follower's openid; staff, non-customers, replayed and expired codes are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pytest

from _phoneform import APPID, OPENID, World, phone_form_world
from membermkt.channels.wecom import WeCom
from membermkt.contrib.phoneform import PhoneFormApp, WeComWebAuth
from membermkt.contrib.phoneverify import PhoneVerifier
from membermkt.core.identity import Evidence, Identity, member_id_for
from membermkt.core.members import Member
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wecom import WeComEmulator
from membermkt.testing.phones import TEST_PHONES

CORPID = "ww0000000000000001"
AGENTID = "1000002"
CUSTOMER = "wmCustomer0000000001"
NUMBER = "13800138000"
PHONE = TEST_PHONES.identity(NUMBER)


@attrs.define
class WeComWorld:
    oa: World
    emu: WeComEmulator
    app: PhoneFormApp
    outbox: list[tuple[str, str]]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore(phones=TEST_PHONES)
        return
    s = SqlStore("sqlite://", phones=TEST_PHONES)
    s.create_schema()
    yield s
    s.close()


def _wecom_app(oa: World, emu: WeComEmulator, payout_appid: str) -> tuple[PhoneFormApp, Any]:
    outbox: list[tuple[str, str]] = []
    client = WeCom(CORPID, "app-secret", transport=emu.transport(), clock=oa.clock)
    app = PhoneFormApp(
        wecom=WeComWebAuth(client, agentid=AGENTID, payout_appid=payout_appid),
        store=oa.store,
        redpackets=oa.service,
        rule=oa.rule,
        public_url="https://shop.example/redpacket/",
        secret=b"w" * 32,
        clock=oa.clock,
        verifier=PhoneVerifier(lambda n, c: outbox.append((n, c)), secret=b"v" * 32),
    )
    return app, outbox


@pytest.fixture
async def world(tmp_path: Path, store: Any) -> AsyncIterator[WeComWorld]:
    with phone_form_world(tmp_path, store=store) as oa:
        emu = WeComEmulator(seed=4, clock=oa.clock)
        corp = emu.add_corp(CORPID, "contact-secret", "app-secret")
        corp.add_staff("clerk1")
        corp.add_customers("clerk1", [CUSTOMER])
        app, outbox = _wecom_app(oa, emu, APPID)
        yield WeComWorld(oa, emu, app, outbox)


def _client(app: PhoneFormApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://shop.example"
    )


async def _authorize(c: httpx.AsyncClient) -> str:
    """Open the page; return the state of the authorize redirect (WeCom's part is played
    by ``issue_web_code``)."""
    r = await c.get("/redpacket/")
    assert r.status_code == 302
    url = urlsplit(r.headers["location"])
    q = parse_qs(url.query)
    assert url.netloc == "open.weixin.qq.com"
    assert q["appid"] == [CORPID]
    assert q["agentid"] == [AGENTID]
    assert q["scope"] == ["snsapi_base"]
    assert q["redirect_uri"] == ["https://shop.example/redpacket/callback"]
    return q["state"][0]


def _csrf(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_customer_verifies_phone_and_joins_the_follower(world: WeComWorld) -> None:
    store = world.oa.store
    # the buyer, already known by phone and as the official account's follower
    store.upsert_members([Member("buyer-1", identities=[PHONE, Identity.openid(APPID, OPENID)])])
    ext = Identity.external_userid(CORPID, CUSTOMER)
    async with _client(world.app) as c:
        state = await _authorize(c)
        code = world.emu.issue_web_code(CORPID, openid="oCorpScoped1", external_userid=CUSTOMER)
        r = await c.get("/redpacket/callback", params={"code": code, "state": state})
        assert r.status_code == 302, r.text
        customer = store.resolve(ext)
        assert customer == member_id_for(ext)
        form = await c.get("/redpacket/")
        csrf = _csrf(form.text)
        r = await c.post("/redpacket/", data={"phone": NUMBER, "consent": "yes", "csrf": csrf})
        assert 'id="code-form"' in r.text
        r = await c.post("/redpacket/", data={"code": world.outbox[-1][1], "csrf": csrf})
        assert r.status_code == 200, r.text
        assert 'data-status="paid"' in r.text
    one = store.resolve(ext)
    assert one == store.resolve(PHONE) == store.resolve(Identity.openid(APPID, OPENID))
    assert one == min("buyer-1", customer)
    merges = store.merges(one)
    assert [(m.link.evidence, m.link.by) for m in merges] == [
        (Evidence.VERIFIED_PHONE, "phoneform.wecom")
    ]
    assert world.oa.pay.paid_per_openid() == {OPENID: 1}


async def test_without_an_openid_the_phone_is_linked_but_nothing_is_paid(
    world: WeComWorld,
) -> None:
    async with _client(world.app) as c:
        state = await _authorize(c)
        code = world.emu.issue_web_code(CORPID, openid="oCorpScoped1", external_userid=CUSTOMER)
        await c.get("/redpacket/callback", params={"code": code, "state": state})
        csrf = _csrf((await c.get("/redpacket/")).text)
        await c.post("/redpacket/", data={"phone": NUMBER, "consent": "yes", "csrf": csrf})
        r = await c.post("/redpacket/", data={"code": world.outbox[-1][1], "csrf": csrf})
    assert 'data-status="linked"' in r.text
    ext = Identity.external_userid(CORPID, CUSTOMER)
    assert world.oa.store.resolve(PHONE) == world.oa.store.resolve(ext)
    assert world.oa.pay.paid_per_openid() == {}


async def test_staff_strangers_replayed_and_expired_codes_are_refused(world: WeComWorld) -> None:
    cases = [
        (world.emu.issue_web_code(CORPID, userid="clerk1"), 403, "员工"),
        (world.emu.issue_web_code(CORPID, openid="oStranger"), 403, "添加"),
    ]
    for code, status, text in cases:
        async with _client(world.app) as c:
            state = await _authorize(c)
            r = await c.get("/redpacket/callback", params={"code": code, "state": state})
            assert r.status_code == status
            assert text in r.text
    # a code already used (40029 on WeCom) and one older than 5 minutes
    used = world.emu.issue_web_code(CORPID, openid="o1", external_userid=CUSTOMER)
    async with _client(world.app) as c:
        state = await _authorize(c)
        r = await c.get("/redpacket/callback", params={"code": used, "state": state})
        assert r.status_code == 302
    async with _client(world.app) as c:
        state = await _authorize(c)
        r = await c.get("/redpacket/callback", params={"code": used, "state": state})
        assert r.status_code == 400
        assert "过期" in r.text
    late = world.emu.issue_web_code(CORPID, openid="o1", external_userid=CUSTOMER)
    world.oa.clock.advance(301)
    async with _client(world.app) as c:
        state = await _authorize(c)
        r = await c.get("/redpacket/callback", params={"code": late, "state": state})
        assert r.status_code == 400
    # nobody but the customer became a member
    assert {m.id for m in world.oa.store.iter_members()} == {
        member_id_for(Identity.external_userid(CORPID, CUSTOMER))
    }
