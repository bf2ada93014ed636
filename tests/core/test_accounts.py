"""Account types in the planner: a subscription account's unavailable channels are reported
by validate() and skip every audience member in plan(); its mass rules cap each member at one
a day; a service account keeps the default rules."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt import Member
from membermkt.core.accounts import (
    SUBSCRIPTION_MASS_DAILY,
    AccountType,
    account_rules,
    channel_rules,
)
from membermkt.core.campaigns import Campaign, SkipReason, Variant, plan, validate
from membermkt.core.delivery import Delivery
from membermkt.core.quotas import DEFAULT_RULES, OA_MASS_MONTHLY, PastSend
from membermkt.errors import UsageError
from membermkt.segments import TRUE

AS_OF = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)
TEXT = {"msgtype": "text", "text": {"content": "hi"}}
TPL = {"template_id": "TPL", "data": {"first": "x"}}


def campaign(channel: str, content, **kw) -> Campaign:
    return Campaign(
        id="c1",
        audience=TRUE,
        channel=channel,
        variants=[Variant(name="a", content=content)],
        address_namespace="wx1",
        **kw,
    )


def members(n: int) -> list[Member]:
    from membermkt.core.identity import Identity

    return [Member(f"m{i}", identities=(Identity.openid("wx1", f"o{i}"),)) for i in range(n)]


def test_service_account_keeps_the_default_rules():
    assert account_rules() is DEFAULT_RULES
    assert account_rules("service")["wechat.mass"].caps == (OA_MASS_MONTHLY,)
    c = campaign("wechat.template", TPL)
    assert c.account_type is AccountType.SERVICE
    assert validate(c) == ()
    assert all(isinstance(x, Delivery) for x in plan(c, members(3), None, AS_OF))


def test_rule_oa_account_type_in_the_planner():
    """Rule oa.account_type: on a subscription account wechat.mass and wechat.template are
    unavailable — validate() says why, plan() skips every audience member with
    platform_quota; wechat.custom is unchanged."""
    for channel, content in (("wechat.template", TPL), ("wechat.mass", TEXT)):
        c = campaign(channel, content, account_type="subscription")
        (problem,) = [p for p in validate(c) if p.path == "channel"]
        assert "unavailable" in problem.message
        assert "service accounts only" in problem.message
        items = list(plan(c, members(3), None, AS_OF))
        assert [(s.member_id, s.reason) for s in items] == [
            (f"m{i}", SkipReason.PLATFORM_QUOTA) for i in range(3)
        ]
    custom = campaign("wechat.custom", TEXT, account_type="subscription")
    assert custom.platform_rules == DEFAULT_RULES["wechat.custom"]


def test_subscription_mass_cap_is_one_a_day():
    rules = channel_rules("wechat.mass", "subscription")
    assert rules.caps == (SUBSCRIPTION_MASS_DAILY,)
    sent = [PastSend(member_id="m0", channel="wechat.mass", at=AS_OF - dt.timedelta(hours=1))]
    assert not SUBSCRIPTION_MASS_DAILY.allows(sent, AS_OF, "wechat.mass")
    assert SUBSCRIPTION_MASS_DAILY.allows(sent, AS_OF + dt.timedelta(days=1), "wechat.mass")


def test_unknown_account_type_is_refused():
    with pytest.raises(UsageError):
        account_rules("enterprise")
    with pytest.raises(UsageError):
        campaign("wechat.mass", TEXT, account_type="enterprise")
    assert channel_rules("sms.acme", "subscription").channel == "sms.acme"
