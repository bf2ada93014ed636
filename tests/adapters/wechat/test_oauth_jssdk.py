"""OAuth web authorization and JS-SDK against the emulator: code exchange, expired and
replayed codes, scope checks, the session-bound state, the cached jsapi ticket and the
official signature example."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from membermkt.channels.wechat.api import jssdk, oauth
from membermkt.channels.wechat.oauth_state import StateSigner, UsedStates
from membermkt.errors import PlatformError, SignatureError, UsageError
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.tokens.memory import MemoryTokenCache

from .conftest import APPID, ManualClock, Twin, make_client


def _authorize(emu: WeChatEmulator, url: str) -> httpx.Response:
    with httpx.Client(transport=emu.transport(), base_url="https://open.weixin.qq.com") as c:
        return c.get(url.split("#", 1)[0])


def _code_from(resp: httpx.Response) -> tuple[str, str]:
    assert resp.status_code == 302, resp.text
    q = parse_qs(urlsplit(resp.headers["location"]).query)
    return q["code"][0], q["state"][0]


def test_authorize_url_shape_and_refusals() -> None:
    url = oauth.authorize_url(APPID, "https://shop.example/cb?x=1", state="abc123")
    assert url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?appid=" + APPID)
    assert "redirect_uri=https%3A%2F%2Fshop.example%2Fcb%3Fx%3D1" in url
    assert url.endswith("&scope=snsapi_base&state=abc123#wechat_redirect")
    with pytest.raises(UsageError, match="scope"):
        oauth.authorize_url(APPID, "https://a.example/", state="s", scope="snsapi_login")
    with pytest.raises(UsageError, match="state"):
        oauth.authorize_url(APPID, "https://a.example/", state="x" * 129)
    with pytest.raises(UsageError, match="state"):
        oauth.authorize_url(APPID, "https://a.example/", state="a b")
    with pytest.raises(UsageError, match="redirect_uri"):
        oauth.authorize_url(APPID, "javascript:alert(1)", state="s")


async def test_code_exchange_base_scope(twin: Twin, emu: WeChatEmulator) -> None:
    emu.browse_as(APPID, "o00003")
    resp = _authorize(emu, twin.client.oauth_url("https://shop.example/cb", state="st1"))
    code, state = _code_from(resp)
    assert state == "st1"
    assert urlsplit(resp.headers["location"]).netloc == "shop.example"
    token = await twin.exchange_code(code)
    assert token.openid == "o00003"
    assert token.scopes == {"snsapi_base"}
    assert token.unionid is None
    # snsapi_base tokens cannot read the profile: refused before any call ...
    with pytest.raises(UsageError, match="snsapi_userinfo"):
        await twin.oauth_user_info(token)
    # ... and by the platform when the check is bypassed.
    forged = oauth.OAuthToken(
        access_token=token.access_token,
        expires_in=7200,
        refresh_token="",
        openid=token.openid,
        scope="snsapi_userinfo",
    )
    with pytest.raises(PlatformError) as exc:
        await twin.oauth_user_info(forged)
    assert exc.value.errcode == 48001


async def test_userinfo_scope_gives_unionid(twin: Twin, emu: WeChatEmulator) -> None:
    emu.browse_as(APPID, "o00004", unionid="u-4")
    url = twin.client.oauth_url("https://shop.example/cb", state="s", scope="snsapi_userinfo")
    code, _ = _code_from(_authorize(emu, url))
    token = await twin.exchange_code(code)
    assert token.unionid == "u-4"
    info = await twin.oauth_user_info(token)
    assert info.openid == "o00004"
    assert info.unionid == "u-4"


async def test_replayed_and_expired_codes_are_refused(
    twin: Twin, emu: WeChatEmulator, clock: ManualClock
) -> None:
    code = emu.issue_code(APPID, "o00001")
    await twin.exchange_code(code)
    with pytest.raises(PlatformError) as used:
        await twin.exchange_code(code)
    assert used.value.errcode == 40163
    late = emu.issue_code(APPID, "o00001")
    clock.advance(301)
    with pytest.raises(PlatformError) as expired:
        await twin.exchange_code(late)
    assert expired.value.errcode == 40029
    with pytest.raises(PlatformError) as forged:
        await twin.exchange_code("not-a-code")
    assert forged.value.errcode == 40029
    with pytest.raises(UsageError):
        await twin.exchange_code("")


async def test_code_of_another_account_is_invalid(twin: Twin, emu: WeChatEmulator) -> None:
    emu.add_account("wx0000000000000002", "s2")
    code = emu.issue_code("wx0000000000000002", "o9")
    with pytest.raises(PlatformError) as exc:
        await twin.exchange_code(code)
    assert exc.value.errcode == 40029


async def test_expired_user_token(twin: Twin, emu: WeChatEmulator, clock: ManualClock) -> None:
    code = emu.issue_code(APPID, "o00002", scope="snsapi_userinfo")
    token = await twin.exchange_code(code)
    clock.advance(7201)
    with pytest.raises(PlatformError) as exc:
        await twin.oauth_user_info(token)
    assert exc.value.errcode == 42001


def test_authorize_page_refusals(emu: WeChatEmulator, account) -> None:
    emu.allow_oauth_domain(APPID, "shop.example")
    emu.browse_as(APPID, "o1")
    bad_domain = oauth.authorize_url(APPID, "https://evil.example/cb", state="s")
    assert _authorize(emu, bad_domain).json()["errcode"] == 10003
    bad_app = oauth.authorize_url("wxnope", "https://shop.example/cb", state="s")
    assert _authorize(emu, bad_app).json()["errcode"] == 40013
    ok = oauth.authorize_url(APPID, "https://shop.example/cb", state="s")
    assert _authorize(emu, ok).status_code == 302


def test_state_binds_session_expires_and_is_single_use() -> None:
    signer = StateSigner(b"k" * 32, ttl=600)
    state = signer.issue("session-a", now=1000, nonce="0123456789abcdef")
    assert len(state) == 60
    assert state.isalnum()
    oauth.authorize_url(APPID, "https://a.example/", state=state)  # fits the platform rule
    assert signer.verify(state, "session-a", now=1500).issued_at == 1000
    with pytest.raises(SignatureError, match="session"):
        signer.verify(state, "session-b", now=1500)
    with pytest.raises(SignatureError, match="expired"):
        signer.verify(state, "session-a", now=1601)
    tampered = state[:-1] + ("0" if state[-1] != "0" else "1")
    with pytest.raises(SignatureError):
        signer.verify(tampered, "session-a", now=1500)
    with pytest.raises(SignatureError, match="malformed"):
        signer.verify("short", "session-a", now=1500)
    used = UsedStates()
    used.consume(state, now=1500)
    with pytest.raises(SignatureError, match="already used"):
        used.consume(state, now=1501)
    with pytest.raises(UsageError):
        signer.issue("s", now=1, nonce="not-hex")


def test_js_signature_official_example() -> None:
    ticket = (
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    )
    sig = jssdk.js_signature(
        ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"
    )
    assert sig == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    # the fragment is not signed
    assert (
        jssdk.js_signature(
            ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value#top"
        )
        == sig
    )
    with pytest.raises(UsageError):
        jssdk.js_signature(ticket, "n", 1, "ftp://x")


async def test_jsapi_ticket_is_cached_in_the_shared_token_cache(
    kind: str, emu: WeChatEmulator, clock: ManualClock, account
) -> None:
    cache = MemoryTokenCache()
    a = Twin(make_client(kind, emu, clock, [], token_cache=cache), [])
    b = Twin(make_client(kind, emu, clock, [], token_cache=cache), [])
    t1 = await a.jsapi_ticket()
    t2 = await b.jsapi_ticket()
    assert t1 == t2 == emu.jsapi_ticket(APPID)
    assert emu.ticket_fetches == 1
    cfg = await a.js_config(
        "https://shop.example/p?x=1#frag", nonce="abc", js_api_list=["scanQRCode"]
    )
    assert cfg.signature == jssdk.js_signature(
        t1, "abc", cfg.timestamp, "https://shop.example/p?x=1"
    )
    assert cfg.as_dict()["jsApiList"] == ["scanQRCode"]
    clock.advance(7200)
    await b.jsapi_ticket()
    assert emu.ticket_fetches == 2
