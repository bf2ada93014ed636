"""Events: everything a member does, and the fold that turns events into member state.

The fold is built so that ingest order never matters:

* purchase stats, last activity and categories are commutative aggregates;
* subscription (follow/unfollow) and WeCom contact state are last-writer-wins **by event
  time**, ties broken by event type and key so the answer is the same in any order;
* the acquisition ``source`` is first-touch: the earliest acquisition event that carries one.

So ``fold(m, events)`` equals ``fold(m, shuffled(events))`` — a property the tests check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from membermkt.core._frozen import FrozenMap, Scalar, check_scalar
from membermkt.core.members import Member, MemberState, PurchaseStats, Relation
from membermkt.errors import UsageError

__all__ = [
    "ACQUISITION_TYPES",
    "EVENT_TYPES",
    "INTERACTION_TYPES",
    "Event",
    "apply",
    "event_state",
    "fold",
    "source_version",
    "state_as_of",
]

EVENT_TYPES: Final = (
    "follow",
    "unfollow",
    "scan",
    "menu_click",
    "view",
    "message",
    "purchase",
    "redpacket_claim",
    "redpacket_paid",
    "contact_added",
    "contact_deleted",
)
"""Event types used across the library. Other (custom) types are allowed too."""

INTERACTION_TYPES: Final = frozenset(
    {
        "follow",
        "scan",
        "menu_click",
        "view",
        "message",
        "purchase",
        "redpacket_claim",
        "contact_added",
    }
)
"""Types that count as the member being active (they move ``last_active_at``) — unless the
event is staff-initiated (``direction == "out"``, e.g. a WeCom staff message): what staff do
is never the customer's activity."""

ACQUISITION_TYPES: Final = frozenset({"follow", "scan", "contact_added"})
"""Types whose ``source`` property can set the member's acquisition source."""

UTC = dt.UTC


def _check_member_id(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"Event.member_id must be a non-empty str, got {value!r}")


def _check_type(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise UsageError(f"Event.type must be a non-empty str of ≤ 64 chars, got {value!r}")


def _check_at(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise UsageError(f"Event.at must be a timezone-aware datetime, got {value!r}")


def _to_properties(value: Mapping[str, Scalar]) -> FrozenMap[str, Scalar]:
    if not isinstance(value, Mapping):
        raise UsageError(f"Event.properties must be a mapping, got {type(value).__name__}")
    for k, v in value.items():
        check_scalar("Event.properties", k, v)
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _check_key(instance: object, attribute: object, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
        raise UsageError(f"Event.key must be None or a non-empty str of ≤ 200 chars: {value!r}")


@attrs.frozen(slots=True)
class Event:
    """Something a member did (or that happened to them), at a point in time.

    Args:
        member_id: the member.
        type: ``"follow"``, ``"purchase"``, ... (see :data:`EVENT_TYPES`; custom types allowed).
        at: a timezone-aware datetime (stored as UTC).
        properties: str → str | int | float | bool, e.g. ``{"order_id": "A1",
            "amount_fen": 1990, "category": "durian"}`` for a purchase.
        key: de-duplication key: two events with the same key are the same event (WeChat
            re-pushes callbacks). ``None`` never de-duplicates.

    Raises:
        UsageError: on any invalid field, naming it. A purchase's ``amount_fen`` must be a
            non-negative int.
    """

    member_id: str = attrs.field(validator=_check_member_id)
    type: str = attrs.field(validator=_check_type)
    at: dt.datetime = attrs.field(validator=_check_at)
    properties: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_properties)
    key: str | None = attrs.field(default=None, validator=_check_key)

    def __attrs_post_init__(self) -> None:
        if self.type == "purchase":
            amount = self.properties.get("amount_fen", 0)
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise UsageError(
                    f"purchase amount_fen must be a non-negative int (fen), got {amount!r}"
                )

    @property
    def at_utc(self) -> dt.datetime:
        """``at`` converted to UTC."""
        return self.at.astimezone(UTC)

    def with_member(self, member_id: str) -> Event:
        """A copy attributed to another member (used when identities merge)."""
        return attrs.evolve(self, member_id=member_id)


_TYPE_RANK = {"unfollow": "1", "follow": "0", "contact_deleted": "1", "contact_added": "0"}


def _version(event: Event) -> tuple[dt.datetime, str]:
    # At equal times, a removal beats an addition (the safer reading for marketing), then the
    # key decides; the result does not depend on ingest order.
    return (event.at_utc, _TYPE_RANK.get(event.type, "0") + (event.key or ""))


def source_version(event: Event, source: str) -> tuple[dt.datetime, str]:
    """The first-touch version of an acquisition event: its time, then a tie-break that
    includes the source itself, so two sources at the same instant (and the same or no
    key) are ordered the same way whatever order they arrive in."""
    at, tie = _version(event)
    return (at, f"{tie}\x00{source}")


def event_state(event: Event) -> MemberState:
    """The state contribution of one event alone (the fold's unit)."""
    t = event.type
    at = event.at_utc
    kwargs: dict[str, Any] = {"last_event_at": at}
    if t in INTERACTION_TYPES and event.properties.get("direction") != "out":
        kwargs["last_active_at"] = at
    if t == "follow":
        kwargs.update(subscribed=True, subscription_version=_version(event), followed_at=at)
    elif t == "unfollow":
        kwargs.update(subscribed=False, subscription_version=_version(event))
    elif t in ("contact_added", "contact_deleted"):
        staff = event.properties.get("staff")
        staff = staff if isinstance(staff, str) else ""
        v = _version(event)
        if t == "contact_added":
            state = event.properties.get("state")
            rel = Relation(staff=staff, added=v, state=state if isinstance(state, str) else None)
        else:
            rel = Relation(staff=staff, deleted=v)
        kwargs.update(wecom_contact=rel.live, contact_version=v, relations=(rel,))
    elif t == "purchase":
        amount = event.properties.get("amount_fen", 0)
        category = event.properties.get("category")
        kwargs["purchases"] = PurchaseStats(
            count=1,
            total_fen=int(amount),
            first_at=at,
            last_at=at,
            categories=frozenset([category]) if isinstance(category, str) and category else (),
        )
    if t in ACQUISITION_TYPES:
        source = event.properties.get("source")
        if isinstance(source, str) and source:
            kwargs.update(source=source, source_version=source_version(event, source))
    return MemberState(**kwargs)


def apply(member: Member, event: Event) -> Member:
    """The member after ``event``: its state folded in.

    Raises:
        UsageError: when the event belongs to another member.
    """
    if event.member_id != member.id:
        raise UsageError(f"event for member {event.member_id!r} applied to member {member.id!r}")
    return attrs.evolve(member, state=member.state.combine(event_state(event)))


def fold(member: Member, events: Iterable[Event]) -> Member:
    """Apply every event in ``events`` (any order gives the same result)."""
    state = member.state
    for event in events:
        if event.member_id != member.id:
            raise UsageError(
                f"event for member {event.member_id!r} applied to member {member.id!r}"
            )
        state = state.combine(event_state(event))
    return attrs.evolve(member, state=state)


def state_as_of(member: Member, events: Iterable[Event], as_of: dt.datetime) -> Member:
    """``member`` as it was at ``as_of``: its stored state when no folded event is later than
    ``as_of`` (the stored state is a cache of the fold), else the fold of ``events`` at or
    before ``as_of``.

    Raises:
        UsageError: for a naive ``as_of``.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"as_of must be a timezone-aware datetime, got {as_of!r}")
    last = member.state.last_event_at
    if last is None or last <= as_of:
        return member
    state = MemberState()
    for event in events:
        if event.at <= as_of:
            state = state.combine(event_state(event))
    return attrs.evolve(member, state=state)
