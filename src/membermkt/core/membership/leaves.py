"""The ``latest`` segment leaf and the membership leaves built on it.

Membership, tiers and entitlements are *states* that events switch: ``member_joined`` /
``member_left``, ``tier_changed``, ``entitlement_granted`` / ``entitlement_redeemed``. Their
value as of a time is the **latest** switching event at or before that time, which ``did``
(counts in a window) cannot say. :class:`Latest` says it, for every backend:

    the member's latest event among the types ``among`` (only events whose properties equal
    every ``scope`` item; at or before ``as_of``) is of type ``event``, its properties equal
    every ``where`` item, and it happened in ``(as_of - newer_than, as_of - older_than]``
    (each bound optional).

With ``match`` (a property name), an event of another type than ``event`` takes part only
when the member has an ``event``-type event (in ``scope``, at or before it) carrying the same
string ``match`` property: a redemption only counts for an entitlement the member was granted
(``has_unused_entitlement`` matches on ``entitlement``), never for another member's.

"Latest orders by event time, then by position in ``among`` (a later type wins a tie: put
the closing type last, e.g. ``("member_joined", "member_left")``). Several events sharing
the latest rank count if any of them matches. The Python compilation is registered here;
the SQL one in :mod:`membermkt.stores.sql.membership` (a correlated ``NOT EXISTS``), and
both are property-tested to select the same members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

from membermkt.core.compiler import compiles
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.segments import Or, Segment, _type_class
from membermkt.core.segments._did import _to_where
from membermkt.core.segments._fields import _EVENT_RE, _NAME_RE
from membermkt.errors import SegmentError

__all__ = [
    "ENTITLEMENT_GRANTED",
    "ENTITLEMENT_REDEEMED",
    "MEMBER_JOINED",
    "MEMBER_LEFT",
    "TIER_CHANGED",
    "Latest",
    "has_unused_entitlement",
    "is_member",
    "joined_via",
    "joined_within",
    "latest",
    "non_member_repeat_buyers",
    "tier_is",
]

MEMBER_JOINED: Final = "member_joined"
MEMBER_LEFT: Final = "member_left"
TIER_CHANGED: Final = "tier_changed"
ENTITLEMENT_GRANTED: Final = "entitlement_granted"
ENTITLEMENT_REDEEMED: Final = "entitlement_redeemed"

_Where = tuple[tuple[str, str | int | float | bool], ...]


def _to_types(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SegmentError(f"latest(among=...) takes a sequence of event types, got {value!r}")
    return tuple(value)


def _seconds(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SegmentError(f"latest({name}=...) must be a non-negative whole second count")


@attrs.frozen(slots=True)
class Latest(Segment):
    """The member's latest event among ``among`` (see the module doc) is an ``event``
    matching ``where`` in the window ``(as_of - newer_than, as_of - older_than]``."""

    among: tuple[str, ...] = attrs.field(converter=_to_types)
    event: str
    scope: _Where = attrs.field(default=(), converter=_to_where)
    where: _Where = attrs.field(default=(), converter=_to_where)
    newer_than: int | None = None
    """Seconds: the matching event happened after ``as_of - newer_than``."""
    older_than: int | None = None
    """Seconds: the matching event happened at or before ``as_of - older_than``."""
    match: str | None = None
    """A property name: other-type events count only when an ``event``-type event of the
    member at or before them carries the same string value of it."""
    kind: ClassVar[str] = "latest"

    def __attrs_post_init__(self) -> None:
        if not self.among or len(set(self.among)) != len(self.among):
            raise SegmentError(f"latest(among=...) needs distinct event types, got {self.among}")
        for t in self.among:
            if not isinstance(t, str) or not _EVENT_RE.match(t):
                raise SegmentError(f"invalid event type {t!r}")
        if self.event not in self.among:
            raise SegmentError(f"latest(event={self.event!r}) must be one of among={self.among}")
        _seconds("newer_than", self.newer_than)
        _seconds("older_than", self.older_than)
        if self.match is not None and (
            not isinstance(self.match, str) or not _NAME_RE.match(self.match)
        ):
            raise SegmentError(f"latest(match=...) must be a property name, got {self.match!r}")

    @property
    def rank(self) -> int:
        """The tie-break position of ``event`` within ``among``."""
        return self.among.index(self.event)


def latest(
    among: Sequence[str],
    event: str,
    *,
    scope: Mapping[str, object] | None = None,
    where: Mapping[str, object] | None = None,
    newer_than: dt.timedelta | None = None,
    older_than: dt.timedelta | None = None,
    match: str | None = None,
) -> Latest:
    """Build a :class:`Latest` leaf (windows as timedeltas of whole seconds).

    Raises:
        SegmentError: for invalid types, properties or windows.
    """

    def secs(name: str, td: dt.timedelta | None) -> int | None:
        if td is None:
            return None
        if not isinstance(td, dt.timedelta) or td.total_seconds() != int(td.total_seconds()):
            raise SegmentError(f"latest({name}=...) takes a timedelta of whole seconds")
        return int(td.total_seconds())

    return Latest(
        tuple(among),
        event,
        _to_where(scope),
        _to_where(where),
        secs("newer_than", newer_than),
        secs("older_than", older_than),
        match,
    )


def is_member() -> Latest:
    """Members as of the evaluation time: joined, and not left since."""
    return Latest((MEMBER_JOINED, MEMBER_LEFT), MEMBER_JOINED)


def joined_via(source: str) -> Latest:
    """Current members whose (latest) joining came through ``source`` (a channel, form or
    partner id: the ``source`` property of ``member_joined``)."""
    return Latest((MEMBER_JOINED, MEMBER_LEFT), MEMBER_JOINED, where=(("source", source),))


def joined_within(window: dt.timedelta) -> Latest:
    """Current members who joined within ``window`` before the evaluation time."""
    return latest((MEMBER_JOINED, MEMBER_LEFT), MEMBER_JOINED, newer_than=window)


def non_member_repeat_buyers(min_orders: int = 2) -> Segment:
    """Buyers with at least ``min_orders`` orders who are not members: the audience of a
    membership offer (turn repeat buyers into members).

    Raises:
        SegmentError: for ``min_orders`` below 1.
    """
    from membermkt.core.segments import attr

    if isinstance(min_orders, bool) or not isinstance(min_orders, int) or min_orders < 1:
        raise SegmentError(f"min_orders must be a positive int, got {min_orders!r}")
    return (attr("orders_count") >= min_orders) & ~is_member()


def tier_is(*names: str) -> Segment:
    """Members whose tier (the ``to`` of their latest ``tier_changed``) is one of ``names``.

    Raises:
        SegmentError: without a name.
    """
    if not names:
        raise SegmentError("tier_is() needs at least one tier name")
    return Or.of(*(Latest((TIER_CHANGED,), TIER_CHANGED, where=(("to", n),)) for n in names))


def has_unused_entitlement(
    benefit: str, *, validity: dt.timedelta, expiring_within: dt.timedelta | None = None
) -> Latest:
    """Members whose latest ``benefit`` entitlement is not redeemed and still valid (granted
    within ``validity``), optionally expiring within ``expiring_within``. A redemption only
    counts for an entitlement the member was granted (at or before the redemption), as in
    :func:`~membermkt.core.membership.entitlements.entitlements_as_of`.

    Raises:
        SegmentError: when ``expiring_within`` is not shorter than ``validity``.
    """
    older: dt.timedelta | None = None
    if expiring_within is not None:
        if not dt.timedelta(0) < expiring_within < validity:
            raise SegmentError("expiring_within must be positive and shorter than validity")
        older = validity - expiring_within
    return latest(
        (ENTITLEMENT_GRANTED, ENTITLEMENT_REDEEMED),
        ENTITLEMENT_GRANTED,
        scope={"benefit": benefit},
        newer_than=validity,
        older_than=older,
        match="entitlement",
    )


# --------------------------------------------------------------------------- python backend


def _props_match(props: Mapping[str, Any], items: tuple[tuple[str, str, Any], ...]) -> bool:
    for k, cls, v in items:
        x = props.get(k)
        if x is None or _type_class(x) != cls or x != v:
            return False
    return True


def latest_predicate(node: Latest, as_of: dt.datetime) -> Any:
    """``predicate(member, events)`` of ``node`` as of ``as_of`` (the reference semantics)."""
    rank = {t: i for i, t in enumerate(node.among)}
    scope = tuple((k, _type_class(v), v) for k, v in node.scope)
    where = tuple((k, _type_class(v), v) for k, v in node.where)
    lower = None if node.newer_than is None else as_of - dt.timedelta(seconds=node.newer_than)
    upper = as_of if node.older_than is None else as_of - dt.timedelta(seconds=node.older_than)
    target = node.event

    match = node.match

    def pred(m: Member, events: Sequence[Event]) -> bool:
        granted: dict[str, dt.datetime] = {}
        if match is not None:
            for ev in events:
                v = ev.properties.get(match)
                if (
                    ev.type == target
                    and isinstance(v, str)
                    and ev.at <= as_of
                    and _props_match(ev.properties, scope)
                    and (v not in granted or ev.at < granted[v])
                ):
                    granted[v] = ev.at
        best: tuple[dt.datetime, int] | None = None
        hit = False
        for ev in events:
            r = rank.get(ev.type)
            if r is None or ev.at > as_of or not _props_match(ev.properties, scope):
                continue
            if match is not None and ev.type != target:
                v = ev.properties.get(match)
                if not isinstance(v, str) or v not in granted or granted[v] > ev.at:
                    continue
            key = (ev.at, r)
            ok = (
                ev.type == target
                and ev.at <= upper
                and (lower is None or ev.at > lower)
                and _props_match(ev.properties, where)
            )
            if best is None or key > best:
                best, hit = key, ok
            elif key == best:
                hit = hit or ok
        return hit

    return pred


@compiles(Latest, "python")
def _compile_python(compiler: Any, node: Latest, path: str) -> Any:
    return latest_predicate(node, compiler.as_of)


# --------------------------------------------------------------------------- JSON form


def latest_to_json(node: Segment) -> dict[str, Any]:
    """``{"op": "latest", "among": [...], "event": t, "scope": {...}, "where": {...},
    "newer_than": duration, "older_than": duration, "match": name}`` (empty parts
    omitted)."""
    from membermkt.core.segjson import _duration_to_json

    assert isinstance(node, Latest)
    out: dict[str, Any] = {"op": "latest", "among": list(node.among), "event": node.event}
    if node.scope:
        out["scope"] = dict(node.scope)
    if node.where:
        out["where"] = dict(node.where)
    if node.newer_than is not None:
        out["newer_than"] = _duration_to_json(node.newer_than)
    if node.older_than is not None:
        out["older_than"] = _duration_to_json(node.older_than)
    if node.match is not None:
        out["match"] = node.match
    return out


def latest_from_json(obj: dict[str, Any], path: str) -> Latest:
    """Parse the JSON form of :class:`Latest`.

    Raises:
        SegmentError: naming the path of the bad part.
    """
    from membermkt.core.segjson import _duration_from_json, _jtype, _keys

    allowed = {"op", "among", "event", "scope", "where", "newer_than", "older_than", "match"}
    _keys(obj, path, allowed, {"among", "event"})
    among = obj["among"]
    if not isinstance(among, list) or not all(isinstance(t, str) for t in among):
        raise SegmentError('expected "among" to be an array of strings', f"{path}.among")
    event = obj["event"]
    if not isinstance(event, str):
        raise SegmentError(f"expected a string, got {_jtype(event)}", f"{path}.event")
    parts: dict[str, _Where] = {}
    for key in ("scope", "where"):
        raw = obj.get(key) or {}
        if not isinstance(raw, dict):
            raise SegmentError(f"expected an object, got {_jtype(raw)}", f"{path}.{key}")
        for k, v in raw.items():
            if v is None or isinstance(v, list | dict):
                raise SegmentError(
                    f"expected a string, number or boolean, got {_jtype(v)}", f"{path}.{key}.{k}"
                )
        parts[key] = _to_where(raw)
    windows: dict[str, int | None] = {}
    for key in ("newer_than", "older_than"):
        raw_w = obj.get(key)
        windows[key] = None if raw_w is None else _duration_from_json(raw_w, f"{path}.{key}")
    match = obj.get("match")
    if match is not None and not isinstance(match, str):
        raise SegmentError(f"expected a string, got {_jtype(match)}", f"{path}.match")
    try:
        return Latest(
            tuple(among),
            event,
            parts["scope"],
            parts["where"],
            windows["newer_than"],
            windows["older_than"],
            match,
        )
    except SegmentError as exc:
        raise SegmentError(exc.reason, path) from None
