"""Tiers as rules: a :class:`TierProgram` of ordered tiers over rolling-window metrics.

The program is a pure function of a member's events as of a time
(:meth:`TierProgram.changes`). It walks the member's history in time order:

* **upgrades are immediate** — at every event, the member's metrics (spend, orders, points,
  engagement over the rolling window) are computed and a higher qualifying tier is taken at
  once;
* **downgrades happen only at a review date** (every ``review_every`` from
  ``review_anchor``), and only when the current tier was reached more than ``grace`` before
  that review; the member then drops to the tier the metrics qualify for at the review;
* **manual overrides** (``tier_override`` events with ``tier`` and ``reason``) set the tier
  at their time, protected by the same grace;
* tiers exist only while the member *is* a member (joined, not left): joining starts at the
  base tier, leaving ends the tier.

Every change is a ``tier_changed`` event (``from``, ``to``, ``reason``, ``program``) with a
deterministic key, so running the program again (or on events that already contain its
output) yields the same events — idempotent — and the input order never matters. The
member's tier as of a time is the ``to`` of the latest ``tier_changed`` at or before it:
:func:`tier_as_of` in Python, :func:`~membermkt.core.membership.leaves.tier_is` in segments
(Python and SQL).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs

from membermkt.core.events import INTERACTION_TYPES, Event
from membermkt.core.membership.leaves import MEMBER_JOINED, MEMBER_LEFT, TIER_CHANGED
from membermkt.core.membership.points import PointsProgram
from membermkt.errors import UsageError

__all__ = [
    "METRICS",
    "TIER_OVERRIDE",
    "Tier",
    "TierProgram",
    "override_event",
    "tier_as_of",
]

TIER_OVERRIDE: Final = "tier_override"
METRICS: Final = frozenset({"spend_fen", "orders", "points", "engagement"})
"""Qualifying metrics: spend (fen) and orders (purchases), points balance, engagement
(interaction events), each over the program's rolling window (points: the balance)."""

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")


def _to_minimums(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


@attrs.frozen(slots=True, kw_only=True)
class Tier:
    """One tier: its name and the minimum of each metric it needs (all must hold).

    Raises:
        UsageError: for a bad name, an unknown metric or a negative minimum.
    """

    name: str
    minimums: Mapping[str, int] = attrs.field(factory=dict, converter=_to_minimums)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise UsageError(f"Tier.name must match {_NAME_RE.pattern}, got {self.name!r}")
        for metric, v in self.minimums.items():
            if metric not in METRICS:
                raise UsageError(f"Tier {self.name}: unknown metric {metric!r} ({sorted(METRICS)})")
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"Tier {self.name}: minimum of {metric} must be an int >= 0")

    def qualifies(self, metrics: Mapping[str, int]) -> bool:
        """Whether ``metrics`` meet every minimum."""
        return all(metrics.get(k, 0) >= v for k, v in self.minimums.items())

    def shortfall(self, metrics: Mapping[str, int]) -> str:
        """Why ``metrics`` do or do not qualify, e.g. ``"spend_fen 120000>=100000"``."""
        parts = [
            f"{k} {metrics.get(k, 0)}{'>=' if metrics.get(k, 0) >= v else '<'}{v}"
            for k, v in sorted(self.minimums.items())
        ]
        return ", ".join(parts) or "base tier"


def override_event(
    member_id: str, at: dt.datetime, *, tier: str, reason: str, by: str, key: str
) -> Event:
    """A manual ``tier_override`` (who, why), applied by the program at ``at``.

    Raises:
        UsageError: for an empty reason, actor or key.
    """
    if not reason or not by or not key:
        raise UsageError("a tier override needs a reason, who made it (by) and a key")
    return Event(
        member_id=member_id,
        type=TIER_OVERRIDE,
        at=at,
        properties={"tier": tier, "reason": reason, "by": by},
        key=key,
    )


def tier_as_of(events: Iterable[Event], as_of: dt.datetime) -> str | None:
    """The ``to`` of the latest ``tier_changed`` at or before ``as_of`` (``None``: no tier;
    an empty ``to`` means the tier ended). Among changes at the same instant, the smallest
    ``to`` wins (the programs never emit two at one instant)."""
    best: tuple[dt.datetime, str] | None = None
    for ev in events:
        if ev.type != TIER_CHANGED or ev.at > as_of:
            continue
        to = ev.properties.get("to")
        cand = (ev.at, to if isinstance(to, str) else "")
        if best is None or cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
            best = cand
    if best is None or not best[1]:
        return None
    return best[1]


def _us(at: dt.datetime) -> int:
    return (at - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


@attrs.frozen(slots=True, kw_only=True)
class TierProgram:
    """Ordered tiers (lowest first; the first is the base tier every member starts in).

    Attributes:
        id: program id (in event keys and properties).
        tiers: the tiers, lowest first; names distinct.
        window: the rolling window of spend / orders / engagement.
        review_every: the review period (downgrades happen only at reviews).
        review_anchor: one review date (the others are ``anchor + k * review_every``).
        grace: a tier reached less than ``grace`` before a review is kept at that review.
        points: the points program behind the ``points`` metric (required if used).

    Raises:
        UsageError: for an empty/duplicate tier list, non-positive durations, or a
            ``points`` minimum without a points program.
    """

    id: str
    tiers: tuple[Tier, ...]
    window: dt.timedelta = dt.timedelta(days=365)
    review_every: dt.timedelta = dt.timedelta(days=90)
    review_anchor: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    grace: dt.timedelta = dt.timedelta(days=30)
    points: PointsProgram | None = None

    def __attrs_post_init__(self) -> None:
        if not _NAME_RE.match(self.id):
            raise UsageError(f"TierProgram.id must match {_NAME_RE.pattern}, got {self.id!r}")
        names = [t.name for t in self.tiers]
        if not names or len(set(names)) != len(names):
            raise UsageError(f"TierProgram needs distinct tiers, got {names}")
        for name, d in (("window", self.window), ("review_every", self.review_every)):
            if d <= dt.timedelta(0):
                raise UsageError(f"TierProgram.{name} must be positive")
        if self.grace < dt.timedelta(0):
            raise UsageError("TierProgram.grace must not be negative")
        if self.review_anchor.utcoffset() is None:
            raise UsageError("TierProgram.review_anchor must be timezone-aware")
        if self.points is None and any("points" in t.minimums for t in self.tiers):
            raise UsageError("a tier needs points but the TierProgram has no points program")

    # ------------------------------------------------------------------ queries

    def rank(self, name: str | None) -> int:
        """The position of tier ``name`` (-1 for none).

        Raises:
            UsageError: for a name that is not one of the program's tiers.
        """
        if name is None:
            return -1
        for i, t in enumerate(self.tiers):
            if t.name == name:
                return i
        raise UsageError(f"{name!r} is not a tier of program {self.id!r}")

    def metrics(self, events: Sequence[Event], at: dt.datetime) -> dict[str, int]:
        """The qualifying metrics from ``events`` at ``at`` (window ``(at - window, at]``)."""
        lo = at - self.window
        spend = orders = engagement = 0
        for ev in events:
            if not lo < ev.at <= at:
                continue
            if ev.type == "purchase":
                orders += 1
                amount = ev.properties.get("amount_fen", 0)
                spend += amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
            if ev.type in INTERACTION_TYPES:
                engagement += 1
        points = self.points.ledger(events, at).balance if self.points is not None else 0
        return {"spend_fen": spend, "orders": orders, "points": points, "engagement": engagement}

    def qualified(self, events: Sequence[Event], at: dt.datetime) -> tuple[Tier, str]:
        """The highest tier the metrics at ``at`` qualify for, and the explanation."""
        m = self.metrics(events, at)
        best = self.tiers[0]
        for t in self.tiers:
            if t.qualifies(m):
                best = t
        return best, best.shortfall(m)

    def reviews(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        """Review dates in ``(start, end]``."""
        period = self.review_every
        k = (start - self.review_anchor) // period + 1
        out = []
        at = self.review_anchor + k * period
        while at <= end:
            if at > start:
                out.append(at)
            at += period
        return out

    # ------------------------------------------------------------------ the fold

    def changes(self, member_id: str, events: Iterable[Event], as_of: dt.datetime) -> list[Event]:
        """Every ``tier_changed`` event of ``member_id`` up to ``as_of``, in time order.

        Pure and deterministic: the same events (in any order, with or without the
        program's own earlier output) give the same list.
        """
        unique: dict[tuple[object, ...], Event] = {}
        for e in events:
            if e.member_id != member_id or e.at > as_of or e.type == TIER_CHANGED:
                continue
            ident = _identity(e)
            prev = unique.get(ident)
            if prev is None or _order(e) < _order(prev):  # one key, one (canonical) event
                unique[ident] = e
        own = sorted(unique.values(), key=_order)
        if not own:
            return []
        out: list[Event] = []
        current: str | None = None
        attained: dt.datetime | None = None
        member = False
        checkpoints = sorted(
            {e.at for e in own} | set(self.reviews(own[0].at, as_of)),
        )
        reviews = set(self.reviews(own[0].at, as_of))
        by_time: dict[dt.datetime, list[Event]] = {}
        for e in own:
            by_time.setdefault(e.at, []).append(e)

        def change(at: dt.datetime, to: str | None, reason: str) -> None:
            nonlocal current, attained
            if to == current:
                return
            out.append(
                Event(
                    member_id=member_id,
                    type=TIER_CHANGED,
                    at=at,
                    properties={
                        "from": current or "",
                        "to": to or "",
                        "reason": reason,
                        "program": self.id,
                    },
                    key=f"{TIER_CHANGED}:{self.id}:{member_id}:{_us(at)}",
                )
            )
            current, attained = to, at

        for at in checkpoints:
            now_events = by_time.get(at, [])
            history = [e for e in own if e.at <= at]
            joined = [e for e in now_events if e.type == MEMBER_JOINED]
            left = [e for e in now_events if e.type == MEMBER_LEFT]
            if left:  # a leave wins a tie with a join (as in the membership fold)
                member = False
                change(at, None, "left the programme")
                continue
            if joined and not member:
                member = True
                tier, why = self.qualified(history, at)
                change(at, tier.name, f"joined: {why}")
                continue
            if not member:
                continue
            overrides = sorted(
                (e for e in now_events if e.type == TIER_OVERRIDE),
                key=lambda e: e.key or "",
            )
            if overrides:
                o = overrides[-1]
                name = str(o.properties.get("tier", ""))
                self.rank(name)
                change(
                    at, name, f"override by {o.properties.get('by')}: {o.properties.get('reason')}"
                )
                continue
            tier, why = self.qualified(history, at)
            if self.rank(tier.name) > self.rank(current):
                change(at, tier.name, f"upgrade: {why}")
            elif (
                at in reviews
                and self.rank(tier.name) < self.rank(current)
                and attained is not None
                and at - attained >= self.grace
            ):
                change(at, tier.name, f"downgrade at review: {why}")
        return out


def _identity(ev: Event) -> tuple[object, ...]:
    if ev.key is not None:
        return ("k", ev.key)
    return ("e", ev.type, ev.at, tuple(sorted((k, repr(v)) for k, v in ev.properties.items())))


def _order(ev: Event) -> tuple[object, ...]:
    props = repr(sorted((k, repr(v)) for k, v in ev.properties.items()))
    return (ev.at, ev.type, repr(_identity(ev)), props)
