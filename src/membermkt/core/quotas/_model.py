"""Caps, windows, channel rules and send history: the vocabulary of quotas (pure)."""

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
