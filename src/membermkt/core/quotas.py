"""Platform quotas and frequency caps as data, so a plan never asks the platform for what it
will refuse (pure).

Every number below comes from ``/work/shared/reference/wechat-platform.md`` (cited per rule as
"ref §x.y"). Tencent changes quotas over time, and the reference records conflicts between
document versions; each such rule is a value you can replace (``ChannelRules`` is frozen:
``attrs.evolve(rules, caps=...)``), with the current document as the default and the older
rule offered as a named constant.

Vocabulary:

* :class:`Cap` — at most ``limit`` messages received per member per period (a calendar
  day/week/month in a time zone, or a rolling ``timedelta``), counted over some channels.
  Campaign frequency caps and platform receive caps are the same thing.
* :class:`InteractionWindow` — the customer-service window: sending is allowed only within a
  window opened by the member's own action, with a message budget per trigger.
* :class:`ChannelRules` — everything the platform enforces for one channel: caps, window,
  batch limits, content limits, who can receive.
* :class:`PastSend` — one message a member received (or may have: unknown counts too), the
  history that caps are evaluated against.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_TZ",
    "OA_CUSTOM_WINDOW",
    "OA_CUSTOM_WINDOW_2021",
    "OA_MASS_MONTHLY",
    "WECOM_GROUP_DAILY",
    "WECOM_GROUP_DAYS_IN_MONTH",
    "WECOM_GROUP_LEGACY_MONTHLY",
    "WECOM_GROUP_WEEKLY",
    "WECOM_MASS_DAILY",
    "WECOM_MASS_DAYS_IN_MONTH",
    "WECOM_MASS_LEGACY_MONTHLY",
    "WECOM_MASS_WEEKLY",
    "Cap",
    "ChannelRules",
    "HistoryLike",
    "InteractionWindow",
    "PastSend",
    "WindowTrigger",
    "balanced_batch",
    "balanced_batches",
    "history_lookup",
    "next_daily_reset",
    "zone",
]

DEFAULT_TZ: Final = "Asia/Shanghai"
"""Calendar periods (the platforms' "natural month/day") are counted in China time."""

_PERIODS = ("day", "week", "month")


def zone(name: str) -> dt.tzinfo:
    """The ``zoneinfo`` time zone ``name``.

    Raises:
        UsageError: for an unknown zone name.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(
            f"unknown time zone {name!r} (use an IANA name such as 'Asia/Shanghai')"
        ) from exc


def _aware(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise UsageError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


@attrs.frozen(slots=True, kw_only=True)
class PastSend:
    """A message a member received (or may have received) at ``at`` through ``channel``.

    Attributes:
        member_id: the member.
        channel: the channel name.
        at: when it was sent (timezone-aware).
        campaign_id: the campaign, if any (documentation only).
    """

    member_id: str
    channel: str
    at: dt.datetime = attrs.field()
    campaign_id: str = ""

    @at.validator
    def _check_at(self, attribute: object, value: Any) -> None:
        _aware(value, "PastSend.at")


HistoryLike = Mapping[str, Sequence[PastSend]] | Callable[[str], Iterable[PastSend]] | None
"""Past sends per member: a mapping member id → sends, a function, or ``None`` (no history)."""


def history_lookup(history: HistoryLike) -> Callable[[str], Sequence[PastSend]]:
    """Normalise a :data:`HistoryLike` into ``member_id -> sends``.

    Raises:
        UsageError: for anything else.
    """
    if history is None:
        return lambda member_id: ()
    if isinstance(history, Mapping):
        h = history
        return lambda member_id: h.get(member_id, ())
    if callable(history):
        f = history
        return lambda member_id: tuple(f(member_id))
    raise UsageError(f"history must be a mapping, a function or None, got {history!r}")


def _check_period(instance: Cap, attribute: object, value: Any) -> None:
    if isinstance(value, dt.timedelta):
        if value <= dt.timedelta(0):
            raise UsageError(f"Cap period must be positive, got {value!r}")
        return
    if value not in _PERIODS:
        raise UsageError(f"Cap period must be 'day', 'week', 'month' or a timedelta, got {value!r}")


def _strset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _to_channels(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset([value])
    return frozenset(value)


@attrs.frozen(slots=True, kw_only=True)
class Cap:
    """At most ``limit`` messages per member per period.

    Args:
        limit: the most messages per period; ``None`` means "the number of days in the
            calendar month" (WeCom's current customer mass rule, ref §3.4).
        period: ``"day"``, ``"week"`` (Monday first), ``"month"`` — calendar periods in
            ``tz`` — or a ``timedelta`` for a rolling window.
        channels: the channels whose sends count; ``None`` means the campaign's own channel,
            ``{"*"}`` every channel.
        tz: the time zone of calendar periods.
        name: a label used in skip details and reports.
        source: where the number comes from (reference section), for documentation.

    Raises:
        UsageError: for a negative limit, an unknown period or time zone.
    """

    limit: int | None = attrs.field()
    period: str | dt.timedelta = attrs.field(validator=_check_period)
    channels: frozenset[str] | None = attrs.field(default=None, converter=_to_channels)
    tz: str = DEFAULT_TZ
    name: str = ""
    source: str = ""

    @limit.validator
    def _check_limit(self, attribute: object, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"Cap limit must be an int or None, got {value!r}")
        if value is not None and value < 0:
            raise UsageError(f"Cap limit must be >= 0, got {value}")

    def __attrs_post_init__(self) -> None:
        zone(self.tz)
        if self.limit is None and self.period != "month":
            raise UsageError("Cap(limit=None) (days in the month) needs period='month'")

    @property
    def label(self) -> str:
        """``name`` or a generated description such as ``"4/month"``."""
        if self.name:
            return self.name
        per = self.period if isinstance(self.period, str) else f"{self.period}"
        lim = "days-in-month" if self.limit is None else str(self.limit)
        return f"{lim}/{per}"

    def counts(self, channel: str, campaign_channel: str) -> bool:
        """Whether a send on ``channel`` counts against this cap for a campaign on
        ``campaign_channel``."""
        scope = self.channels
        if scope is None:
            return channel == campaign_channel
        return "*" in scope or channel in scope

    def window(self, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The counting window ``[start, end)`` for a send at ``at``.

        Calendar periods give the period containing ``at``; a rolling period ``d`` gives
        ``(at - d, at + d)`` — every rolling window containing ``at`` lies inside it, so
        counting there is safe whatever order campaigns are planned in.
        """
        _aware(at, "at")
        if isinstance(self.period, dt.timedelta):
            return at - self.period, at + self.period
        local = at.astimezone(zone(self.tz))
        day = local.date()
        if self.period == "day":
            start = day
            end = day + dt.timedelta(days=1)
        elif self.period == "week":
            start = day - dt.timedelta(days=day.weekday())
            end = start + dt.timedelta(days=7)
        else:
            start = day.replace(day=1)
            end = (start + dt.timedelta(days=32)).replace(day=1)
        tz = zone(self.tz)
        return (
            dt.datetime.combine(start, dt.time(), tzinfo=tz),
            dt.datetime.combine(end, dt.time(), tzinfo=tz),
        )

    def limit_at(self, at: dt.datetime) -> int:
        """The limit for the period containing ``at``."""
        if self.limit is not None:
            return self.limit
        local = at.astimezone(zone(self.tz))
        return calendar.monthrange(local.year, local.month)[1]

    def used(self, sends: Iterable[PastSend], at: dt.datetime, campaign_channel: str) -> int:
        """How many of ``sends`` count against the cap for a send at ``at``."""
        if isinstance(sends, Sequence) and not sends:
            return 0
        start, end = self.window(at)
        rolling = isinstance(self.period, dt.timedelta)
        n = 0
        for s in sends:
            if not self.counts(s.channel, campaign_channel):
                continue
            if (start < s.at < end) if rolling else (start <= s.at < end):
                n += 1
        return n

    def allows(self, sends: Iterable[PastSend], at: dt.datetime, campaign_channel: str) -> bool:
        """Whether one more send at ``at`` stays within the cap."""
        return self.used(sends, at, campaign_channel) < self.limit_at(at)


@attrs.frozen(slots=True, kw_only=True)
class WindowTrigger:
    """A member action that opens a sending window.

    Attributes:
        event_type: the :class:`~membermkt.core.events.Event` type (``"message"``, ...).
        within: how long the window stays open after the action.
        limit: the most messages within it (``None``: unlimited).
        where: properties the event must have (e.g. ``{"channel": "wechatpay"}``: only
            WeChat Pay payments open the window, not imported marketplace orders).
        exclude: properties any of which disqualifies the event (e.g.
            ``{"direction": "out"}``: staff-initiated messages never open it).
    """

    event_type: str
    within: dt.timedelta
    limit: int | None
    where: Mapping[str, object] = attrs.field(factory=dict)
    exclude: Mapping[str, object] = attrs.field(factory=dict)

    def counts(self, event: Event) -> bool:
        """Whether ``event`` is an action of this trigger (type and properties)."""
        if event.type != self.event_type:
            return False
        props = event.properties
        if any(props.get(k) != v for k, v in self.where.items()):
            return False
        return not any(props.get(k) == v for k, v in self.exclude.items())


@attrs.frozen(slots=True, kw_only=True)
class InteractionWindow:
    """The customer-service window (ref §1.6): a send is allowed when some trigger event in
    ``(at - within, at]`` still has budget (sends on ``channels`` since the trigger).

    Attributes:
        triggers: the actions that open a window, with their budgets.
        channels: the channels whose sends spend the budget.
        name: label for reports.
    """

    triggers: tuple[WindowTrigger, ...]
    channels: frozenset[str] = attrs.field(converter=_strset)
    name: str = "interaction window"

    def check(
        self, events: Iterable[Event], sends: Sequence[PastSend], at: dt.datetime
    ) -> str | None:
        """``None`` if one more send at ``at`` is allowed, else ``"outside_window"`` (no
        open window) or ``"window_quota"`` (windows open but their budgets are spent)."""
        by_type = {t.event_type: t for t in self.triggers}
        any_open = False
        for ev in events:
            trig = by_type.get(ev.type)
            if trig is None or not trig.counts(ev) or not (at - trig.within < ev.at <= at):
                continue
            any_open = True
            if trig.limit is None:
                return None
            used = sum(1 for s in sends if s.channel in self.channels and ev.at <= s.at <= at)
            if used < trig.limit:
                return None
        return "window_quota" if any_open else "outside_window"


@attrs.frozen(slots=True, kw_only=True)
class ChannelRules:
    """What a platform enforces for one channel, as data.

    Attributes:
        channel: the channel name.
        caps: per-member receive caps.
        window: the interaction window, if sends need one.
        min_batch_size / max_batch_size: recipients per platform call (``None``: no limit).
        requires: ``"subscribed"`` (must follow the official account), ``"wecom_contact"``
            (must be a WeCom contact) or ``None``.
        personalisable: whether each recipient can get different content (``False`` for
            mass sends: one content per call).
        required_content: payload keys that must be present.
        msgtypes: allowed ``msgtype`` values (empty: not checked).
        max_bytes: payload path (dotted) → most UTF-8 bytes.
        max_items: payload path → most list items.
        attachment_msgtypes: allowed ``msgtype`` values of the items of ``attachments``
            (empty: not checked).
        needs_body: content must carry ``text`` or at least one attachment (WeCom).
        unavailable: why the platform refuses this channel outright on this account (e.g.
            template messages on a subscription account, :mod:`membermkt.core.accounts`);
            empty when it is available.
        source: the reference sections.
    """

    channel: str
    caps: tuple[Cap, ...] = ()
    window: InteractionWindow | None = None
    min_batch_size: int = 1
    max_batch_size: int | None = None
    requires: str | None = None
    personalisable: bool = True
    required_content: tuple[str, ...] = ()
    msgtypes: frozenset[str] = attrs.field(default=frozenset(), converter=_strset)
    max_bytes: Mapping[str, int] = attrs.field(factory=dict)
    max_items: Mapping[str, int] = attrs.field(factory=dict)
    attachment_msgtypes: frozenset[str] = attrs.field(default=frozenset(), converter=_strset)
    needs_body: bool = False
    unavailable: str = ""
    source: str = ""

    def batches(self, n: int, max_batch_size: int | None = None) -> int:
        """Platform calls needed for ``n`` recipients (one per recipient when unbatched)."""
        size = max_batch_size or self.max_batch_size or 1
        return math.ceil(n / size) if n else 0


# --------------------------------------------------------------------------- the defaults

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


def balanced_batch(remaining: int, max_batch_size: int) -> int:
    """The size of the next batch so that ``remaining`` recipients split evenly into the
    fewest batches of at most ``max_batch_size`` (10,001 with 10,000 → 5,001 then 5,000:
    never a lone remainder).

    Raises:
        UsageError: for a negative ``remaining`` or a ``max_batch_size`` below 1.
    """
    if remaining < 0 or max_batch_size < 1:
        raise UsageError(
            f"balanced_batch needs remaining >= 0 and max_batch_size >= 1, got "
            f"{remaining}, {max_batch_size}"
        )
    if remaining == 0:
        return 0
    k = math.ceil(remaining / max_batch_size)
    return math.ceil(remaining / k)


def balanced_batches(n: int, max_batch_size: int) -> list[int]:
    """Every batch size :func:`balanced_batch` yields for ``n`` recipients, in order.

    Raises:
        UsageError: as :func:`balanced_batch`.
    """
    out: list[int] = []
    while n > 0:
        size = balanced_batch(n, max_batch_size)
        out.append(size)
        n -= size
    return out


def next_daily_reset(now: dt.datetime, tz: str = DEFAULT_TZ) -> dt.datetime:
    """The next midnight in ``tz`` after ``now`` (UTC), when daily API quotas reset (ref
    §4 45009: "day-level until the next natural day"; natural days are China time).

    Raises:
        UsageError: for a naive ``now`` or an unknown zone.
    """
    when = _aware(now, "now")
    local = when.astimezone(zone(tz))
    tomorrow = local.date() + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(0), tzinfo=zone(tz))
    return midnight.astimezone(dt.UTC)
