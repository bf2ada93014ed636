"""The phone/consent page through its ASGI app (httpx ASGITransport) against the WeChat
and WeChat Pay emulators: OAuth with a session-bound state, CSRF and replay refusals,
expired codes, phone linking, consent, one red packet, dwell beacons."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from _phoneform import APPID, OPENID, World, follow_redirect_to_emulator, phone_form_world
from membermkt.core.identity import Identity
from membermkt.errors import ConfigError
from membermkt.testing.phones import TEST_PHONES


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with phone_form_world(tmp_path) as w:
        yield w


def _client(world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url="https://shop.example"
    )


async def _login(world: World, c: httpx.AsyncClient) -> httpx.Response:
    r = await c.get("/redpacket/")
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://open.weixin.qq.com/connect/oauth2/authorize")
    back = follow_redirect_to_emulator(world, r.headers["location"])
    assert back.startswith("https://shop.example/redpacket/callback?")
    r = await c.get(back)
    assert r.status_code == 302, r.text
    assert r.headers["location"] == "https://shop.example/redpacket/"
    return await c.get("/redpacket/")


def _csrf(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_full_flow_links_phone_and_pays_once(world: World) -> None:
    async with _client(world) as c:
        form = await _login(world, c)
        assert form.status_code == 200
        assert 'id="phone-form"' in form.text
        mid = world.store.resolve(Identity.openid(APPID, OPENID))
        assert mid is not None
        csrf = _csrf(form.text)
        r = await c.post(
            "/redpacket/", data={"phone": "138 0013 8000", "consent": "yes", "csrf": csrf}
        )
        assert r.status_code == 200
        assert 'data-status="paid"' in r.text
        assert world.store.resolve(TEST_PHONES.identity("13800138000")) == mid
        linked = world.store.get_member(mid)
        assert linked is not None
        assert TEST_PHONES.phone_of(linked) == "8613800138000"  # kept encrypted, for SMS
        assert "8613800138000" not in str(linked.attributes)
        # submitting again (back button, double tap) never pays twice
        r2 = await c.post(
            "/redpacket/", data={"phone": "13800138000", "consent": "yes", "csrf": csrf}
        )
        assert 'data-status="paid"' not in r2.text
    assert world.pay.paid_per_openid()[OPENID] == 1
    assert [e.type for e in world.store.events_for(mid) if e.type == "consent"] == ["consent"]


async def test_missing_consent_or_bad_phone_or_csrf_is_refused(world: World) -> None:
    async with _client(world) as c:
        form = await _login(world, c)
        csrf = _csrf(form.text)
        r = await c.post("/redpacket/", data={"phone": "13800138000", "csrf": csrf})
        assert r.status_code == 400
        r = await c.post("/redpacket/", data={"phone": "12ab", "consent": "yes", "csrf": csrf})
        assert r.status_code == 400
        r = await c.post(
            "/redpacket/", data={"phone": "13800138000", "consent": "yes", "csrf": "x"}
        )
        assert r.status_code == 403
    assert world.pay.paid_per_openid()[OPENID] == 0


async def test_phone_of_another_member_is_refused(world: World) -> None:
    from membermkt.core.members import Member

    world.store.upsert_members(
        [Member("someone-else", identities=(TEST_PHONES.identity("13900000000"),))]
    )
    async with _client(world) as c:
        form = await _login(world, c)
        r = await c.post(
            "/redpacket/", data={"phone": "13900000000", "consent": "yes", "csrf": _csrf(form.text)}
        )
        assert r.status_code == 409
    assert world.pay.paid_per_openid()[OPENID] == 0


async def test_state_from_another_session_is_refused(world: World) -> None:
    """CSRF: an attacker's callback URL (state bound to the attacker's session) opened in the
    victim's browser is refused."""
    async with _client(world) as attacker, _client(world) as victim:
        r = await attacker.get("/redpacket/")
        back = follow_redirect_to_emulator(world, r.headers["location"])
        await victim.get("/redpacket/")  # the victim has a session of their own
        r = await victim.get(back)
        assert r.status_code == 403
        # without any session cookie the callback is refused too
    async with _client(world) as fresh:
        r = await fresh.get(back)
        assert r.status_code == 400


async def test_replayed_callback_is_refused(world: World) -> None:
    async with _client(world) as c:
        r = await c.get("/redpacket/")
        back = follow_redirect_to_emulator(world, r.headers["location"])
        assert (await c.get(back)).status_code == 302
        again = await c.get(back)
        assert again.status_code == 403


async def test_expired_code_gives_reopen_page(world: World) -> None:
    async with _client(world) as c:
        r = await c.get("/redpacket/")
        back = follow_redirect_to_emulator(world, r.headers["location"])
        world.clock.advance(301)  # the code dies after 5 minutes
        r = await c.get(back)
        assert r.status_code == 400
        assert "过期" in r.text
    assert world.wechat.errcodes[40029] == 1


async def test_forged_state_is_refused(world: World) -> None:
    async with _client(world) as c:
        r = await c.get("/redpacket/")
        back = follow_redirect_to_emulator(world, r.headers["location"])
        q = parse_qs(urlsplit(back).query)
        forged = f"/redpacket/callback?code={q['code'][0]}&state={'0' * 60}"
        assert (await c.get(forged)).status_code == 403


async def test_beacon_records_view_with_dwell(world: World) -> None:
    async with _client(world) as c:
        await _login(world, c)
        js = await c.get("/redpacket/beacon.js")
        assert js.headers["content-type"].startswith("application/javascript")
        assert "sendBeacon" in js.text
        body = json.dumps(
            {"url": "https://shop.example/redpacket/#x", "dwell_seconds": 42.4, "page_id": "abc123"}
        )
        assert (await c.post("/redpacket/beacon", content=body)).status_code == 204
        assert (await c.post("/redpacket/beacon", content=body)).status_code == 204  # repeat
        bad = json.dumps({"url": "https://x/", "dwell_seconds": -1, "page_id": "abc"})
        r = await c.post("/redpacket/beacon", content=bad)
        assert r.status_code == 400
        assert "dwell_seconds" in r.text
    mid = world.store.resolve(Identity.openid(APPID, OPENID))
    assert mid is not None
    views = [e for e in world.store.events_for(mid) if e.type == "view"]
    assert len(views) == 1
    assert views[0].properties["dwell_seconds"] == 42
    assert views[0].properties["url"] == "https://shop.example/redpacket/"


async def test_anonymous_beacon_is_not_recorded(world: World) -> None:
    async with _client(world) as c:
        body = json.dumps({"url": "https://shop.example/", "dwell_seconds": 3, "page_id": "p1"})
        assert (await c.post("/redpacket/beacon", content=body)).status_code == 204
    # no session, no member: nothing was created or recorded
    assert world.store.resolve(Identity.openid(APPID, OPENID)) is None


async def test_userinfo_scope_links_unionid(tmp_path: Path) -> None:
    with phone_form_world(tmp_path, scope="snsapi_userinfo") as world:
        async with _client(world) as c:
            await _login(world, c)
        mid = world.store.resolve(Identity.openid(APPID, OPENID))
        assert mid is not None
        assert world.store.resolve(Identity.unionid("u-0001")) == mid


def test_public_url_must_be_absolute(tmp_path: Path) -> None:
    with pytest.raises(ConfigError), phone_form_world(tmp_path, public_url="/redpacket/"):
        pass


async def test_paths_outside_the_page_are_not_found_and_keep_the_session(world: World) -> None:
    """A browser's /favicon.ico must not start a new OAuth session (it would replace the
    session cookie and break the form's CSRF token — found by the browser test)."""
    async with _client(world) as c:
        form = await _login(world, c)
        r = await c.get("/favicon.ico")
        assert r.status_code == 404
        assert "set-cookie" not in r.headers
        r = await c.get("/redpacket")
        assert r.status_code == 302
        assert r.headers["location"] == "/redpacket/"
        r = await c.post(
            "/redpacket/", data={"phone": "13800138000", "consent": "yes", "csrf": _csrf(form.text)}
        )
        assert 'data-status="paid"' in r.text
