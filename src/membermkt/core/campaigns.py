"""Campaigns: who gets which message, when, and who is skipped and why (pure).

A :class:`Campaign` names an audience (a segment), a channel, content per A/B variant (with
safe personalisation, :mod:`membermkt.core.templating`), an optional holdout, frequency caps,
quiet hours and a schedule. :func:`plan` turns it into a stream of :class:`Delivery` and
:class:`Skip` values — one per audience member, never both — without I/O and in memory
independent of the audience size; :func:`validate` finds what the platform would refuse
before anything runs.

Order of decisions per audience member (the first that applies wins)::

    schedule → consent → subscription/contact → address → quiet hours → frequency caps →
    platform quota / interaction window → holdout → variant → rendering → delivery

Holdout and variant come *after* eligibility, so the holdout group is comparable with the
members who were sent to (lift is measured among eligible members). Both are deterministic
keyed hashes of the member id (:func:`membermkt.core.segments.sample_bucket`) with
campaign-specific salts: re-planning gives the same split.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.delivery import ChannelCapabilities, Delivery
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.quotas import (
    DEFAULT_RULES,
    DEFAULT_TZ,
    Cap,
    ChannelRules,
    HistoryLike,
    history_lookup,
    zone,
)
from membermkt.core.segments import BUCKETS, Segment, sample_bucket
from membermkt.core.templating import (
    MissingField,
    Template,
    compile_payload,
    render_payload,
    template_fields,
)
from membermkt.errors import UsageError

__all__ = [
    "HOLDOUT",
    "Campaign",
    "PlanItem",
    "PlanSummary",
    "PlanTally",
    "Problem",
    "QuietHours",
    "Schedule",
    "Skip",
    "SkipReason",
    "Variant",
    "assign",
    "check",
    "delivery_key",
    "plan",
    "summarize",
    "validate",
]

HOLDOUT: Final = "holdout"
"""The pseudo-variant name of holdout members (not a valid variant name)."""


class SkipReason(enum.StrEnum):
    """Why an audience member gets nothing from a campaign."""

    OUTSIDE_SCHEDULE = "outside_schedule"
    NO_CONSENT = "no_consent"
    UNSUBSCRIBED = "unsubscribed"
    NO_ADDRESS = "no_address"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    PLATFORM_QUOTA = "platform_quota"
    OUTSIDE_WINDOW = "outside_window"
    HOLDOUT = "holdout"
    MISSING_FIELD = "missing_field"
    CONTENT_INVALID = "content_invalid"


def _name(what: str) -> Any:
    def check(instance: object, attribute: object, value: Any) -> None:
        if not isinstance(value, str) or not value or len(value) > 64:
            raise UsageError(f"{what} must be a non-empty str of ≤ 64 chars, got {value!r}")

    return check


def _check_weight(instance: object, attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UsageError(f"Variant.weight must be a positive number, got {value!r}")


def _to_content(value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageError(f"Variant.content must be a mapping, got {type(value).__name__}")
    return value


@attrs.frozen(slots=True, kw_only=True)
class Variant:
    """One version of the message.

    Args:
        name: the variant name (``"A"``, ``"B"``, ...; not ``"holdout"``).
        content: the channel payload, JSON-able; every string is a
            :class:`~membermkt.core.templating.Template` (``{{ field }}`` placeholders).
        weight: relative share of the non-holdout audience.

    Raises:
        UsageError: for a bad name, weight or template.
    """

    name: str = attrs.field(validator=_name("Variant.name"))
    content: Mapping[str, Any] = attrs.field(converter=_to_content, eq=False)
    weight: float = attrs.field(default=1.0, validator=_check_weight)
    _compiled: dict[str, Any] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.name == HOLDOUT:
            raise UsageError(f"variant name {HOLDOUT!r} is reserved for the holdout group")
        object.__setattr__(self, "_compiled", compile_payload(self.content))

    @property
    def fields(self) -> tuple[str, ...]:
        """Member fields used by the content templates."""
        return template_fields(self._compiled)

    def render(self, member: Member) -> dict[str, Any]:
        """The payload for ``member``.

        Raises:
            MissingField: when a required template field is missing.
        """
        rendered: dict[str, Any] = render_payload(self._compiled, member)
        return rendered


def _check_time(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dt.time) or value.tzinfo is not None:
        raise UsageError(f"QuietHours.{attribute.name} must be a naive datetime.time")


@attrs.frozen(slots=True, kw_only=True)
class QuietHours:
    """No sends between ``start`` and ``end`` local time (``start > end`` wraps midnight).

    Args:
        start: local time the quiet period begins (inclusive).
        end: local time it ends (exclusive).
        tz: the campaign's time zone (IANA name), default Asia/Shanghai.
        member_tz_attribute: a custom attribute holding a member's own IANA zone; members
            without a valid one use ``tz``. ``None`` disables per-member zones.

    Raises:
        UsageError: for an empty period or an unknown zone.
    """

    start: dt.time = attrs.field(validator=_check_time)
    end: dt.time = attrs.field(validator=_check_time)
    tz: str = DEFAULT_TZ
    member_tz_attribute: str | None = "timezone"

    def __attrs_post_init__(self) -> None:
        if self.start == self.end:
            raise UsageError("QuietHours start and end are equal; omit quiet hours instead")
        zone(self.tz)

    def contains(self, at: dt.datetime, member: Member | None = None) -> bool:
        """Whether ``at`` falls in the quiet period for ``member``."""
        tz = zone(self.tz)
        if member is not None and self.member_tz_attribute:
            name = member.attributes.get(self.member_tz_attribute)
            if isinstance(name, str):
                try:
                    tz = zone(name)
                except UsageError:
                    tz = zone(self.tz)
        t = at.astimezone(tz).time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def _opt_aware(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, dt.datetime) or value.utcoffset() is None):
        raise UsageError(f"Schedule.{attribute.name} must be a timezone-aware datetime or None")


@attrs.frozen(slots=True, kw_only=True)
class Schedule:
    """When the campaign may send: ``start <= at < end`` (either bound optional)."""

    start: dt.datetime | None = attrs.field(default=None, validator=_opt_aware)
    end: dt.datetime | None = attrs.field(default=None, validator=_opt_aware)

    def __attrs_post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("Schedule.end must be after Schedule.start")

    def contains(self, at: dt.datetime) -> bool:
        """Whether ``at`` is within the schedule."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


def _to_variants(value: Iterable[Variant]) -> tuple[Variant, ...]:
    out = tuple(value)
    if not out:
        raise UsageError("a campaign needs at least one Variant")
    names = [v.name for v in out]
    for v in out:
        if not isinstance(v, Variant):
            raise UsageError(f"Campaign.variants must hold Variant values, got {v!r}")
    if len(set(names)) != len(names):
        raise UsageError(f"variant names must be unique, got {names}")
    return out


def _check_holdout(instance: object, attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise UsageError(f"Campaign.holdout must be a fraction in [0, 1), got {value!r}")


def _to_caps(value: Iterable[Cap]) -> tuple[Cap, ...]:
    out = tuple(value)
    for c in out:
        if not isinstance(c, Cap):
            raise UsageError(f"Campaign.caps must hold Cap values, got {c!r}")
    return out


@attrs.frozen(slots=True, kw_only=True)
class Campaign:
    """Reach the right members with the right message, within the rules.

    Args:
        id: the campaign id (also the default hashing salt and part of idempotency keys).
        audience: the :class:`~membermkt.core.segments.Segment` to reach.
        channel: the channel name (``"wechat.mass"``, ``"wechat.template"``, ...).
        variants: one or more :class:`Variant` (A/B test when several).
        holdout: fraction of eligible members held out (sent nothing, measured for lift).
        caps: frequency caps per member (:class:`~membermkt.core.quotas.Cap`; ``channels=None``
            means this campaign's channel).
        quiet_hours: a :class:`QuietHours`, if any.
        schedule: a :class:`Schedule`, if any.
        address_kind / address_namespace: the identity used as address (``"openid"`` and the
            appid; ``"external_userid"`` and the corpid).
        rules: the platform rules; default: ``DEFAULT_RULES[channel]`` if the channel is
            built in, else no platform rules.
        salt: hashing salt for holdout and variants (default: ``id``).

    Raises:
        UsageError: for any invalid field.
    """

    id: str = attrs.field(validator=_name("Campaign.id"))
    audience: Segment = attrs.field()
    channel: str = attrs.field(validator=_name("Campaign.channel"))
    variants: tuple[Variant, ...] = attrs.field(converter=_to_variants)
    holdout: float = attrs.field(default=0.0, validator=_check_holdout)
    caps: tuple[Cap, ...] = attrs.field(default=(), converter=_to_caps)
    quiet_hours: QuietHours | None = None
    schedule: Schedule | None = None
    address_kind: str = "openid"
    address_namespace: str = ""
    rules: ChannelRules | None = None
    salt: str = ""

    @audience.validator
    def _check_audience(self, attribute: object, value: Any) -> None:
        if not isinstance(value, Segment):
            raise UsageError(f"Campaign.audience must be a Segment, got {value!r}")

    @property
    def platform_rules(self) -> ChannelRules:
        """The rules in force (explicit ``rules`` or the built-in default for the channel)."""
        if self.rules is not None:
            return self.rules
        return DEFAULT_RULES.get(self.channel, ChannelRules(channel=self.channel))

    @property
    def hash_salt(self) -> str:
        return self.salt or self.id

    def variant_for(self, member_id: str) -> str:
        """The variant (or ``"holdout"``) a member gets if eligible — deterministic."""
        return assign(member_id, self.variants, self.holdout, self.hash_salt)


@attrs.frozen(slots=True, kw_only=True)
class Skip:
    """An audience member who gets nothing, and why.

    Attributes:
        member_id: the member.
        reason: a :class:`SkipReason`.
        variant: the assigned variant (``"holdout"`` for holdouts), or ``None`` when skipped
            before assignment.
        detail: more context (cap name, missing field, ...).
    """

    member_id: str
    reason: SkipReason
    variant: str | None = None
    detail: str | None = None


PlanItem = Delivery | Skip
"""What :func:`plan` yields."""


def delivery_key(campaign_id: str, member_id: str) -> str:
    """The idempotency key of a campaign's delivery to a member: stable across re-plans (a
    member gets at most one delivery per campaign), 40 hex chars (fits mass ``clientmsgid``'s
    64 bytes with room for a batch suffix, ref §1.4)."""
    d = hashlib.sha256(f"membermkt-delivery\x00{campaign_id}\x00{member_id}".encode())
    return d.hexdigest()[:40]


def assign(member_id: str, variants: Sequence[Variant], holdout: float, salt: str) -> str:
    """The member's group: ``"holdout"`` or a variant name, by two independent keyed hashes.

    The holdout is ``sample_bucket(id, salt + ":holdout") < holdout * 10000``; the variant is
    the weighted slot of ``sample_bucket(id, salt + ":variant")``.
    """
    if holdout > 0 and sample_bucket(member_id, f"{salt}:holdout") < round(holdout * BUCKETS):
        return HOLDOUT
    if len(variants) == 1:
        return variants[0].name
    bucket = sample_bucket(member_id, f"{salt}:variant")
    total = float(sum(v.weight for v in variants))
    acc = 0.0
    for v in variants:
        acc += v.weight
        if bucket < round(acc / total * BUCKETS):
            return v.name
    return variants[-1].name


# --------------------------------------------------------------------------- validate


@attrs.frozen(slots=True)
class Problem:
    """Something the platform would refuse: where (``path``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _get_path(payload: Mapping[str, Any], path: str) -> Any:
    cur: Any = payload
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _check_content(
    rules: ChannelRules, variant: Variant, prefix: str, payload: Mapping[str, Any], static: bool
) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(
        Problem(f"{prefix}.{key}", f"{rules.channel} needs {key!r}")
        for key in rules.required_content
        if _get_path(payload, key) is None
    )
    if rules.msgtypes:
        mt = payload.get("msgtype")
        if isinstance(mt, str) and mt not in rules.msgtypes:
            problems.append(
                Problem(
                    f"{prefix}.msgtype",
                    f"{rules.channel} does not send msgtype {mt!r} "
                    f"(allowed: {', '.join(sorted(rules.msgtypes))})",
                )
            )
    for path, limit in rules.max_bytes.items():
        value = _get_path(payload, path)
        size = (
            value.static_length
            if isinstance(value, Template)
            else len(value.encode())
            if isinstance(value, str)
            else None
        )
        if size is not None and size > limit:
            qualifier = "at least " if static else ""
            problems.append(
                Problem(f"{prefix}.{path}", f"{qualifier}{size} bytes, platform limit {limit}")
            )
    for path, limit in rules.max_items.items():
        value = _get_path(payload, path)
        if isinstance(value, list | tuple) and len(value) > limit:
            problems.append(
                Problem(f"{prefix}.{path}", f"{len(value)} items, platform limit {limit}")
            )
    if rules.channel == "wechat.template":
        data = payload.get("data")
        if data is not None and not (
            isinstance(data, Mapping)
            and all(isinstance(v, Mapping) and "value" in v for v in data.values())
        ):
            problems.append(
                Problem(
                    f"{prefix}.data",
                    'template data must map each keyword to {"value": ...} (ref §1.5)',
                )
            )
    return problems


def validate(
    campaign: Campaign, *, capabilities: ChannelCapabilities | None = None
) -> tuple[Problem, ...]:
    """Everything the platform (or the channel) would refuse, found before anything runs.

    Checks content against the channel's rules (required keys, msgtypes, byte and item
    limits, template data shape, personalisation on mass channels), the channel's declared
    batch limits against the platform's, the address kind, and caps/schedule sanity.

    Args:
        campaign: the campaign.
        capabilities: the channel's declared capabilities, when known.

    Returns:
        The problems (empty when the campaign is fine).
    """
    rules = campaign.platform_rules
    problems: list[Problem] = []
    for i, v in enumerate(campaign.variants):
        prefix = f"variants[{i}]({v.name}).content"
        compiled = v._compiled
        problems.extend(_check_content(rules, v, prefix, compiled, static=bool(v.fields)))
        if not rules.personalisable and v.fields:
            problems.append(
                Problem(
                    prefix,
                    f"{rules.channel} sends one content per call; member fields "
                    f"{', '.join(v.fields)} cannot be personalised",
                )
            )
    if capabilities is not None:
        if rules.max_batch_size is not None and capabilities.max_batch_size > rules.max_batch_size:
            problems.append(
                Problem(
                    "channel.max_batch_size",
                    f"channel batches {capabilities.max_batch_size}, platform accepts at most "
                    f"{rules.max_batch_size} per call",
                )
            )
        if capabilities.address_kind != campaign.address_kind:
            problems.append(
                Problem(
                    "address_kind",
                    f"channel addresses {capabilities.address_kind!r}, campaign uses "
                    f"{campaign.address_kind!r}",
                )
            )
        elif (
            capabilities.address_namespace
            and campaign.address_namespace
            and capabilities.address_namespace != campaign.address_namespace
        ):
            problems.append(
                Problem(
                    "address_namespace",
                    f"channel sends for {capabilities.address_namespace!r}, campaign "
                    f"addresses {campaign.address_namespace!r}",
                )
            )
    for i, cap in enumerate(campaign.caps):
        if cap.limit == 0:
            problems.append(Problem(f"caps[{i}]", "limit 0 would skip every member"))
    return tuple(problems)


def check(campaign: Campaign, *, capabilities: ChannelCapabilities | None = None) -> None:
    """Like :func:`validate`, but raise.

    Raises:
        UsageError: listing every problem.
    """
    problems = validate(campaign, capabilities=capabilities)
    if problems:
        listing = "\n  ".join(str(p) for p in problems)
        raise UsageError(f"campaign {campaign.id!r} would be refused:\n  {listing}")


# --------------------------------------------------------------------------- plan


def _content_problem(rules: ChannelRules, payload: Mapping[str, Any]) -> str | None:
    for path, limit in rules.max_bytes.items():
        value = _get_path(payload, path)
        if isinstance(value, str) and len(value.encode()) > limit:
            return f"{path}: {len(value.encode())} bytes > {limit}"
    return None


def plan(
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    history: HistoryLike,
    as_of: dt.datetime,
) -> Iterator[PlanItem]:
    """Stream the campaign's deliveries and skips (pure; memory independent of audience size).

    Members outside the audience segment are not mentioned; every audience member yields
    exactly one :class:`~membermkt.core.delivery.Delivery` or :class:`Skip`.

    Args:
        campaign: the campaign.
        members: members, or ``(member, events)`` pairs when the audience or the interaction
            window needs events.
        history: past sends per member (:data:`~membermkt.core.quotas.HistoryLike`), for
            frequency caps and platform quotas — include every send that may have happened
            (sent, pending, unknown).
        as_of: the planning time (timezone-aware): segment evaluation, caps and quiet hours.

    Raises:
        UsageError: for a naive ``as_of``.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"plan(as_of=...) must be a timezone-aware datetime, got {as_of!r}")
    return _plan(campaign, members, history, as_of)


def _plan(
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    history: HistoryLike,
    as_of: dt.datetime,
) -> Iterator[PlanItem]:
    predicate = compile_predicate(campaign.audience, as_of)
    sends_of = history_lookup(history)
    rules = campaign.platform_rules
    channel = campaign.channel
    in_schedule = campaign.schedule is None or campaign.schedule.contains(as_of)
    variants = {v.name: v for v in campaign.variants}
    holdout_threshold = round(campaign.holdout * BUCKETS)
    salt = campaign.hash_salt
    kind, namespace = campaign.address_kind, campaign.address_namespace
    quiet = campaign.quiet_hours
    caps = campaign.caps
    platform_caps = rules.caps
    window = rules.window
    empty: Sequence[Event] = ()
    events: Sequence[Event]
    for item in members:
        if isinstance(item, Member):
            member, events = item, empty
        else:
            member, events = item
        if not predicate(member, events):
            continue
        mid = member.id
        if not in_schedule:
            yield Skip(member_id=mid, reason=SkipReason.OUTSIDE_SCHEDULE)
            continue
        if not member.consent.allows(channel):
            yield Skip(member_id=mid, reason=SkipReason.NO_CONSENT)
            continue
        if rules.requires == "subscribed" and member.state.subscribed is False:
            yield Skip(member_id=mid, reason=SkipReason.UNSUBSCRIBED)
            continue
        if rules.requires == "wecom_contact" and member.state.wecom_contact is False:
            yield Skip(member_id=mid, reason=SkipReason.UNSUBSCRIBED, detail="not a contact")
            continue
        ident = member.identity(kind, namespace)
        if ident is None:
            yield Skip(member_id=mid, reason=SkipReason.NO_ADDRESS, detail=kind)
            continue
        if quiet is not None and quiet.contains(as_of, member):
            yield Skip(member_id=mid, reason=SkipReason.QUIET_HOURS)
            continue
        if caps or platform_caps or window is not None:
            sends = sends_of(mid)
            refused = next((c for c in caps if not c.allows(sends, as_of, channel)), None)
            if refused is not None:
                yield Skip(member_id=mid, reason=SkipReason.FREQUENCY_CAP, detail=refused.label)
                continue
            refused = next((c for c in platform_caps if not c.allows(sends, as_of, channel)), None)
            if refused is not None:
                yield Skip(member_id=mid, reason=SkipReason.PLATFORM_QUOTA, detail=refused.label)
                continue
            if window is not None:
                why = window.check(events, sends, as_of)
                if why == "outside_window":
                    yield Skip(member_id=mid, reason=SkipReason.OUTSIDE_WINDOW, detail=window.name)
                    continue
                if why is not None:
                    yield Skip(member_id=mid, reason=SkipReason.PLATFORM_QUOTA, detail=window.name)
                    continue
        if holdout_threshold and sample_bucket(mid, f"{salt}:holdout") < holdout_threshold:
            yield Skip(member_id=mid, reason=SkipReason.HOLDOUT, variant=HOLDOUT)
            continue
        vname = assign(mid, campaign.variants, 0.0, salt)
        variant = variants[vname]
        try:
            payload = variant.render(member)
        except MissingField as exc:
            yield Skip(
                member_id=mid, reason=SkipReason.MISSING_FIELD, variant=vname, detail=exc.field
            )
            continue
        problem = _content_problem(rules, payload)
        if problem is not None:
            yield Skip(
                member_id=mid, reason=SkipReason.CONTENT_INVALID, variant=vname, detail=problem
            )
            continue
        yield Delivery(
            key=delivery_key(campaign.id, mid),
            campaign_id=campaign.id,
            member_id=mid,
            channel=channel,
            address=ident.value,
            variant=vname,
            payload=payload,
        )


# --------------------------------------------------------------------------- summaries


@attrs.frozen(slots=True, kw_only=True)
class PlanSummary:
    """Counts of a plan, per variant.

    Attributes:
        campaign_id: the campaign.
        audience: audience members seen (deliveries + skips).
        deliveries: variant → planned deliveries.
        skipped: variant (``"-"`` before assignment, ``"holdout"``) → reason → count.
        holdout_ids: the holdout members' ids, when collected (for lift).
        as_of: the planning time, when known (start of the holdout's attribution window).
    """

    campaign_id: str
    audience: int
    deliveries: Mapping[str, int]
    skipped: Mapping[str, Mapping[str, int]]
    holdout_ids: frozenset[str] = frozenset()
    as_of: dt.datetime | None = None

    @property
    def total_deliveries(self) -> int:
        return sum(self.deliveries.values())

    def skipped_by_reason(self) -> dict[str, int]:
        """Skips per reason, over all variants."""
        out: Counter[str] = Counter()
        for per in self.skipped.values():
            out.update(per)
        return dict(out)


class PlanTally:
    """A running count of plan items (feed it while streaming; O(1) memory unless holdout ids
    are kept)."""

    def __init__(
        self,
        campaign_id: str,
        *,
        keep_holdout_ids: bool = False,
        as_of: dt.datetime | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        self.as_of = as_of
        self.audience = 0
        self.deliveries: Counter[str] = Counter()
        self.skipped: dict[str, Counter[str]] = {}
        self._keep = keep_holdout_ids
        self._holdout: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"<PlanTally {self.campaign_id!r} audience={self.audience} "
            f"deliveries={sum(self.deliveries.values())}>"
        )

    def add(self, item: PlanItem) -> PlanItem:
        """Count ``item`` and return it (so it can wrap a stream)."""
        self.audience += 1
        if isinstance(item, Delivery):
            self.deliveries[item.variant] += 1
        else:
            self.skipped.setdefault(item.variant or "-", Counter())[item.reason.value] += 1
            if self._keep and item.reason is SkipReason.HOLDOUT:
                self._holdout.add(item.member_id)
        return item

    def summary(self) -> PlanSummary:
        """The counts so far."""
        return PlanSummary(
            campaign_id=self.campaign_id,
            audience=self.audience,
            deliveries=dict(self.deliveries),
            skipped={k: dict(v) for k, v in self.skipped.items()},
            holdout_ids=frozenset(self._holdout),
            as_of=self.as_of,
        )


def summarize(
    campaign_id: str,
    items: Iterable[PlanItem],
    *,
    keep_holdout_ids: bool = False,
    as_of: dt.datetime | None = None,
) -> PlanSummary:
    """Consume a plan stream and count it."""
    tally = PlanTally(campaign_id, keep_holdout_ids=keep_holdout_ids, as_of=as_of)
    for item in items:
        tally.add(item)
    return tally.summary()
