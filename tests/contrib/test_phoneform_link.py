"""The phone page links through ``store.link``: a texted code makes the phone verified, and
an imported buyer known by that phone and the follower become one member (memory and
SQLite); an unverified number is only attached, never merged; the code's refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _phoneform import APPID, OPENID, World, follow_redirect_to_emulator, phone_form_world
from membermkt.core.events import Event
from membermkt.core.identity import Evidence, Identity
from membermkt.core.members import Member
from membermkt.security.phones import PhoneProtector
from membermkt.stores.memory import InMemoryStore
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONE_KEY, TEST_PHONES

NUMBER = "13800138000"
PHONE = TEST_PHONES.identity(NUMBER)
BUYER = Identity.platform_buyer("tmall", "tb-42")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryStore(phones=TEST_PHONES)
        return
    s = SqlStore("sqlite://", phones=TEST_PHONES)
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
async def world(tmp_path: Path, store: Any) -> AsyncIterator[World]:
    with phone_form_world(tmp_path, store=store, verify=True) as w:
        yield w


def _client(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url="https://shop.example"
    )


def _csrf(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def _login(world: World, c: httpx.AsyncClient) -> str:
    r = await c.get("/redpacket/")
    back = follow_redirect_to_emulator(world, r.headers["location"])
    r = await c.get(back)
    assert r.status_code == 302, r.text
    form = await c.get("/redpacket/")
    assert 'id="phone-form"' in form.text
    return _csrf(form.text)


def _import_buyer(store: Any) -> None:
    store.upsert_members([Member("buyer-1", identities=[BUYER, PHONE])])
    store.append_events(
        [Event("buyer-1", "purchase", _t0(), {"amount_fen": 9900, "order_id": "T1"}, key="T1")]
    )


def _t0() -> Any:
    import datetime as dt

    return dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)


async def test_verified_phone_merges_the_imported_buyer_and_the_follower(world: World) -> None:
    _import_buyer(world.store)
    async with _client(world) as c:
        csrf = await _login(world, c)
        follower = world.store.resolve(Identity.openid(APPID, OPENID))
        assert follower is not None
        assert follower != "buyer-1"
        r = await c.post(
            "/redpacket/", data={"phone": "138 0013 8000", "consent": "yes", "csrf": csrf}
        )
        assert r.status_code == 200
        assert 'id="code-form"' in r.text
        assert NUMBER not in r.text
        assert NUMBER not in r.headers.get("set-cookie", "")
        assert [n for n, _ in world.outbox] == ["86" + NUMBER]
        code = world.outbox[-1][1]
        wrong = "0" * 6 if code != "0" * 6 else "1" * 6
        r = await c.post("/redpacket/", data={"code": wrong, "csrf": csrf})
        assert r.status_code == 400
        assert 'id="code-form"' in r.text
        # still two members until the code is right
        assert world.store.resolve(PHONE) == "buyer-1"
        r = await c.post("/redpacket/", data={"code": code, "csrf": csrf})
        assert r.status_code == 200, r.text
        assert 'data-status="paid"' in r.text
    one = world.store.resolve(PHONE)
    assert one == world.store.resolve(Identity.openid(APPID, OPENID))
    assert one == world.store.resolve(BUYER)
    assert one == min("buyer-1", follower)
    member = world.store.get_member(one)
    assert member is not None
    assert TEST_PHONES.phone_of(member) == "86" + NUMBER
    assert member.consent.marketing
    merges = world.store.merges(one)
    assert [m.link.evidence for m in merges] == [Evidence.VERIFIED_PHONE]
    assert merges[0].link.by == "phoneform.wechat"
    assert {e.type for e in world.store.events_for(one)} >= {"purchase", "consent"}
    # one packet, to the follower's openid
    assert world.pay.paid_per_openid() == {OPENID: 1}


async def test_an_unverified_number_never_merges(tmp_path: Path, store: Any) -> None:
    _import_buyer(store)
    with phone_form_world(tmp_path, store=store, verify=False) as world:
        async with _client(world) as c:
            csrf = await _login(world, c)
            r = await c.post("/redpacket/", data={"phone": NUMBER, "consent": "yes", "csrf": csrf})
        assert r.status_code == 409
        assert 'id="phone-form"' in r.text
        follower = world.store.resolve(Identity.openid(APPID, OPENID))
        assert follower not in (None, "buyer-1")
        assert world.store.resolve(PHONE) == "buyer-1"
        assert world.store.merges() == []
        assert world.pay.paid_per_openid().get(OPENID, 0) == 0
        # a number nobody holds is attached (claimed) and paid
        async with _client(world) as c:
            csrf = await _login(world, c)
            r = await c.post(
                "/redpacket/", data={"phone": "13900139000", "consent": "yes", "csrf": csrf}
            )
        assert 'data-status="paid"' in r.text
        assert world.store.resolve(TEST_PHONES.identity("13900139000")) == follower


async def test_expired_locked_and_rate_limited_codes(world: World) -> None:
    data = {"phone": NUMBER, "consent": "yes"}
    async with _client(world) as c:
        csrf = await _login(world, c)
        assert 'id="code-form"' in (await c.post("/redpacket/", data={**data, "csrf": csrf})).text
        world.clock.advance(301)
        r = await c.post("/redpacket/", data={"code": world.outbox[-1][1], "csrf": csrf})
        assert r.status_code == 400
        assert "过期" in r.text
        # the page asks for the phone again; five wrong guesses lock the next code
        assert 'id="phone-form"' in (await c.get("/redpacket/")).text
        r = await c.post("/redpacket/", data={**data, "csrf": csrf})
        assert 'id="code-form"' in r.text
        code = world.outbox[-1][1]
        wrong = "0" * 6 if code != "0" * 6 else "1" * 6
        for _ in range(5):
            r = await c.post("/redpacket/", data={"code": wrong, "csrf": csrf})
            assert r.status_code == 400
        r = await c.post("/redpacket/", data={"code": code, "csrf": csrf})
        assert r.status_code == 400
        assert "次数过多" in r.text
    assert world.store.resolve(PHONE) is None
    # at most 5 codes per number a day, whatever the session
    for _ in range(3):
        async with _client(world) as c:
            csrf = await _login(world, c)
            r = await c.post("/redpacket/", data={**data, "csrf": csrf})
            assert 'id="code-form"' in r.text
    assert len(world.outbox) == 5
    async with _client(world) as c:
        csrf = await _login(world, c)
        r = await c.post("/redpacket/", data={**data, "csrf": csrf})
        assert r.status_code == 429
    assert len(world.outbox) == 5


def test_a_keyless_sql_store_is_refused_at_construction(tmp_path: Path) -> None:
    from membermkt.errors import ConfigError

    bare = SqlStore("sqlite://")
    with (
        pytest.raises(ConfigError, match="phone key"),
        phone_form_world(tmp_path, store=bare),
    ):
        pass
    bare.create_schema()
    with phone_form_world(tmp_path, store=bare, phones=PhoneProtector(TEST_PHONE_KEY)) as w:
        assert w.app.phones is not None
    bare.close()


async def test_a_session_whose_member_is_gone_authorizes_again(tmp_path: Path) -> None:
    """A signed session outliving its member (another database, a deleted member) is not
    trusted to link anything: the page goes back through OAuth."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with phone_form_world(tmp_path / "a") as first:
        async with _client(first) as c:
            await _login(first, c)
            cookies = dict(c.cookies)
    with phone_form_world(tmp_path / "b") as second:
        async with _client(second) as c:
            c.cookies.update(cookies)
            r = await c.get("/redpacket/")
            assert r.status_code == 302
            assert r.headers["location"].startswith("https://open.weixin.qq.com/")
            r = await c.post("/redpacket/", data={"phone": NUMBER, "consent": "yes", "csrf": "x"})
            assert r.status_code == 403
        assert second.store.resolve(PHONE) is None
