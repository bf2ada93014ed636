"""Events as SQL rows, and the one-pass folds of new events into member state (the ingest
hot path; not public API)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from membermkt.core.events import ACQUISITION_TYPES, INTERACTION_TYPES, Event, event_state
from membermkt.core.members import MemberState, PurchaseStats, Relation
from membermkt.errors import UsageError
from membermkt.stores.sql._codec import _ENCODE_FAST, _tb_out, check_text, dumps
from membermkt.stores.sql.compile import from_epoch_us
from membermkt.stores.sql.schema import ID_LEN, TEXT_LEN

EVENT_COLS = (
    "key",
    "member_id",
    "type",
    "at",
    "props",
    "amount_fen",
    "source",
    "staff",
    "outbound",
)


def event_row(
    e: Event,
) -> tuple[str | None, str, str, int, str, int | None, str | None, str | None, bool | None]:
    """The events-table values of ``e`` in :data:`EVENT_COLS` order.

    Raises:
        UsageError: for a member id too long.
    """
    mid = e.member_id
    if len(mid) > ID_LEN:
        raise UsageError(f"event member_id is too long ({len(mid)} > {ID_LEN} chars)")
    data = e.properties._data  # the hot path reads the plain dict behind the FrozenMap
    amount: int | None = None
    source: str | None = None
    staff: str | None = None
    outbound: bool | None = None
    t = e.type
    if data:
        if t == "purchase":
            amount = int(data.get("amount_fen", 0))
        elif t in ACQUISITION_TYPES:
            got = data.get("source")
            if isinstance(got, str) and got:
                if len(got) > TEXT_LEN:
                    check_text("event source", got)
                source = got
        if t in _CONTACT:
            who = data.get("staff")
            staff = who if isinstance(who, str) else ""
            check_text("event staff", staff)
        if data.get("direction") == "out":
            outbound = True
        props = _ENCODE_FAST(data)
    else:
        props = "{}"
        if t == "purchase":
            amount = 0
        elif t in _CONTACT:
            staff = ""
    return (e.key, mid, t, (e.at - _EPOCH) // _US, props, amount, source, staff, outbound)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


def event_from_row(r: Mapping[Any, Any]) -> Event:
    """Rebuild an :class:`Event` from its row."""
    props = r["props"]
    return Event(
        r["member_id"],
        r["type"],
        from_epoch_us(int(r["at"])),
        json.loads(props) if isinstance(props, str) else props,
        key=r["key"],
    )


def fold_events(events: Iterable[Event]) -> MemberState:
    """The combined state contribution of ``events``: exactly
    ``reduce(MemberState.combine, map(event_state, events), MemberState())``, computed in
    one pass without intermediate states (the ingest hot path)."""
    sub: tuple[tuple[dt.datetime, str], Event] | None = None
    con: tuple[dt.datetime, str] | None = None
    rels: dict[str, Relation] = {}
    src: tuple[tuple[dt.datetime, str], str] | None = None
    last_active: dt.datetime | None = None
    last_event: dt.datetime | None = None
    count = total = 0
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    categories: set[str] = set()
    for e in events:
        t = e.type
        at = e.at
        if last_event is None or at > last_event:
            last_event = at
        if (
            t in INTERACTION_TYPES
            and (last_active is None or at > last_active)
            and e.properties.get("direction") != "out"
        ):
            last_active = at
        if t in _SUBSCRIPTION:
            v = (at, _TYPE_RANK[t] + (e.key or ""))
            if sub is None or v > sub[0]:
                sub = (v, e)
        elif t in _CONTACT:
            v = (_utc_at(at), _TYPE_RANK[t] + (e.key or ""))
            if con is None or v > con:
                con = v
            props = e.properties
            staff = props.get("staff")
            staff = staff if isinstance(staff, str) else ""
            if t == "contact_added":
                state = props.get("state")
                rel = Relation(
                    staff=staff, added=v, state=state if isinstance(state, str) else None
                )
            else:
                rel = Relation(staff=staff, deleted=v)
            mine = rels.get(staff)
            rels[staff] = rel if mine is None else mine.combine(rel)
        elif t == "purchase":
            props = e.properties
            count += 1
            total += int(props.get("amount_fen", 0))
            if first_at is None or at < first_at:
                first_at = at
            if last_at is None or at > last_at:
                last_at = at
            category = props.get("category")
            if isinstance(category, str) and category:
                categories.add(category)
        if t in ACQUISITION_TYPES:
            source = e.properties.get("source")
            if isinstance(source, str) and source:
                v = (at, _TYPE_RANK.get(t, "0") + (e.key or "") + "\x00" + source)
                if src is None or v < src[0]:
                    src = (v, source)
    if last_event is None:
        return _EMPTY_STATE
    kwargs: dict[str, Any] = {"last_event_at": _utc(last_event)}
    if sub is not None:
        (at, tb), ev = sub
        follow = ev.type == "follow"
        kwargs.update(
            subscribed=follow,
            subscription_version=(_utc(at), tb),
            followed_at=_utc(at) if follow else None,
        )
    if con is not None:
        relations = tuple(rels[k] for k in sorted(rels))
        kwargs.update(
            wecom_contact=any(r.live for r in relations),
            contact_version=con,
            relations=relations,
        )
    if src is not None:
        (at, tb), source = src
        kwargs.update(source=source, source_version=(_utc(at), tb))
    if last_active is not None:
        kwargs["last_active_at"] = _utc(last_active)
    if count:
        kwargs["purchases"] = PurchaseStats(
            count=count,
            total_fen=total,
            first_at=_utc(first_at),
            last_at=_utc(last_at),
            categories=frozenset(categories),
        )
    return MemberState(**kwargs)


def _utc_at(v: dt.datetime) -> dt.datetime:
    return v.astimezone(dt.UTC)


def _utc(v: dt.datetime | None) -> dt.datetime | None:
    return None if v is None else v.astimezone(dt.UTC)


_EMPTY_STATE = MemberState()
_SUBSCRIPTION = frozenset({"follow", "unfollow"})
_CONTACT = frozenset({"contact_added", "contact_deleted"})
_TYPE_RANK = {"unfollow": "1", "follow": "0", "contact_deleted": "1", "contact_added": "0"}


def fold_events_reference(events: Iterable[Event]) -> MemberState:
    """The slow, obviously-correct fold :func:`fold_events` must equal (for tests)."""
    state = MemberState()
    for e in events:
        state = state.combine(event_state(e))
    return state


def fold_state_values(
    items: Sequence[tuple[Event, tuple[Any, ...]]],
) -> tuple[Any, ...]:
    """The state columns (:data:`~membermkt.stores.sql._codec.STATE_COLS` order) of a new
    member whose only events are ``items`` — ``(event, event_row(event))`` pairs — i.e.
    exactly ``state_row(fold_events(events))`` as a tuple, computed on the rows' integer
    times without building datetimes, a :class:`MemberState` or its relations.
    """
    last_event = last_active = -(1 << 63)
    sub: tuple[int, str] | None = None
    follow = False
    src: tuple[int, str] | None = None
    source: str | None = None
    count = total = 0
    first_at: int | None = None
    last_at: int | None = None
    categories: set[str] | None = None
    con: tuple[int, str] | None = None
    # staff -> [added version, state of that add, deleted version]
    rels: dict[str, list[Any]] | None = None
    interaction = INTERACTION_TYPES
    for e, row in items:
        t = row[2]
        at = row[3]
        if at > last_event:
            last_event = at
        if t in interaction and at > last_active and row[8] is not True:
            last_active = at
        if t == "purchase":
            count += 1
            total += row[5]
            if first_at is None or at < first_at:
                first_at = at
            if last_at is None or at > last_at:
                last_at = at
            category = e.properties._data.get("category")
            if isinstance(category, str) and category:
                if categories is None:
                    categories = set()
                categories.add(category)
        elif t in _SUBSCRIPTION:
            v = (at, _TYPE_RANK[t] + (row[0] or ""))
            if sub is None or v > sub:
                sub = v
                follow = t == "follow"
        elif t in _CONTACT:
            v = (at, _TYPE_RANK[t] + (row[0] or ""))
            if con is None or v > con:
                con = v
            if rels is None:
                rels = {}
            rel = rels.get(row[7])
            if rel is None:
                rel = rels[row[7]] = [None, None, None]
            if t == "contact_added":
                if rel[0] is None or v > rel[0]:  # at a tie the first add stays
                    rel[0] = v
                    state = e.properties._data.get("state")
                    rel[1] = state if isinstance(state, str) else None
            elif rel[2] is None or v > rel[2]:
                rel[2] = v
        if t in ACQUISITION_TYPES and row[6]:
            got: str = row[6]
            v = (at, "0" + (row[0] or "") + "\x00" + got)
            if src is None or v < src:
                src = v
                source = got
    if last_event == -(1 << 63):
        raise ValueError("fold_state_values needs at least one event")
    contact = relations = None
    if rels is not None:
        out = []
        contact = False
        for staff in sorted(rels):
            added, state, deleted = rels[staff]
            if added is not None and (deleted is None or added > deleted):
                contact = True
            out.append(
                [
                    staff,
                    None if added is None else added[0],
                    None if added is None else added[1],
                    state,
                    None if deleted is None else deleted[0],
                    None if deleted is None else deleted[1],
                ]
            )
        relations = dumps(out)
    return (
        None if sub is None else follow,
        None if sub is None else sub[0],
        None if sub is None else _tb_out(sub[1]),
        sub[0] if sub is not None and follow else None,
        source,
        None if src is None else src[0],
        None if src is None else _tb_out(src[1]),
        None if last_active == -(1 << 63) else last_active,
        count,
        total,
        first_at,
        last_at,
        _ENCODE_FAST(sorted(categories)) if categories else None,  # = dumps() for a str list
        contact,
        None if con is None else con[0],
        None if con is None else _tb_out(con[1]),
        last_event,
        relations,
    )
