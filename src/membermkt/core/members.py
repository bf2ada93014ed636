"""Members: one per person, with a profile, tags, custom attributes, identities and state.

``Member`` is a frozen value. Its :class:`MemberState` is what events change (subscription,
acquisition source, last activity, purchase stats); it is produced by the event fold in
:mod:`membermkt.core.events` and never edited by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from membermkt.core._frozen import FrozenMap, Scalar, check_scalar
from membermkt.core.identity import Identity
from membermkt.errors import UsageError

__all__ = [
    "DERIVED_FIELDS",
    "PROFILE_FIELDS",
    "RESERVED_NAMES",
    "Consent",
    "Member",
    "MemberState",
    "Profile",
    "PurchaseStats",
    "Relation",
]

GENDERS = frozenset({"male", "female"})


def _opt_str(field: str) -> Any:
    def check(instance: object, attribute: object, value: Any) -> None:
        if value is not None and (not isinstance(value, str) or not value):
            raise UsageError(f"Profile.{field} must be a non-empty str or None, got {value!r}")

    return check


def _check_gender(instance: object, attribute: object, value: Any) -> None:
    if value is not None and value not in GENDERS:
        raise UsageError(f"Profile.gender must be 'male', 'female' or None, got {value!r}")


def _check_birthday(instance: object, attribute: object, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise UsageError(f"Profile.birthday must be a datetime.date or None, got {value!r}")


@attrs.frozen(slots=True, kw_only=True)
class Profile:
    """What a person tells us about themselves (or what the platform does).

    Every field is optional; a missing value makes every comparison on it false (and its
    negation true), see :doc:`segments`.
    """

    gender: str | None = attrs.field(default=None, validator=_check_gender)
    city: str | None = attrs.field(default=None, validator=_opt_str("city"))
    province: str | None = attrs.field(default=None, validator=_opt_str("province"))
    country: str | None = attrs.field(default=None, validator=_opt_str("country"))
    birthday: dt.date | None = attrs.field(default=None, validator=_check_birthday)
    income_band: str | None = attrs.field(default=None, validator=_opt_str("income_band"))
    tier: str | None = attrs.field(default=None, validator=_opt_str("tier"))


PROFILE_FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(Profile))
"""The profile field names, usable in ``attr(name)``."""

DERIVED_FIELDS: tuple[str, ...] = (
    "age",
    "subscribed",
    "followed_at",
    "source",
    "last_active_at",
    "orders_count",
    "orders_total_fen",
    "first_order_at",
    "last_order_at",
    "wecom_contact",
)
"""Fields computed from the member's state (and ``age`` from birthday and ``as_of``)."""

RESERVED_NAMES = frozenset(PROFILE_FIELDS) | frozenset(DERIVED_FIELDS) | {"id", "tags"}
"""Names a custom attribute may not use."""


def _aware(owner: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dt.datetime) or value.utcoffset() is None:
            raise UsageError(
                f"{owner}.{attribute.name} must be a timezone-aware datetime, got {value!r}"
            )

    return check


def _strset(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(slots=True, kw_only=True)
class PurchaseStats:
    """Aggregates of a member's purchase events (a commutative monoid under :meth:`combine`).

    Attributes:
        count: number of purchase events.
        total_fen: sum of ``amount_fen``, in fen (integer; money is never a float).
        first_at / last_at: earliest / latest purchase time.
        categories: every category bought at least once.
    """

    count: int = 0
    total_fen: int = 0
    first_at: dt.datetime | None = attrs.field(default=None, validator=_aware("PurchaseStats"))
    last_at: dt.datetime | None = attrs.field(default=None, validator=_aware("PurchaseStats"))
    categories: frozenset[str] = attrs.field(default=frozenset(), converter=_strset)

    def combine(self, other: PurchaseStats) -> PurchaseStats:
        """The stats of both sets of purchases together (order does not matter)."""
        return PurchaseStats(
            count=self.count + other.count,
            total_fen=self.total_fen + other.total_fen,
            first_at=_min_dt(self.first_at, other.first_at),
            last_at=_max_dt(self.last_at, other.last_at),
            categories=frozenset(self.categories | other.categories),
        )


def _min_dt(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _max_dt(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


Version = tuple[dt.datetime, str]
"""A last-writer-wins version: (event time, tie-break key). Larger wins."""


def _lww(
    a: tuple[Version, Any] | None, b: tuple[Version, Any] | None, *, first: bool = False
) -> tuple[Version, Any] | None:
    if a is None:
        return b
    if b is None:
        return a
    if first:
        return a if a[0] <= b[0] else b
    return a if a[0] >= b[0] else b


@attrs.frozen(slots=True, kw_only=True)
class Relation:
    """One WeCom contact relation: a (staff, customer) pair, folded from its
    ``contact_added`` / ``contact_deleted`` events (a commutative monoid per staff).

    Attributes:
        staff: the staff userid (``""`` for events that did not name one).
        added / deleted: version (time, tie-break) of the latest add / delete.
        state: the ``state`` (contact-way) of the latest add.
    """

    staff: str
    added: Version | None = None
    state: str | None = None
    deleted: Version | None = None

    @property
    def live(self) -> bool:
        """Whether the relation holds: added after its last deletion (at the same instant,
        the deletion wins)."""
        return self.added is not None and (self.deleted is None or self.added > self.deleted)

    @property
    def added_at(self) -> dt.datetime | None:
        """Time of the latest add."""
        return None if self.added is None else self.added[0]

    @property
    def deleted_at(self) -> dt.datetime | None:
        """Time of the latest deletion."""
        return None if self.deleted is None else self.deleted[0]

    def combine(self, other: Relation) -> Relation:
        """Both relations' events together (same staff)."""
        add = _lww(
            (self.added, self.state) if self.added else None,
            (other.added, other.state) if other.added else None,
        )
        dele = self.deleted if other.deleted is None else other.deleted
        if self.deleted is not None and other.deleted is not None:
            dele = max(self.deleted, other.deleted)
        return Relation(
            staff=self.staff,
            added=add[0] if add else None,
            state=add[1] if add else None,
            deleted=dele,
        )


def _combine_relations(a: tuple[Relation, ...], b: tuple[Relation, ...]) -> tuple[Relation, ...]:
    if not b:
        return a
    if not a:
        return b
    out = {r.staff: r for r in a}
    for r in b:
        mine = out.get(r.staff)
        out[r.staff] = r if mine is None else mine.combine(r)
    return tuple(out[k] for k in sorted(out))


@attrs.frozen(slots=True, kw_only=True)
class MemberState:
    """The part of a member that events change. Produced by the fold; a commutative monoid.

    Attributes:
        subscribed: following the official account (``None``: no follow/unfollow seen).
        subscription_version: (time, tie-break) of the event that decided ``subscribed``
            (last writer wins by event time).
        followed_at: time of that deciding event when it was a follow.
        source: acquisition source: the ``source`` property of the *earliest* acquisition
            event (first touch), e.g. a QR scene or a WeCom contact-way state.
        source_version: (time, tie-break) of that event.
        last_active_at: latest interaction (see ``INTERACTION_TYPES``).
        purchases: :class:`PurchaseStats`.
        wecom_contact: a WeCom contact of some staff: any :attr:`relations` live
            (``None``: no contact event seen).
        contact_version: version of the latest contact event of any staff.
        relations: WeCom contact relations per staff (sorted by staff).
        last_event_at: the latest time of any folded event. A stored state is a cache of the
            fold that answers for any ``as_of`` at or after this time; for an earlier
            ``as_of`` the state is refolded from the events at or before it
            (:func:`membermkt.core.events.state_as_of`).
    """

    subscribed: bool | None = None
    subscription_version: Version | None = None
    followed_at: dt.datetime | None = attrs.field(default=None, validator=_aware("MemberState"))
    source: str | None = None
    source_version: Version | None = None
    last_active_at: dt.datetime | None = attrs.field(default=None, validator=_aware("MemberState"))
    purchases: PurchaseStats = PurchaseStats()
    wecom_contact: bool | None = None
    contact_version: Version | None = None
    last_event_at: dt.datetime | None = attrs.field(default=None, validator=_aware("MemberState"))
    relations: tuple[Relation, ...] = ()

    @property
    def live_staff(self) -> tuple[str, ...]:
        """Staff userids with a live relation (who can reach the customer on WeCom)."""
        return tuple(r.staff for r in self.relations if r.live)

    @property
    def wecom_churned_at(self) -> dt.datetime | None:
        """When the customer's last WeCom relation ended (``None`` while one is live or
        when there never was one)."""
        if not self.relations or any(r.live for r in self.relations):
            return None
        ends = [r.deleted_at for r in self.relations if r.deleted_at is not None]
        return max(ends) if ends else None

    def combine(self, other: MemberState) -> MemberState:
        """Merge two states (the fold of two disjoint event sets). Commutative, associative."""
        sub = _lww(
            (self.subscription_version, (self.subscribed, self.followed_at))
            if self.subscription_version
            else None,
            (other.subscription_version, (other.subscribed, other.followed_at))
            if other.subscription_version
            else None,
        )
        src = _lww(
            (self.source_version, self.source) if self.source_version else None,
            (other.source_version, other.source) if other.source_version else None,
            first=True,
        )
        relations = _combine_relations(self.relations, other.relations)
        con_version = self.contact_version
        if other.contact_version is not None and (
            con_version is None or other.contact_version > con_version
        ):
            con_version = other.contact_version
        return MemberState(
            subscribed=sub[1][0] if sub else None,
            subscription_version=sub[0] if sub else None,
            followed_at=sub[1][1] if sub else None,
            source=src[1] if src else None,
            source_version=src[0] if src else None,
            last_active_at=_max_dt(self.last_active_at, other.last_active_at),
            purchases=self.purchases.combine(other.purchases),
            wecom_contact=any(r.live for r in relations) if relations else None,
            contact_version=con_version,
            last_event_at=_max_dt(self.last_event_at, other.last_event_at),
            relations=relations,
        )


@attrs.frozen(slots=True, kw_only=True)
class Consent:
    """What the member allows.

    Attributes:
        marketing: ``False`` means do-not-contact: no campaign reaches this member.
        opted_out_channels: channel names (``"wechat.mass"``, ...) the member refused.
    """

    marketing: bool = True
    opted_out_channels: frozenset[str] = attrs.field(default=frozenset(), converter=_strset)

    def allows(self, channel: str) -> bool:
        """Whether a campaign on ``channel`` may reach the member."""
        return self.marketing and channel not in self.opted_out_channels


def _check_id(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"Member.id must be a non-empty str, got {value!r}")
    if len(value) > 128:
        raise UsageError(f"Member.id is too long ({len(value)} > 128 characters)")


def _to_tags(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise UsageError(f"Member.tags must be a collection of str, not a str ({value!r})")
    tags = frozenset(value)
    for t in tags:
        if not isinstance(t, str) or not t:
            raise UsageError(f"Member.tags must hold non-empty str, got {t!r}")
    return tags


def _to_attributes(value: Mapping[str, Scalar]) -> FrozenMap[str, Scalar]:
    if not isinstance(value, Mapping):
        raise UsageError(f"Member.attributes must be a mapping, got {type(value).__name__}")
    for k, v in value.items():
        check_scalar("Member.attributes", k, v)
        if k in RESERVED_NAMES:
            raise UsageError(
                f"custom attribute {k!r} would shadow a built-in field; choose another name"
            )
    return value if isinstance(value, FrozenMap) else FrozenMap(value)


def _to_identities(value: Iterable[Identity]) -> tuple[Identity, ...]:
    out: list[Identity] = []
    for i in value:
        if not isinstance(i, Identity):
            raise UsageError(f"Member.identities must hold Identity values, got {i!r}")
        if i not in out:
            out.append(i)
    return tuple(sorted(out, key=lambda i: i.token))


@attrs.frozen(slots=True)
class Member:
    """One person.

    Args:
        id: a non-empty str, stable for the person.
        profile: a :class:`Profile`.
        tags: tag names.
        attributes: custom attributes, str → str | int | float | bool; names may not shadow
            profile or derived fields.
        identities: :class:`~membermkt.core.identity.Identity` values (deduplicated, sorted).
        state: folded from events (keyword-only); see :func:`membermkt.core.events.apply`.
        consent: :class:`Consent` (keyword-only).

    Raises:
        UsageError: on any invalid field, naming it.
    """

    id: str = attrs.field(validator=_check_id)
    profile: Profile = attrs.field(default=Profile())
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=_to_tags)
    attributes: FrozenMap[str, Scalar] = attrs.field(factory=FrozenMap, converter=_to_attributes)
    identities: tuple[Identity, ...] = attrs.field(default=(), converter=_to_identities)
    state: MemberState = attrs.field(default=MemberState(), kw_only=True)
    consent: Consent = attrs.field(default=Consent(), kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.profile, Profile):
            raise UsageError(f"Member.profile must be a Profile, got {self.profile!r}")

    def with_tags(self, *add: str, remove: Iterable[str] = ()) -> Member:
        """A copy with tags added and removed."""
        return attrs.evolve(self, tags=(self.tags | frozenset(add)) - frozenset(remove))

    def identity(self, kind: str, namespace: str = "") -> Identity | None:
        """The member's first identity of ``kind`` (within ``namespace``), if any."""
        for i in self.identities:
            if i.kind == kind and (not namespace or i.namespace == namespace):
                return i
        return None
