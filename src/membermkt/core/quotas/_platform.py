"""The platforms' own rules as data (ref §x.y per rule; pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Final

import attrs

from membermkt.core.quotas._model import Cap, ChannelRules, InteractionWindow, WindowTrigger

OA_MASS_MONTHLY: Final = Cap(
    limit=4,
    period="month",
    channels=frozenset({"wechat.mass"}),
    name="wechat mass 4/month",
    # ref §1.4: "Each user receives ≤ 4 mass messages per calendar month"
    source="wechat-platform.md §1.4, §5",
)

# #14: only what the platform itself counts opens the window — the follower's own messages
# (not staff-initiated ones, not WeCom conversations) and WeChat Pay payments (not imported
# Tmall/JD orders). Which appid a payment belongs to is not checked here (unconfirmed:
# the reference does not say whether a payment under another appid opens this one).
_NOT_THE_FOLLOWER: Final = {"direction": "out", "channel": "wecom"}
_WECHAT_PAY: Final = {"channel": "wechatpay"}

OA_CUSTOM_WINDOW: Final = InteractionWindow(
    # ref §1.6, "Current doc (service account)" column; the counts conflict across doc
    # versions, 45047 stays authoritative at send time.
    triggers=(
        WindowTrigger(
            event_type="message",
            within=dt.timedelta(hours=48),
            limit=5,
            exclude=_NOT_THE_FOLLOWER,
        ),
        WindowTrigger(event_type="menu_click", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(event_type="follow", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(event_type="scan", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(
            event_type="purchase",
            within=dt.timedelta(hours=48),
            limit=None,
            where=_WECHAT_PAY,
        ),
    ),
    channels=frozenset({"wechat.custom"}),
    name="customer-service window (current doc)",
)

OA_CUSTOM_WINDOW_2021: Final = InteractionWindow(
    # ref §1.6, "2021 rule (older doc)" column.
    triggers=(
        WindowTrigger(
            event_type="message",
            within=dt.timedelta(hours=48),
            limit=20,
            exclude=_NOT_THE_FOLLOWER,
        ),
        WindowTrigger(event_type="menu_click", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(event_type="follow", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(event_type="scan", within=dt.timedelta(minutes=1), limit=3),
        WindowTrigger(
            event_type="purchase",
            within=dt.timedelta(hours=48),
            limit=20,
            where=_WECHAT_PAY,
        ),
    ),
    channels=frozenset({"wechat.custom"}),
    name="customer-service window (2021 doc)",
)

_WECOM_MASS = frozenset({"wecom.mass"})
WECOM_MASS_DAYS_IN_MONTH: Final = Cap(
    limit=None,
    period="month",
    channels=_WECOM_MASS,
    name="wecom mass days-in-month/month",
    # ref §3.4 current doc (path/92135): monthly cap = number of days in the month
    source="wechat-platform.md §3.4, §5",
)
WECOM_MASS_WEEKLY: Final = Cap(
    limit=7,
    period="week",
    channels=_WECOM_MASS,
    name="wecom mass 7/week",
    # ref §3.4: admin-selectable alternative "7 per week"
    source="wechat-platform.md §3.4",
)
WECOM_MASS_DAILY: Final = Cap(
    limit=1,
    period="day",
    channels=_WECOM_MASS,
    name="wecom mass 1/day",
    # ref §3.4: admin-selectable "1 per day" (also the JS-SDK doc's default)
    source="wechat-platform.md §3.4",
)
WECOM_MASS_LEGACY_MONTHLY: Final = Cap(
    limit=4,
    period="month",
    channels=_WECOM_MASS,
    name="wecom mass 4/month (older docs)",
    # ref §3.4: older docs (wechatpy, 2020 doc): 4 per natural month (conflict)
    source="wechat-platform.md §3.4",
)

# rule: wecom.group_cap -- a customer group has its own receive cap (wecom.group sends)
# ref §3.4: the receive cap is "per customer / customer group" — a customer group counts its
# own mass messages (chat_type=group), apart from its members' customer mass messages.
_WECOM_GROUP = frozenset({"wecom.group"})
WECOM_GROUP_DAYS_IN_MONTH: Final = attrs.evolve(
    WECOM_MASS_DAYS_IN_MONTH, channels=_WECOM_GROUP, name="wecom group days-in-month/month"
)
WECOM_GROUP_WEEKLY: Final = attrs.evolve(
    WECOM_MASS_WEEKLY, channels=_WECOM_GROUP, name="wecom group 7/week"
)
WECOM_GROUP_DAILY: Final = attrs.evolve(
    WECOM_MASS_DAILY, channels=_WECOM_GROUP, name="wecom group 1/day"
)
WECOM_GROUP_LEGACY_MONTHLY: Final = attrs.evolve(
    WECOM_MASS_LEGACY_MONTHLY, channels=_WECOM_GROUP, name="wecom group 4/month (older docs)"
)

DEFAULT_RULES: Final[Mapping[str, ChannelRules]] = {
    "wechat.mass": ChannelRules(
        channel="wechat.mass",
        caps=(OA_MASS_MONTHLY,),
        # ref §1.4: mass/send touser min 2, max 10,000 openids
        min_batch_size=2,
        max_batch_size=10_000,
        requires="subscribed",
        personalisable=False,
        required_content=("msgtype",),
        # ref §1.4: msgtype values of mass send
        msgtypes=frozenset({"mpnews", "text", "voice", "image", "images", "mpvideo", "wxcard"}),
        source="wechat-platform.md §1.4, §5",
    ),
    "wechat.template": ChannelRules(
        channel="wechat.template",
        # ref §1.5/§1.10: 43004 receiver must follow
        requires="subscribed",
        required_content=("template_id", "data"),
        source="wechat-platform.md §1.5",
    ),
    "wechat.custom": ChannelRules(
        channel="wechat.custom",
        window=OA_CUSTOM_WINDOW,
        # ref §1.10: 45015 outside the window or unsubscribed
        requires="subscribed",
        required_content=("msgtype",),
        # ref §1.6: customer-service msgtypes
        msgtypes=frozenset(
            {
                "text",
                "image",
                "voice",
                "video",
                "music",
                "news",
                "mpnews",
                "msgmenu",
                "wxcard",
                "miniprogrampage",
            }
        ),
        source="wechat-platform.md §1.6",
    ),
    "wecom.mass": ChannelRules(
        channel="wecom.mass",
        caps=(WECOM_MASS_DAYS_IN_MONTH,),
        # ref §3.4: external_userid ≤ 10,000 per add_msg_template
        max_batch_size=10_000,
        requires="wecom_contact",
        personalisable=False,
        # ref §3.4: text.content ≤ 4000 bytes; attachments ≤ 9
        max_bytes={"text.content": 4000},
        max_items={"attachments": 9},
        # ref §3.4: attachments msgtype ∈ image, link, miniprogram, video, file
        attachment_msgtypes=frozenset({"image", "link", "miniprogram", "video", "file"}),
        needs_body=True,
        source="wechat-platform.md §3.4, §5",
    ),
    "wecom.group": ChannelRules(
        channel="wecom.group",
        caps=(WECOM_GROUP_DAYS_IN_MONTH,),
        # ref §3.4: chat_id_list ≤ 2000 groups per add_msg_template (chat_type=group)
        max_batch_size=2000,
        personalisable=False,
        max_bytes={"text.content": 4000},
        max_items={"attachments": 9},
        attachment_msgtypes=frozenset({"image", "link", "miniprogram", "video", "file"}),
        needs_body=True,
        source="wechat-platform.md §3.4, §5",
    ),
}
"""Rules of the built-in channels, current documents as defaults."""


# --------------------------------------------------------------------------- dispatch shape
