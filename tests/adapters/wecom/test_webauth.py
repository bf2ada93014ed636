"""WeCom web authorization against the emulator: staff vs customers, single-use and
expiring codes, codes of another corp."""

from __future__ import annotations

import pytest

from membermkt.channels.wecom.api import webauth
from membermkt.core.identity import Identity
from membermkt.errors import PlatformError, UsageError
from membermkt.testing.emulator.wecom import Corp, WeComEmulator

from .conftest import CORPID, ManualClock, Twin


def test_authorize_url_carries_agentid() -> None:
    url = webauth.authorize_url(CORPID, "https://shop.example/cb", state="s1", agentid="1000002")
    assert url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?appid=" + CORPID)
    assert "&scope=snsapi_base&state=s1&agentid=1000002#wechat_redirect" in url
    with pytest.raises(UsageError, match="agentid"):
        webauth.authorize_url(CORPID, "https://shop.example/cb", state="s1", agentid="")


async def test_staff_and_customer_visitors(twin: Twin, emu: WeComEmulator, corp: Corp) -> None:
    corp.add_customers("clerk1", ["wmCust1"])
    staff = await twin.call(webauth.getuserinfo(emu.issue_web_code(CORPID, userid="clerk2")))
    assert staff.is_staff
    assert staff.userid == "clerk2"
    assert staff.identity(CORPID) is None
    code = emu.issue_web_code(CORPID, openid="oCorpScoped1", external_userid="wmCust1")
    customer = await twin.call(webauth.getuserinfo(code))
    assert not customer.is_staff
    assert customer.external_userid == "wmCust1"
    assert customer.identity(CORPID) == Identity.external_userid(CORPID, "wmCust1")
    stranger = await twin.call(webauth.getuserinfo(emu.issue_web_code(CORPID, openid="oX")))
    assert stranger.openid == "oX"
    assert stranger.identity(CORPID) is None


async def test_used_expired_and_foreign_codes_are_refused(
    twin: Twin, emu: WeComEmulator, corp: Corp, clock: ManualClock
) -> None:
    code = emu.issue_web_code(CORPID, userid="clerk1")
    await twin.call(webauth.getuserinfo(code))
    with pytest.raises(PlatformError) as used:
        await twin.call(webauth.getuserinfo(code))
    assert used.value.errcode == 40029
    late = emu.issue_web_code(CORPID, userid="clerk1")
    clock.advance(301)
    with pytest.raises(PlatformError) as expired:
        await twin.call(webauth.getuserinfo(late))
    assert expired.value.errcode == 40029
    other = emu.add_corp("ww0000000000000002", "s2")
    other.add_staff("boss")
    foreign = emu.issue_web_code("ww0000000000000002", userid="boss")
    with pytest.raises(PlatformError) as exc:
        await twin.call(webauth.getuserinfo(foreign))
    assert exc.value.errcode == 40029
    with pytest.raises(UsageError):
        webauth.getuserinfo("x" * 513)


def test_emulator_refuses_bad_setup(emu: WeComEmulator, corp: Corp) -> None:
    with pytest.raises(UsageError):
        emu.issue_web_code(CORPID, userid="nobody")
    with pytest.raises(UsageError):
        emu.issue_web_code(CORPID, openid="o1", external_userid="wmUnknown")
    with pytest.raises(UsageError):
        emu.issue_web_code(CORPID)
