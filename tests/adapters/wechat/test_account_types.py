"""Service vs subscription accounts: the emulator refuses what a subscription account may not
do (48001 on mass/send and template messages, a second sendall on the same day 45028), the
client carries the account type and the channel rules that follow from it."""

from __future__ import annotations

import httpx
import pytest

from membermkt.channels.wechat import WeChatMassChannel, WeChatTemplateChannel
from membermkt.channels.wechat.api import oauth
from membermkt.core.accounts import AccountType
from membermkt.core.delivery import Delivery, SendOutcome
from membermkt.errors import PlatformError, UsageError

from .conftest import APPID, SECRET, make_client

TEXT = {"msgtype": "text", "text": {"content": "早安"}}
DAY = 86_400


@pytest.fixture
def subscription(emu):
    acct = emu.add_account(APPID, SECRET, account_type="subscription")
    acct.add_followers([f"o{i:05d}" for i in range(10)])
    acct.add_template("TPL")
    return acct


async def test_subscription_account_refusals(emu, clock, subscription, kind):
    """Rule oa.account_type: on a subscription account mass/send and template/send answer
    48001; mass/sendall succeeds once a Beijing day (to a tag or to all), then 45028 until
    the next day."""
    client = make_client(kind, emu, clock, [], account_type="subscription")

    async def run(result):
        return await result if kind == "async" else result

    assert client.account_type is AccountType.SUBSCRIPTION
    with pytest.raises(PlatformError) as e:
        await run(client.send_mass(["o00000", "o00001"], TEXT))
    assert e.value.errcode == 48001
    with pytest.raises(PlatformError) as e:
        await run(client.send_template("o00000", "TPL", {"first": {"value": "x"}}))
    assert e.value.errcode == 48001
    tag = await run(client.create_tag("vip"))
    await run(client.tag_users(tag.id, ["o00000", "o00001"]))
    await run(client.send_mass_to_tag(TEXT, tag_id=tag.id))
    with pytest.raises(PlatformError) as e:
        await run(
            client.send_mass_to_tag({"msgtype": "text", "text": {"content": "2"}}, tag_id=tag.id)
        )
    assert e.value.errcode == 45028
    with pytest.raises(PlatformError) as e:
        await run(client.send_mass_to_tag({"msgtype": "text", "text": {"content": "3"}}))
    assert e.value.errcode == 45028
    clock.advance(DAY)
    await run(client.send_mass_to_tag({"msgtype": "text", "text": {"content": "4"}}, tag_id=tag.id))


def test_service_account_is_unchanged(emu, clock, account):
    """A service account (the default) sends to openid lists, sends templates, and sends to
    a tag more than once a day."""
    account.add_template("TPL")
    client = make_client("sync", emu, clock, [])
    assert client.account_type is AccountType.SERVICE
    assert client.send_mass(["o00000", "o00001"], TEXT)
    assert client.send_template("o00000", "TPL", {"first": {"value": "x"}})
    tag = client.create_tag("vip")
    client.tag_users(tag.id, ["o00000", "o00001"])
    client.send_mass_to_tag(TEXT, tag_id=tag.id)
    client.send_mass_to_tag({"msgtype": "text", "text": {"content": "2"}}, tag_id=tag.id)


def test_channels_on_a_subscription_account_fail_permanently(emu, clock, subscription):
    """The platform's 48001 is a permanent failure for every delivery of the batch."""
    client = make_client("sync", emu, clock, [], account_type="subscription")

    def d(key: str, openid: str, channel: str, payload) -> Delivery:
        return Delivery(
            key=key,
            campaign_id="c1",
            member_id=f"m-{openid}",
            channel=channel,
            address=openid,
            variant="a",
            payload=payload,
        )

    mass = WeChatMassChannel(client).send(
        [d("k1", "o00001", "wechat.mass", TEXT), d("k2", "o00002", "wechat.mass", TEXT)]
    )
    assert {r.outcome for r in mass} == {SendOutcome.PERMANENT}
    tpl = {"template_id": "TPL", "data": {"first": {"value": "x"}}}
    (res,) = WeChatTemplateChannel(client).send([d("k3", "o00003", "wechat.template", tpl)])
    assert res.outcome is SendOutcome.PERMANENT
    assert emu.received(APPID, "o00001") == []
    assert client.channel_rules("wechat.template").unavailable
    assert client.channel_rules("wechat.custom").unavailable == ""


def test_account_type_is_checked(emu, clock):
    with pytest.raises(UsageError):
        emu.add_account("wxbad", "s", account_type="enterprise")
    with pytest.raises(UsageError):
        make_client("sync", emu, clock, [], account_type="enterprise")


def test_no_web_authorization_on_a_subscription_account(emu, clock, subscription):
    """Rule oa.account_type: web authorization is for verified service accounts only — the
    client refuses to build the URL, the emulator's authorize page and code exchange
    refuse a subscription account."""
    client = make_client("sync", emu, clock, [], account_type="subscription")
    with pytest.raises(UsageError, match="verified service accounts"):
        client.oauth_url("https://shop.example/cb", state="s")
    emu.browse_as(APPID, "o00001")
    url = oauth.authorize_url(APPID, "https://shop.example/cb", state="s")
    with httpx.Client(transport=emu.transport()) as http:
        page = http.get(url)
    assert (page.status_code, page.json()["errcode"]) == (400, 10005)
    code = emu.issue_code(APPID, "o00001")
    with pytest.raises(PlatformError) as e:
        client.exchange_code(code)
    assert e.value.errcode == 48001
