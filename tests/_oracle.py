"""A tiny reference interpreter for segments: the oracle the tests compare backends with.

Deliberately naive (a tree walk per member, ages computed directly, no shared code with
``membermkt.core.evaluate`` beyond the node classes), so that a bug in the compiler does not
hide itself here too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from membermkt import Event, Member
from membermkt.core.events import event_state
from membermkt.core.members import MemberState
from membermkt.core.segments import And, Cmp, Const, Did, Not, Or, RelTime, Sample, Segment, Tags

P = 2**31 - 1


def _cls(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, dt.datetime):
        return "dt"
    if isinstance(v, dt.date):
        return "date"
    return "?"


def _age(b: dt.date, on: dt.date) -> int:
    years = on.year - b.year
    # a Feb-29 birthday is celebrated on Mar 1 in common years
    try:
        this_year = b.replace(year=on.year)
    except ValueError:
        this_year = dt.date(on.year, 3, 1)
    return years if on >= this_year else years - 1


def _state(member: Member, events: Sequence[Event], as_of: dt.datetime) -> MemberState:
    # state as of a time: the stored state caches the fold of all events; when an event is
    # later than as_of, the state is the fold of the events at or before as_of
    if not any(e.at > as_of for e in events):
        return member.state
    state = MemberState()
    for e in events:
        if e.at <= as_of:
            state = state.combine(event_state(e))
    return state


def _field(member: Member, name: str, as_of: dt.datetime, events: Sequence[Event] = ()) -> Any:
    p, s = member.profile, _state(member, events, as_of)
    if name == "age":
        return None if p.birthday is None else _age(p.birthday, as_of.date())
    table = {
        "gender": p.gender,
        "city": p.city,
        "province": p.province,
        "country": p.country,
        "birthday": p.birthday,
        "income_band": p.income_band,
        "tier": p.tier,
        "subscribed": s.subscribed,
        "followed_at": s.followed_at,
        "source": s.source,
        "last_active_at": s.last_active_at,
        "orders_count": s.purchases.count,
        "orders_total_fen": s.purchases.total_fen,
        "first_order_at": s.purchases.first_at,
        "last_order_at": s.purchases.last_at,
        "wecom_contact": s.wecom_contact,
    }
    if name in table:
        return table[name]
    return member.attributes.get(name)


def _cmp(x: Any, op: str, vals: list[Any]) -> bool:
    if x is None:
        return False
    if op == "exists":
        return True
    if op in ("in", "not_in"):
        comparable = [v for v in vals if _cls(v) == _cls(x)]
        hit = any(x == v for v in comparable)
        if op == "in":
            return hit
        return bool(comparable) and not hit
    if any(_cls(v) != _cls(x) for v in vals):
        return False
    v = vals[0]
    if op == "eq":
        return bool(x == v)
    if op == "ne":
        return bool(x != v)
    if op == "lt":
        return bool(x < v)
    if op == "le":
        return bool(x <= v)
    if op == "gt":
        return bool(x > v)
    if op == "ge":
        return bool(x >= v)
    if op == "between":
        return bool(vals[0] <= x <= vals[1])
    if op == "contains":
        return v in x
    if op == "startswith":
        return bool(x.startswith(v))
    raise AssertionError(op)


def interpret(seg: Segment, member: Member, events: Sequence[Event], as_of: dt.datetime) -> bool:
    """Whether ``member`` (with ``events``) is in ``seg`` as of ``as_of``."""
    if isinstance(seg, Const):
        return seg.value
    if isinstance(seg, And):
        return all(interpret(p, member, events, as_of) for p in seg.parts)
    if isinstance(seg, Or):
        return any(interpret(p, member, events, as_of) for p in seg.parts)
    if isinstance(seg, Not):
        return not interpret(seg.part, member, events, as_of)
    if isinstance(seg, Cmp):
        vals = [
            as_of - dt.timedelta(seconds=v.seconds) if isinstance(v, RelTime) else v
            for v in seg.values
        ]
        return _cmp(_field(member, seg.field, as_of, events), seg.op, vals)
    if isinstance(seg, Tags):
        have = [n in member.tags for n in seg.names]
        return any(have) if seg.mode == "any" else all(have)
    if isinstance(seg, Did):
        n = 0
        for e in events:
            if e.member_id != member.id or e.type != seg.event or e.at > as_of:
                continue
            if seg.within is not None and e.at <= as_of - dt.timedelta(seconds=seg.within):
                continue
            if all(
                k in e.properties and _cls(e.properties[k]) == _cls(v) and e.properties[k] == v
                for k, v in seg.where
            ):
                n += 1
        return n >= seg.at_least and (seg.at_most is None or n <= seg.at_most)
    if isinstance(seg, Sample):
        h = int.from_bytes(hashlib.sha256(member.id.encode()).digest()[:8], "big") % P
        d = hashlib.sha256(b"membermkt-sample:" + seg.salt.encode()).digest()
        a = int.from_bytes(d[:8], "big") % (P - 1) + 1
        b = int.from_bytes(d[8:16], "big") % P
        return ((a * h + b) % P) % 10000 < round(seg.fraction * 10000)
    raise AssertionError(f"oracle does not know {seg!r}")
