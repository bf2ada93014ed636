"""Members rebuilt from SQL rows on the read hot path (``get_members``, ``members_of``):
values read back from the store were validated when written, so they are assembled into
the frozen core values without re-running every validator and converter (not public API).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from membermkt.core._frozen import FrozenMap, Scalar
from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.members import Consent, Member, MemberState, Profile, PurchaseStats
from membermkt.stores.sql._codec import PROFILE_COLS, STATE_COLS, _tb_in
from membermkt.stores.sql.compile import EPOCH

__all__ = ["MEMBER_READ_COLS", "member_from_values"]

MEMBER_READ_COLS: tuple[str, ...] = ("id", *PROFILE_COLS, "marketing", "opted_out", *STATE_COLS)
"""The member columns :func:`member_from_values` reads, in its order."""


def _trusted(cls: type, names: Sequence[str]) -> Callable[..., Any]:
    """A builder of ``cls`` from positional values in ``names`` order that skips the
    validators. ``names`` must be exactly the class's fields (checked here, at import, so a
    field added to the class fails loudly instead of leaving a slot unset)."""
    fields = tuple(a.name for a in attrs.fields(cls))
    slots = tuple(s for s in getattr(cls, "__slots__", ()) if s != "__weakref__")
    if tuple(names) != fields or slots != fields:
        raise AssertionError(f"{cls.__name__} fields changed: {fields} != {tuple(names)}")
    args = ", ".join(f"v{i}" for i in range(len(fields)))
    body = "".join(f"    put(inst, {name!r}, v{i})\n" for i, name in enumerate(fields))
    src = f"def build({args}):\n    inst = new(cls)\n{body}    return inst\n"
    scope: dict[str, Any] = {"new": object.__new__, "put": object.__setattr__, "cls": cls}
    exec(src, scope)  # unrolled like attrs' own generated __init__, minus the validators
    build: Callable[..., Any] = scope["build"]
    return build


_member = _trusted(
    Member, ("id", "profile", "tags", "attributes", "identities", "state", "consent")
)
_identity = _trusted(Identity, ("kind", "value", "namespace"))
_profile = _trusted(
    Profile, ("gender", "city", "province", "country", "birthday", "income_band", "tier")
)
_state = _trusted(
    MemberState,
    (
        "subscribed",
        "subscription_version",
        "followed_at",
        "source",
        "source_version",
        "last_active_at",
        "purchases",
        "wecom_contact",
        "contact_version",
        "last_event_at",
        "relations",
    ),
)
_purchases = _trusted(PurchaseStats, ("count", "total_fen", "first_at", "last_at", "categories"))
_KINDS = {k.value: k for k in IdentityKind}
_NO_PROFILE = Profile()
_NO_PURCHASES = PurchaseStats()
_NO_STATE = MemberState()
_EMPTY_VALUES = (None,) * 8 + (0, 0) + (None,) * 8
_CONSENT = Consent()
_NO_ATTRIBUTES: FrozenMap[str, Scalar] = FrozenMap()
_NO_TAGS: frozenset[str] = frozenset()
_US = dt.timedelta(microseconds=1)
_N_PROFILE = len(PROFILE_COLS)
_STATE_AT = 1 + _N_PROFILE + 2


def _when(us: Any) -> dt.datetime | None:
    return None if us is None else EPOCH + _US * int(us)


def _version(at: Any, tb: Any) -> tuple[dt.datetime, str] | None:
    if at is None:
        return None
    return (EPOCH + _US * int(at), _tb_in(tb) if tb and "\\" in tb else (tb or ""))


def _state_from(v: Sequence[Any]) -> MemberState:
    """The :class:`MemberState` of the ``STATE_COLS`` values ``v`` (same result as
    ``_rows.state_from_row``)."""
    (
        subscribed,
        sub_at,
        sub_tb,
        followed_at,
        source,
        source_at,
        source_tb,
        last_active_at,
        orders_count,
        orders_total,
        first_order_at,
        last_order_at,
        categories,
        wecom_contact,
        contact_at,
        contact_tb,
        last_event_at,
        relations,
    ) = v
    if tuple(v) == _EMPTY_VALUES:
        return _NO_STATE
    if orders_count or orders_total or first_order_at is not None or last_order_at is not None:
        purchases = _purchases(
            int(orders_count),
            int(orders_total),
            _when(first_order_at),
            _when(last_order_at),
            frozenset(json.loads(categories)) if categories else frozenset(),
        )
    elif categories:
        purchases = PurchaseStats(categories=frozenset(json.loads(categories)))
    else:
        purchases = _NO_PURCHASES
    rels: tuple[Any, ...] = ()
    if relations:
        from membermkt.stores.sql._rows import _relations_in

        rels = _relations_in(relations)
    state: MemberState = _state(
        None if subscribed is None else bool(subscribed),
        _version(sub_at, sub_tb),
        _when(followed_at),
        source,
        _version(source_at, source_tb),
        _when(last_active_at),
        purchases,
        None if wecom_contact is None else bool(wecom_contact),
        _version(contact_at, contact_tb),
        _when(last_event_at),
        rels,
    )
    return state


def _attr(kind: str, s: Any, i: Any, n: Any) -> Scalar:
    if kind == "b":
        return bool(i)
    if kind == "i":
        return int(i)
    if kind == "f":
        return float(n)
    return str(s)


def member_from_values(
    r: Sequence[Any],
    tags: Iterable[str],
    attributes: Iterable[Sequence[Any]],
    tokens: Sequence[str],
) -> Member:
    """Rebuild a :class:`Member` from its :data:`MEMBER_READ_COLS` values, its tags, its
    attribute rows ``(name, kind, s, i, n)`` and its identity tokens — equal to what
    ``_rows.member_from_rows`` builds from the same rows."""
    gender, city, province, country, birthday, income_band, tier = r[1 : 1 + _N_PROFILE]
    if (
        gender is None
        and city is None
        and province is None
        and country is None
        and birthday is None
        and income_band is None
        and tier is None
    ):
        profile = _NO_PROFILE
    else:
        profile = _profile(
            gender,
            city,
            province,
            country,
            None if birthday is None else dt.date.fromordinal(int(birthday)),
            income_band,
            tier,
        )
    marketing, opted_out = r[1 + _N_PROFILE], r[2 + _N_PROFILE]
    if marketing and not opted_out:
        consent = _CONSENT
    else:
        consent = Consent(
            marketing=bool(marketing),
            opted_out_channels=json.loads(opted_out) if opted_out else (),
        )
    idents = []
    for token in sorted(tokens) if len(tokens) > 1 else tokens:
        kind, namespace, value = token.split(":", 2)
        known = _KINDS.get(kind)
        # a kind this version does not know: the checked constructor names it
        idents.append(
            Identity.from_token(token) if known is None else _identity(known, value, namespace)
        )
    tag_set = frozenset(tags)
    values = {a[0]: _attr(a[1], a[2], a[3], a[4]) for a in attributes}
    member: Member = _member(
        r[0],
        profile,
        tag_set if tag_set else _NO_TAGS,
        FrozenMap(values) if values else _NO_ATTRIBUTES,
        tuple(idents),
        _state_from(r[_STATE_AT:]),
        consent,
    )
    return member
