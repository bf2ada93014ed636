"""Validation of WeCom bodies and of a plan against the day's API budget (#12)."""

from __future__ import annotations

import pytest

from membermkt.channels.wechat.client import DEFAULT_BUDGETS as OA_BUDGETS
from membermkt.channels.wecom.api.mass import ATTACHMENT_TYPES
from membermkt.core.campaigns import (
    Campaign,
    PlanSummary,
    Variant,
    check_budget,
    plan_calls,
    validate,
)
from membermkt.core.quotas import DEFAULT_RULES
from membermkt.errors import UsageError
from membermkt.segments import TRUE

MASS = DEFAULT_RULES["wechat.mass"]
WECOM = DEFAULT_RULES["wecom.mass"]
MASS_PER_DAY = next(b.per_day for b in OA_BUDGETS if b.api == "mass")


def wecom(content: dict[str, object]) -> Campaign:
    return Campaign(
        id="wc",
        audience=TRUE,
        channel="wecom.mass",
        variants=(Variant(name="A", content=content),),
        address_kind="external_userid",
    )


def summary(**deliveries: int) -> PlanSummary:
    return PlanSummary(
        campaign_id="c", audience=sum(deliveries.values()), deliveries=deliveries, skipped={}
    )


def messages(content: dict[str, object]) -> list[str]:
    return [str(p) for p in validate(wecom(content))]


@pytest.mark.parametrize(
    "content",
    [{}, {"text": ""}, {"text": "   "}, {"text": {"content": ""}}, {"attachments": []}],
)
def test_an_empty_wecom_message_is_refused(content: dict[str, object]) -> None:
    assert any("non-empty text or at least one attachment" in m for m in messages(content))


def test_a_wecom_message_with_text_or_an_attachment_passes() -> None:
    assert validate(wecom({"text": "春季上新"})) == ()
    assert validate(wecom({"text": {"content": "hi {{ city }}"}})) != ()  # not personalisable
    image = {"msgtype": "image", "image": {"media_id": "M"}}
    assert validate(wecom({"attachments": [image]})) == ()
    link = {"msgtype": "link", "link": {"title": "t", "url": "https://e.x"}}
    assert validate(wecom({"text": "看看", "attachments": [image, link]})) == ()


def test_the_allowed_attachment_msgtypes_match_the_client() -> None:
    """The core rule and the client's check agree on the reference's set (§3.4)."""
    assert WECOM.attachment_msgtypes == frozenset(ATTACHMENT_TYPES)
    assert WECOM.attachment_msgtypes == {"image", "link", "miniprogram", "video", "file"}


@pytest.mark.parametrize("mt", ["text", "voice", "news", "mpnews", "Image", "music"])
def test_an_unknown_attachment_msgtype_is_refused(mt: str) -> None:
    content = {"text": "x", "attachments": [{"msgtype": mt, mt: {"media_id": "M"}}]}
    msgs = messages(content)
    assert any(f"attachment msgtype {mt!r}" in m and "attachments[0].msgtype" in m for m in msgs)


def test_an_attachment_without_msgtype_or_object_is_refused() -> None:
    msgs = messages({"text": "x", "attachments": [{"image": {"media_id": "M"}}]})
    assert any("needs a msgtype" in m for m in msgs)
    msgs = messages({"text": "x", "attachments": [{"msgtype": "video"}]})
    assert any("attachments[0].video" in m and "content object" in m for m in msgs)
    msgs = messages({"text": "x", "attachments": {"msgtype": "video"}})
    assert any("must be a list" in m for m in msgs)


def test_plain_wecom_text_over_4000_bytes_is_refused() -> None:
    assert any("4002 bytes" in m for m in messages({"text": "长" * 1334}))
    assert validate(wecom({"text": "长" * 1333})) == ()


def test_plan_calls_uses_balanced_batches_per_variant() -> None:
    assert plan_calls(summary(A=10_001), MASS) == 2
    assert plan_calls(summary(A=10_000, B=1), MASS) == 2
    assert plan_calls(summary(A=5_000), MASS, max_batch_size=1_000) == 5
    # the platform's batch limit wins over a larger declared one
    assert plan_calls(summary(A=20_000), MASS, max_batch_size=50_000) == 2
    assert plan_calls(summary(A=7), DEFAULT_RULES["wechat.template"]) == 7
    assert plan_calls(summary(), MASS) == 0
    with pytest.raises(UsageError, match="max_batch_size"):
        plan_calls(summary(A=1), MASS, max_batch_size=-1)


def test_a_plan_over_the_days_budget_is_reported() -> None:
    # 100 mass calls a day (client DEFAULT_BUDGETS, ref §5) x 10,000 per call
    assert MASS_PER_DAY == 100
    fits = summary(A=1_000_000)
    assert check_budget(fits, MASS, calls_per_day=MASS_PER_DAY) == ()
    over = summary(A=1_000_001)
    (problem,) = check_budget(over, MASS, calls_per_day=MASS_PER_DAY)
    assert problem.path == "budget"
    assert "101 wechat.mass calls" in problem.message
    assert "of the daily budget of 100" in problem.message
    # calls already made today count
    (problem,) = check_budget(summary(A=30_000), MASS, calls_per_day=100, used_today=98)
    assert "3 wechat.mass calls, 2 of the daily budget" in problem.message
    assert check_budget(summary(A=30_000), MASS, calls_per_day=100, used_today=97) == ()
    # a small declared batch size multiplies the calls
    assert check_budget(summary(A=10_000), MASS, calls_per_day=100, max_batch_size=100) == ()
    assert check_budget(summary(A=10_001), MASS, calls_per_day=100, max_batch_size=100) != ()
    # no known budget: nothing to report
    assert check_budget(summary(A=10**9), MASS, calls_per_day=None) == ()


def test_check_budget_refuses_bad_arguments() -> None:
    with pytest.raises(UsageError, match="used_today"):
        check_budget(summary(A=1), MASS, calls_per_day=1, used_today=-1)
    with pytest.raises(UsageError, match="calls_per_day"):
        check_budget(summary(A=1), MASS, calls_per_day=0)
