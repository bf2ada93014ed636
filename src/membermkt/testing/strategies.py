"""Hypothesis strategies for members, events and segments (public: use them in your tests).

The value domain is deliberately small — a few cities (with case variants), tags with
``%`` and ``_`` in them, custom attributes whose values change type between members, event
times on an hourly grid around :data:`AS_OF` (some after it), windows on the same grid — so
that edge cases (equal values, boundaries, missing values, type mismatches, LIKE wildcards)
actually occur. Every backend must agree on every segment these strategies generate.

Example::

    from hypothesis import given
    from membermkt.testing import strategies as mst

    @given(mst.histories(), mst.segments())
    def test_my_backend(history, segment):
        members, events = history
        ...
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from hypothesis import strategies as st

from membermkt.core.events import Event
from membermkt.core.identity import Identity
from membermkt.core.members import Consent, Member, Profile
from membermkt.core.segments import (
    FALSE,
    TRUE,
    And,
    Cmp,
    Did,
    Not,
    Or,
    RelTime,
    Sample,
    Segment,
    Tags,
)

__all__ = [
    "AS_OF",
    "ATTRIBUTE_NAMES",
    "CITIES",
    "EVENT_TYPES",
    "TAG_NAMES",
    "cases",
    "events",
    "histories",
    "leaves",
    "member_ids",
    "members",
    "profiles",
    "segments",
]

AS_OF = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
"""The evaluation time the strategies are centred on."""

MEMBER_IDS = tuple(f"m{i:02d}" for i in range(24))
CITIES = ("Shanghai", "Hangzhou", "Beijing", "shanghai", "Shang")
PROVINCES = ("Zhejiang", "Guangdong")
INCOME_BANDS = ("<5k", "5k-10k", "10k+")
TIERS = ("gold", "silver")
TAG_NAMES = ("vip", "new", "durian", "a_b", "50%", "Vip")
ATTRIBUTE_NAMES = ("level", "score", "nick", "flag")
SOURCES = ("parcel", "store", "platform", "parcel_2")
STAFF = ("zhangsan", "lisi")
CATEGORIES = ("durian", "apple", "Durian")
MENU_KEYS = ("A", "B", "C")
EVENT_TYPES = (
    "follow",
    "unfollow",
    "scan",
    "menu_click",
    "view",
    "message",
    "purchase",
    "redpacket_claim",
    "contact_added",
    "contact_deleted",
)

HOT_EVENT_TYPES = ("purchase", "view", "menu_click", "follow")
"""Types drawn more often, so behaviour leaves and events meet."""

# birthdays around the ages the segments ask about, including Feb 29 and the as_of day
BIRTHDAYS = (
    dt.date(2000, 2, 29),
    dt.date(2001, 3, 1),
    dt.date(2001, 2, 28),
    dt.date(1996, 3, 1),
    dt.date(1990, 6, 15),
    dt.date(1986, 3, 1),
    dt.date(1986, 3, 2),
    dt.date(2010, 1, 1),
)

HOUR = dt.timedelta(hours=1)

scalar_values = st.sampled_from([0, 1, 3, 0.5, 3.0, "3", "a", "A", "a%", "a_b", "", True, False])


def member_ids() -> st.SearchStrategy[str]:
    """Ids from a small pool (so events and members collide)."""
    return st.sampled_from(MEMBER_IDS)


GRID_HOURS = (-300, -240, -72, -48, -24, -2, -1, 0, 1, 24)
"""Event times are :data:`AS_OF` plus one of these hours; windows and relative times use
their magnitudes, so events fall exactly on window boundaries often."""
WINDOW_HOURS = (1, 2, 24, 48, 72, 240)


def times() -> st.SearchStrategy[dt.datetime]:
    """Times on a coarse grid from ~12 days before :data:`AS_OF` to a day after."""
    return st.sampled_from(GRID_HOURS).map(lambda h: AS_OF + h * HOUR)


def profiles() -> st.SearchStrategy[Profile]:
    """Profiles with every field sometimes missing."""
    return st.builds(
        Profile,
        gender=st.sampled_from([None, "male", "female"]),
        city=st.sampled_from((None, *CITIES)),
        province=st.sampled_from((None, *PROVINCES)),
        country=st.sampled_from([None, "CN"]),
        birthday=st.sampled_from((None, *BIRTHDAYS)),
        income_band=st.sampled_from((None, *INCOME_BANDS)),
        tier=st.sampled_from((None, *TIERS)),
    )


def members(ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Member]:
    """Members with profiles, tags, custom attributes (mixed types), identities, consent."""
    return st.builds(
        Member,
        ids if ids is not None else member_ids(),
        profile=profiles(),
        tags=st.frozensets(st.sampled_from(TAG_NAMES), max_size=3),
        attributes=st.dictionaries(st.sampled_from(ATTRIBUTE_NAMES), scalar_values, max_size=3),
        identities=st.lists(
            st.sampled_from(["o1", "o2", "o3"]).map(lambda o: Identity.openid("wxapp", o)),
            max_size=1,
        ),
        consent=st.builds(Consent, marketing=st.booleans()),
    )


def _event_properties(etype: str) -> st.SearchStrategy[dict[str, Any]]:
    if etype == "purchase":
        return st.fixed_dictionaries(
            {
                "order_id": st.sampled_from(["o1", "o2", "o3"]),
                "amount_fen": st.sampled_from([0, 990, 1990, 10000]),
            },
            optional={"category": st.sampled_from(CATEGORIES)},
        )
    if etype == "contact_added":
        return st.fixed_dictionaries(
            {},
            optional={
                "source": st.sampled_from(SOURCES),
                "staff": st.sampled_from(STAFF),
                "state": st.sampled_from(SOURCES),
            },
        )
    if etype == "contact_deleted":
        return st.fixed_dictionaries({}, optional={"staff": st.sampled_from(STAFF)})
    if etype == "message":
        return st.fixed_dictionaries(
            {},
            optional={"direction": st.sampled_from(["in", "out"]), "staff": st.sampled_from(STAFF)},
        )
    if etype in ("follow", "scan"):
        return st.fixed_dictionaries({}, optional={"source": st.sampled_from(SOURCES)})
    if etype == "menu_click":
        return st.fixed_dictionaries({"key": st.sampled_from(MENU_KEYS)})
    if etype == "view":
        return st.fixed_dictionaries(
            {"url": st.sampled_from(["/a", "/b"])},
            optional={"dwell_seconds": st.sampled_from([1, 5, 30])},
        )
    return st.fixed_dictionaries({}, optional={"flag": scalar_values})


@st.composite
def _event(draw: st.DrawFn, ids: st.SearchStrategy[str]) -> Event:
    etype = draw(st.one_of(st.sampled_from(EVENT_TYPES), st.sampled_from(HOT_EVENT_TYPES)))
    return Event(
        draw(ids),
        etype,
        draw(times()),
        draw(_event_properties(etype)),
        key=draw(st.one_of(st.none(), st.sampled_from([f"k{i}" for i in range(30)]))),
    )


def events(ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Event]:
    """Events of every common type with realistic properties; keys from a small pool (so
    duplicates happen), times around :data:`AS_OF` (some after it)."""
    return _event(ids if ids is not None else member_ids())


@st.composite
def histories(
    draw: st.DrawFn, max_members: int = 12, max_events: int = 40
) -> tuple[list[Member], list[Event]]:
    """A consistent data set: unique members and events that belong to them.

    An identity belongs to one member (stores refuse an upsert listing another member's
    identity): when two drawn members list one, the first keeps it.
    Events with the same key are de-duplicated the way stores do (first one wins), so the
    returned list is exactly what a store would keep.
    """
    drawn = draw(st.lists(members(), max_size=max_members, unique_by=lambda m: m.id))
    held: set[str] = set()
    ms = []
    for m in drawn:
        own = tuple(i for i in m.identities if i.token not in held)
        held.update(i.token for i in own)
        ms.append(m if own == m.identities else attrs.evolve(m, identities=own))
    if not ms:
        return [], []
    ids = st.sampled_from([m.id for m in ms])
    evs = draw(st.lists(events(ids), max_size=max_events))
    seen: set[str] = set()
    kept: list[Event] = []
    for e in evs:
        if e.key is not None:
            if e.key in seen:
                continue
            seen.add(e.key)
        kept.append(e)
    return ms, kept


# --------------------------------------------------------------------------- segments


def _cmp_on(
    field: str, values: st.SearchStrategy[Any], *, ordered: bool = True
) -> st.SearchStrategy[Segment]:
    ops = ["eq", "ne", "lt", "le", "gt", "ge"] if ordered else ["eq", "ne"]
    single = st.sampled_from(ops).flatmap(lambda op: values.map(lambda v: Cmp(field, op, (v,))))
    many = st.sampled_from(["in", "not_in"]).flatmap(
        lambda op: st.lists(values, min_size=1, max_size=3, unique=True).map(
            lambda vs: _safe_cmp(field, op, vs)
        )
    )
    between = st.tuples(values, values).map(lambda lh: _safe_cmp(field, "between", list(lh)))
    exists = st.just(Cmp(field, "exists", ()))
    if not ordered:
        return st.one_of(single, many, exists)
    return st.one_of(single, many, between, exists)


def _safe_cmp(field: str, op: str, values: list[Any]) -> Segment:
    from membermkt.core.segments import _make_cmp, _type_class

    if op == "between" and _type_class(values[0]) != _type_class(values[1]):
        return Cmp(field, "exists", ())
    return _make_cmp(field, op, values)


def _str_cmp(field: str, pool: tuple[str, ...]) -> st.SearchStrategy[Segment]:
    return st.one_of(
        _cmp_on(field, st.sampled_from(pool)),
        st.sampled_from(["contains", "startswith"]).flatmap(
            lambda op: st.sampled_from(["Sh", "sh", "ang", "%", "_", "", "a_", "Shanghai"]).map(
                lambda v: Cmp(field, op, (v,))
            )
        ),
    )


def _time_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        times(),
        st.sampled_from((0, *WINDOW_HOURS)).map(lambda h: RelTime(h * 3600)),
    )


def _custom_cmp() -> st.SearchStrategy[Segment]:
    def one(name: str) -> st.SearchStrategy[Segment]:
        return st.one_of(
            _cmp_on(name, scalar_values),
            st.sampled_from(["contains", "startswith"]).flatmap(
                lambda op: st.sampled_from(["a", "A", "%", "_", "3", ""]).map(
                    lambda v: Cmp(name, op, (v,))
                )
            ),
        )

    return st.sampled_from(ATTRIBUTE_NAMES).flatmap(one)


def _did() -> st.SearchStrategy[Segment]:
    return st.builds(
        Did,
        st.sampled_from(HOT_EVENT_TYPES),
        st.one_of(
            st.just(()),
            st.sampled_from(
                [
                    (("category", "durian"),),
                    (("key", "A"),),
                    (("source", "parcel"),),
                    (("amount_fen", 1990),),
                    (("flag", True),),
                    (("flag", 1),),
                ]
            ),
        ),
        st.sampled_from([1, 1, 1, 2, 0, 3]),
        st.sampled_from([None, None, None, 0, 1, 2, 3]),
        st.sampled_from([None, *WINDOW_HOURS]).map(lambda h: None if h is None else h * 3600),
    )


def leaves() -> st.SearchStrategy[Segment]:
    """Every leaf kind over the strategies' value domain (behaviour leaves weighted up)."""
    comparisons = st.one_of(
        _cmp_on("gender", st.sampled_from(["male", "female"])),
        _str_cmp("city", CITIES),
        _str_cmp("source", SOURCES),
        _cmp_on("tier", st.sampled_from(TIERS)),
        _cmp_on("birthday", st.sampled_from(BIRTHDAYS)),
        _cmp_on("age", st.integers(14, 41)),
        _cmp_on("subscribed", st.booleans(), ordered=False),
        _cmp_on("wecom_contact", st.booleans(), ordered=False),
        _cmp_on("last_active_at", _time_values()),
        _cmp_on("followed_at", _time_values()),
        _cmp_on("last_order_at", _time_values()),
        _cmp_on("orders_count", st.integers(0, 4)),
        _cmp_on("orders_total_fen", st.sampled_from([0, 990, 1990, 5000])),
    )
    groups: list[st.SearchStrategy[Segment]] = [
        st.sampled_from([TRUE, FALSE]),
        comparisons,
        comparisons,
        _custom_cmp(),
        st.builds(
            Tags,
            st.sampled_from(["any", "all"]),
            st.lists(st.sampled_from(TAG_NAMES), min_size=1, max_size=3).map(tuple),
        ),
        _did(),
        _did(),
        st.builds(
            Sample,
            st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
            st.sampled_from(["", "c1", "holdout"]),
        ),
    ]
    # choose the group first (one_of would flatten the nested choices and drown the
    # behaviour leaves among the dozens of comparison variants)
    return st.sampled_from(groups).flatmap(lambda g: g)


def segments(max_leaves: int = 12) -> st.SearchStrategy[Segment]:
    """Random segments: leaves of every kind nested under And/Or/Not (bounded size)."""
    return st.recursive(leaves(), _Combine(), max_leaves=max_leaves)


class _Combine:
    """The ``extend`` of :func:`segments`: And/Or of 2-3 children, or Not of one.

    A callable object rather than a lambda on purpose: Hypothesis checks that ``extend``
    uses its argument by re-reading the function's source file (``inspect.getsource``);
    if that file changed on disk since import (a checkout updated while tests run), it
    parses the wrong lines and raises a ``HypothesisDeprecationWarning``. An object has no
    source to misread, so the strategy is the same whatever happens to the file.
    """

    def __call__(self, children: st.SearchStrategy[Segment]) -> st.SearchStrategy[Segment]:
        return st.one_of(
            st.lists(children, min_size=2, max_size=3).map(_and),
            st.lists(children, min_size=2, max_size=3).map(_or),
            children.map(Not),
        )

    def __repr__(self) -> str:
        return "And/Or/Not of children"


def _and(parts: list[Segment]) -> Segment:
    return And(tuple(parts))


def _or(parts: list[Segment]) -> Segment:
    return Or(tuple(parts))


def _planted_events(
    draw: st.DrawFn, seg: Segment, ids: list[str], as_of: dt.datetime
) -> list[Event]:
    """Events aimed at the segment's behaviour leaves: their type and properties, at the
    window's edges (``as_of``, just after it, ``as_of - within`` and one hour either side)."""
    from membermkt.core.segments import walk

    out: list[Event] = []
    for node in walk(seg):
        if not isinstance(node, Did) or not draw(st.booleans()):
            continue
        edges = [as_of, as_of + HOUR, as_of - HOUR]
        if node.within is not None:
            low = as_of - dt.timedelta(seconds=node.within)
            edges += [low, low + HOUR, low - HOUR]
        props = dict(node.where)
        if node.event == "purchase":
            props.setdefault("amount_fen", 990)
            if not isinstance(props["amount_fen"], int) or isinstance(props["amount_fen"], bool):
                props["amount_fen"] = 990
        # distinct edges, one event each: a pile-up on one edge would push counts past
        # both readings of a boundary and hide the difference
        edge_times = draw(st.lists(st.sampled_from(edges), min_size=1, max_size=3, unique=True))
        out.extend(
            Event(draw(st.sampled_from(ids)), node.event, at, props if draw(st.booleans()) else {})
            for at in edge_times
        )
    return out


def _confusables(v: Any) -> list[Any]:
    """Values a careless backend would mistake for ``v`` (other type, other case...)."""
    if isinstance(v, bool):
        return [int(v), float(v), str(int(v)), v]
    if isinstance(v, int):
        out: list[Any] = [float(v), str(v), v, v + 1]
        if v in (0, 1):
            out.insert(0, bool(v))
        return out
    if isinstance(v, float):
        return [int(v), str(v), v] if v == int(v) else [str(v), v]
    if isinstance(v, str):
        return [v, v.upper(), v.lower(), v + "x", v[:-1] or "z", "x" + v]
    return [v]


def _plant_attributes(draw: st.DrawFn, seg: Segment, members_: list[Member]) -> list[Member]:
    """Give some members custom attribute values confusable with the segment's operands."""
    import attrs as _attrs

    from membermkt.core.segments import FIELD_TYPES, walk

    out = list(members_)
    for node in walk(seg):
        if not isinstance(node, Cmp) or node.field in FIELD_TYPES or not node.values:
            continue
        if not draw(st.booleans()):
            continue
        i = draw(st.integers(0, len(out) - 1))
        options = _confusables(draw(st.sampled_from(node.values)))
        # the first option is the most dangerous one: pick it half of the time
        value = options[0] if draw(st.booleans()) else draw(st.sampled_from(options))
        attributes = dict(out[i].attributes)
        attributes[node.field] = value
        out[i] = _attrs.evolve(out[i], attributes=attributes)
    return out


@st.composite
def cases(
    draw: st.DrawFn, max_members: int = 12, max_events: int = 40, max_leaves: int = 12
) -> tuple[list[Member], list[Event], Segment]:
    """A history and a segment drawn together: besides random events, events are planted on
    the edges of the segment's behaviour windows, so boundary bugs cannot hide."""
    seg = draw(segments(max_leaves=max_leaves))
    members_, events_ = draw(histories(max_members=max_members, max_events=max_events))
    if members_:
        events_ = events_ + _planted_events(draw, seg, [m.id for m in members_], AS_OF)
        members_ = _plant_attributes(draw, seg, members_)
    return members_, events_, seg
