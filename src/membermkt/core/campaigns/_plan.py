"""The plan: one delivery or skip per audience member, streamed (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from membermkt.core._frozen import FrozenMap
from membermkt.core.campaigns._model import Campaign, PlanItem, Skip, SkipReason, delivery_key
from membermkt.core.campaigns._validate import _get_path
from membermkt.core.campaigns._variants import HOLDOUT, assign
from membermkt.core.delivery import Delivery
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.quotas import Cap, ChannelRules, HistoryLike, PastSend, history_lookup
from membermkt.core.segments import BUCKETS, sample_bucket
from membermkt.core.templating import MissingField
from membermkt.errors import UsageError


def _content_problem(rules: ChannelRules, payload: Mapping[str, Any]) -> str | None:
    for path, limit in rules.max_bytes.items():
        value = _get_path(payload, path)
        if isinstance(value, str) and len(value.encode()) > limit:
            return f"{path}: {len(value.encode())} bytes > {limit}"
    return None


def _cap_check(cap: Cap, at: dt.datetime, channel: str) -> Callable[[Sequence[PastSend]], bool]:
    """``cap.allows(sends, at, channel)`` as a function of ``sends`` alone, with the cap's
    window and limit at ``at`` computed once."""
    limit = cap.limit_at(at)
    start, end = cap.window(at)
    rolling = isinstance(cap.period, dt.timedelta)
    counts = cap.counts

    def allows(sends: Sequence[PastSend]) -> bool:
        if not sends:
            return limit > 0
        n = 0
        for s in sends:
            if not counts(s.channel, channel):
                continue
            if (start < s.at < end) if rolling else (start <= s.at < end):
                n += 1
        return n < limit

    return allows


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
    if campaign.platform_rules.unavailable:
        return _unavailable(campaign, members, as_of)
    return _plan(campaign, members, history, as_of)


def _unavailable(
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    as_of: dt.datetime,
) -> Iterator[PlanItem]:
    """Every audience member skipped: the platform refuses the channel on this account."""
    predicate = compile_predicate(campaign.audience, as_of)
    detail = campaign.platform_rules.unavailable
    empty: Sequence[Event] = ()
    for item in members:
        member, events = (item, empty) if isinstance(item, Member) else item
        if predicate(member, events):
            yield Skip(member_id=member.id, reason=SkipReason.PLATFORM_QUOTA, detail=detail)


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
    # every member is checked at the same as_of: each cap's window and limit once
    cap_checks = [(c, _cap_check(c, as_of, channel)) for c in caps]
    platform_checks = [(c, _cap_check(c, as_of, channel)) for c in platform_caps]
    empty: Sequence[Event] = ()
    events: Sequence[Event]
    # a variant without member fields renders the same for everyone: render (and check) it
    # once and share the frozen payload between its deliveries
    static: dict[str, tuple[FrozenMap[str, Any], str | None]] = {}
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
            refused = next((c for c, ok in cap_checks if not ok(sends)), None)
            if refused is not None:
                yield Skip(member_id=mid, reason=SkipReason.FREQUENCY_CAP, detail=refused.label)
                continue
            refused = next((c for c, ok in platform_checks if not ok(sends)), None)
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
        shared = static.get(vname)
        payload: Mapping[str, Any]
        if shared is not None:
            payload, problem = shared
        else:
            try:
                payload = variant.render(member)
            except MissingField as exc:
                yield Skip(
                    member_id=mid, reason=SkipReason.MISSING_FIELD, variant=vname, detail=exc.field
                )
                continue
            problem = _content_problem(rules, payload)
            if not variant.fields:
                payload = FrozenMap(payload)
                static[vname] = (payload, problem)
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
