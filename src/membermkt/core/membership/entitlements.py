"""Privileges (特权服务) and entitlements: a catalogue of benefits bound to tiers and to
need classes, entitlements granted with a validity, redeemed exactly once.

* A :class:`Benefit` (discount, free shipping, early access, birthday gift, priority
  service, exclusive campaign) names the tiers and the need classes (category affinities,
  e.g. from :mod:`membermkt.core.analytics.offers`) it is for, and how long an entitlement
  to it stays valid.
* :meth:`Catalogue.eligible` lists the benefits of a tier and need class;
  :func:`grant_event` records an entitlement (``entitlement_granted``, key per member,
  benefit and sequence: granting twice grants once);
* :func:`redeem_event` checks the entitlement is granted, unredeemed and valid, and records
  the redemption with the key ``entitlement_redeemed:<entitlement id>`` — the event log's
  de-duplication makes a redemption happen exactly once however often it is submitted.
* :meth:`Benefit.unused` is the segment "has an unused X expiring within N days"
  (Python and SQL, through the ``latest`` leaf).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Final

import attrs

from membermkt.core.events import Event
from membermkt.core.membership.leaves import (
    ENTITLEMENT_GRANTED,
    ENTITLEMENT_REDEEMED,
    Latest,
    has_unused_entitlement,
)
from membermkt.errors import UsageError

__all__ = [
    "BENEFIT_KINDS",
    "Benefit",
    "Catalogue",
    "Entitlement",
    "entitlements_as_of",
    "grant_event",
    "redeem_event",
]

BENEFIT_KINDS: Final = frozenset(
    {
        "discount",
        "free_shipping",
        "early_access",
        "birthday_gift",
        "priority_service",
        "exclusive_campaign",
    }
)
_ID_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")


def _names(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise UsageError(f"expected a collection of names, got the string {value!r}")
    return frozenset(value)


@attrs.frozen(slots=True, kw_only=True)
class Benefit:
    """A privilege in the catalogue.

    Attributes:
        id: benefit id.
        kind: one of :data:`BENEFIT_KINDS`.
        tiers: the tiers it is for (empty: every tier).
        needs: the need classes it is for (empty: every need).
        validity: how long a granted entitlement stays valid.
        description: shown to members and staff.

    Raises:
        UsageError: for a bad id or kind, or a non-positive validity.
    """

    id: str
    kind: str
    validity: dt.timedelta
    tiers: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    needs: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if not _ID_RE.match(self.id):
            raise UsageError(f"Benefit.id must match {_ID_RE.pattern}, got {self.id!r}")
        if self.kind not in BENEFIT_KINDS:
            raise UsageError(f"Benefit {self.id}: kind must be one of {sorted(BENEFIT_KINDS)}")
        if self.validity <= dt.timedelta(0):
            raise UsageError(f"Benefit {self.id}: validity must be positive")

    def unused(self, *, expiring_within: dt.timedelta | None = None) -> Latest:
        """Members whose latest entitlement to this benefit is unredeemed and valid
        (optionally expiring within ``expiring_within``)."""
        return has_unused_entitlement(
            self.id, validity=self.validity, expiring_within=expiring_within
        )


@attrs.frozen(slots=True)
class Catalogue:
    """The benefits on offer (ids distinct)."""

    benefits: tuple[Benefit, ...]

    def __attrs_post_init__(self) -> None:
        ids = [b.id for b in self.benefits]
        if len(set(ids)) != len(ids):
            raise UsageError(f"Catalogue: duplicate benefit ids in {ids}")

    def get(self, benefit_id: str) -> Benefit:
        """The benefit with that id.

        Raises:
            UsageError: for an unknown id.
        """
        for b in self.benefits:
            if b.id == benefit_id:
                return b
        raise UsageError(f"no benefit {benefit_id!r} in the catalogue")

    def eligible(self, tier: str | None, need: str | None = None) -> list[Benefit]:
        """The benefits for a member of ``tier`` with need class ``need`` (a benefit bound
        to needs requires a matching need)."""
        return [
            b
            for b in self.benefits
            if (not b.tiers or tier in b.tiers) and (not b.needs or need in b.needs)
        ]


@attrs.frozen(slots=True, kw_only=True)
class Entitlement:
    """A granted benefit as of a time."""

    id: str
    benefit: str
    member_id: str
    granted_at: dt.datetime
    expires_at: dt.datetime
    redeemed_at: dt.datetime | None = None

    def usable(self, at: dt.datetime) -> bool:
        """Unredeemed and not expired at ``at``."""
        return self.redeemed_at is None and self.granted_at <= at < self.expires_at


def grant_event(
    benefit: Benefit, member_id: str, at: dt.datetime, *, reason: str, sequence: int = 1
) -> Event:
    """Grant ``benefit`` to ``member_id`` (entitlement id ``<benefit>:<member>:<sequence>``).

    Raises:
        UsageError: for an empty reason or a bad sequence.
    """
    if not reason:
        raise UsageError("grant_event: reason must be non-empty")
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 1:
        raise UsageError(f"grant_event: sequence must be a positive int, got {sequence!r}")
    ent = f"{benefit.id}:{member_id}:{sequence}"
    return Event(
        member_id=member_id,
        type=ENTITLEMENT_GRANTED,
        at=at,
        properties={
            "benefit": benefit.id,
            "entitlement": ent,
            "kind": benefit.kind,
            "valid_seconds": int(benefit.validity.total_seconds()),
            "reason": reason,
        },
        key=f"{ENTITLEMENT_GRANTED}:{ent}",
    )


def entitlements_as_of(events: Iterable[Event], as_of: dt.datetime) -> list[Entitlement]:
    """A member's entitlements folded from events (any order) at or before ``as_of``, by id;
    the first redemption of an entitlement at or after its grant counts, later ones are
    ignored, and a redemption of an entitlement the member was not granted (another
    member's, or before the grant) never counts.

    :func:`grant_event` keys a grant per entitlement, so a store keeps one grant per id. Hand-
    made events may still carry two grants of one id: the latest (at or before ``as_of``)
    is the grant, i.e. granting an id again renews it and a redemption before the renewal
    no longer counts. This is what the ``has_unused_entitlement`` segment leaf sees (the
    member's latest grant or redemption of the benefit), so the fold and the leaf agree."""
    grants: dict[str, Event] = {}
    redeemed: dict[str, list[dt.datetime]] = {}
    for ev in events:
        if ev.at > as_of:
            continue
        ent = ev.properties.get("entitlement")
        if not isinstance(ent, str):
            continue
        if ev.type == ENTITLEMENT_GRANTED:
            prev = grants.get(ent)
            if prev is None or ev.at > prev.at:
                grants[ent] = ev
        elif ev.type == ENTITLEMENT_REDEEMED:
            redeemed.setdefault(ent, []).append(ev.at)
    out = []
    for ent, g in sorted(grants.items()):
        secs = g.properties.get("valid_seconds", 0)
        valid = dt.timedelta(seconds=secs if isinstance(secs, int) else 0)
        r = min((at for at in redeemed.get(ent, ()) if at >= g.at), default=None)
        out.append(
            Entitlement(
                id=ent,
                benefit=str(g.properties.get("benefit")),
                member_id=g.member_id,
                granted_at=g.at,
                expires_at=g.at + valid,
                redeemed_at=r,
            )
        )
    return out


def redeem_event(events: Iterable[Event], entitlement_id: str, at: dt.datetime) -> Event:
    """The redemption of ``entitlement_id`` at ``at`` (key per entitlement: appending it
    twice stores it once).

    Raises:
        UsageError: when the entitlement is unknown, already redeemed or expired at ``at``.
    """
    for ent in entitlements_as_of(events, at):
        if ent.id != entitlement_id:
            continue
        if ent.redeemed_at is not None:
            raise UsageError(f"entitlement {entitlement_id!r} was redeemed at {ent.redeemed_at}")
        if not ent.usable(at):
            raise UsageError(f"entitlement {entitlement_id!r} expired at {ent.expires_at}")
        return Event(
            member_id=ent.member_id,
            type=ENTITLEMENT_REDEEMED,
            at=at,
            properties={"benefit": ent.benefit, "entitlement": ent.id},
            key=f"{ENTITLEMENT_REDEEMED}:{ent.id}",
        )
    raise UsageError(f"no entitlement {entitlement_id!r} granted by {at}")
