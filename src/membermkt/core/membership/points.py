"""Points: earning rules on events, expiry, and a ledger that never double-earns and never
goes negative.

The ledger is a pure fold of events as of a time (:meth:`PointsProgram.ledger`):

* **earning** — each :class:`EarnRule` turns a matching event into points; an event earns
  once, identified by its ``key`` (or, for key-less events, by its type, time and
  properties), so re-ingested or duplicated events never earn twice;
* **expiry** — points earned at ``t`` expire at ``t + expiry`` (first-in, first-out lots);
* **redemption** — a ``points_redeemed`` event (property ``points``) spends the oldest lots
  first; a redemption larger than the balance at its time is **rejected** (recorded, not
  applied), so the balance never goes negative whatever the events say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = ["POINTS_REDEEMED", "EarnRule", "PointsLedger", "PointsProgram", "redeem_event"]

POINTS_REDEEMED: Final = "points_redeemed"


@attrs.frozen(slots=True, kw_only=True)
class EarnRule:
    """Points for events of ``event`` type whose properties equal every ``where`` item:
    ``fixed`` points, plus ``per_yuan`` points per whole yuan of ``amount_fen``.

    Raises:
        UsageError: for negative amounts or a rule that earns nothing.
    """

    event: str
    fixed: int = 0
    per_yuan: int = 0
    where: tuple[tuple[str, str | int | float | bool], ...] = ()

    def __attrs_post_init__(self) -> None:
        if not self.event:
            raise UsageError("EarnRule.event must be a non-empty event type")
        for name, v in (("fixed", self.fixed), ("per_yuan", self.per_yuan)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise UsageError(f"EarnRule.{name} must be an int >= 0, got {v!r}")
        if self.fixed == 0 and self.per_yuan == 0:
            raise UsageError("EarnRule earns nothing: set fixed or per_yuan")

    def points(self, event: Event) -> int:
        """Points ``event`` earns under this rule (0 when it does not match)."""
        if event.type != self.event:
            return 0
        for k, v in self.where:
            if event.properties.get(k) != v:
                return 0
        amount = event.properties.get("amount_fen", 0)
        fen = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
        return self.fixed + self.per_yuan * (max(fen, 0) // 100)


@attrs.frozen(slots=True, kw_only=True)
class PointsLedger:
    """Points as of a time.

    Attributes:
        balance: spendable points (never negative).
        earned: total points ever earned (up to ``as_of``).
        redeemed: total points spent.
        expired: total points lapsed.
        rejected: keys of redemptions refused for lack of points.
        expiring: ``(expires_at, points)`` of the live lots, oldest first.
    """

    balance: int
    earned: int
    redeemed: int
    expired: int
    rejected: tuple[str, ...] = ()
    expiring: tuple[tuple[dt.datetime, int], ...] = ()


@attrs.define(slots=True)
class _Lot:
    expires: dt.datetime | None
    points: int


def _identity(ev: Event) -> tuple[object, ...]:
    if ev.key is not None:
        return ("k", ev.key)
    return ("e", ev.type, ev.at, tuple(sorted((k, repr(v)) for k, v in ev.properties.items())))


def _canonical(ev: Event) -> tuple[object, ...]:
    return (ev.at, ev.type, repr(sorted((k, repr(v)) for k, v in ev.properties.items())))


def _sort_key(ev: Event) -> tuple[object, ...]:
    # earnings before redemptions at the same instant; then a total order on identity
    return (ev.at, ev.type == POINTS_REDEEMED, repr(_identity(ev)))


@attrs.frozen(slots=True, kw_only=True)
class PointsProgram:
    """Earning rules and an expiry.

    Attributes:
        rules: the earning rules (an event earns the sum of every matching rule).
        expiry: how long earned points stay spendable (``None``: forever).
    """

    rules: tuple[EarnRule, ...]
    expiry: dt.timedelta | None = dt.timedelta(days=365)

    def __attrs_post_init__(self) -> None:
        if not self.rules:
            raise UsageError("PointsProgram needs at least one EarnRule")
        if self.expiry is not None and self.expiry <= dt.timedelta(0):
            raise UsageError("PointsProgram.expiry must be positive")

    def earned_by(self, event: Event) -> int:
        """Points one event earns (sum over the rules)."""
        return sum(r.points(event) for r in self.rules)

    def ledger(self, events: Iterable[Event], as_of: dt.datetime) -> PointsLedger:
        """The ledger folded from ``events`` (any order, duplicates allowed) as of
        ``as_of``."""
        unique: dict[tuple[object, ...], Event] = {}
        for ev in events:
            if ev.at <= as_of:
                ident = _identity(ev)
                prev = unique.get(ident)
                # one key is one event; if callers reuse a key, keep a canonical one
                if prev is None or _canonical(ev) < _canonical(prev):
                    unique[ident] = ev
        lots: list[_Lot] = []
        earned = redeemed = expired = 0
        rejected: list[str] = []

        def lapse(until: dt.datetime) -> int:
            n = 0
            for lot in lots:
                if lot.expires is not None and lot.expires <= until:
                    n += lot.points
                    lot.points = 0
            return n

        for ev in sorted(unique.values(), key=_sort_key):
            expired += lapse(ev.at)
            if ev.type == POINTS_REDEEMED:
                want = ev.properties.get("points")
                balance = sum(lot.points for lot in lots)
                if (
                    isinstance(want, bool)
                    or not isinstance(want, int)
                    or want <= 0
                    or want > balance
                ):
                    rejected.append(ev.key or repr(_identity(ev)))
                    continue
                redeemed += want
                for lot in lots:  # oldest lots first
                    take = min(lot.points, want)
                    lot.points -= take
                    want -= take
                    if not want:
                        break
                continue
            pts = self.earned_by(ev)
            if pts:
                earned += pts
                lots.append(_Lot(None if self.expiry is None else ev.at + self.expiry, pts))
        expired += lapse(as_of)
        live = tuple((lot.expires, lot.points) for lot in lots if lot.expires and lot.points)
        balance = sum(lot.points for lot in lots)
        return PointsLedger(
            balance=balance,
            earned=earned,
            redeemed=redeemed,
            expired=expired,
            rejected=tuple(rejected),
            expiring=live,
        )


def redeem_event(
    program: PointsProgram,
    events: Iterable[Event],
    *,
    member_id: str,
    points: int,
    at: dt.datetime,
    key: str,
    reason: str,
    extra: Mapping[str, str] | None = None,
) -> Event:
    """A ``points_redeemed`` event, checked against the balance at ``at`` first.

    Raises:
        UsageError: for non-positive points, an empty key/reason, or more points than the
            member has (the ledger would reject it anyway; this says so up front).
    """
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise UsageError(f"redeem: points must be a positive int, got {points!r}")
    if not key or not reason:
        raise UsageError("redeem: key and reason must be non-empty")
    balance = program.ledger(events, at).balance
    if points > balance:
        raise UsageError(f"redeem: {points} points asked, {balance} available at {at}")
    props: dict[str, str | int | float | bool] = {"points": points, "reason": reason}
    props.update(extra or {})
    return Event(member_id=member_id, type=POINTS_REDEEMED, at=at, properties=props, key=key)
