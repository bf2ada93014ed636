"""Claims and payouts as events, and the claim report ("who claimed when, from where, and
did they buy again")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import attrs

from membermkt.core._frozen import FrozenMap
from membermkt.core.events import Event
from membermkt.core.redpackets._base import BEIJING
from membermkt.core.redpackets.claims import Claim
from membermkt.core.redpackets.outcomes import Grant
from membermkt.core.redpackets.rule import RedPacketRule


def claim_event(rule: RedPacketRule, claim: Claim, grant: Grant, at: dt.datetime) -> Event:
    """The ``redpacket_claim`` event of a granted claim (keyed by bill number)."""
    props: dict[str, str | int | float | bool] = {
        "rule": rule.id,
        "amount_fen": grant.amount_fen,
        "bill_no": grant.bill_no,
    }
    if claim.source is not None:
        props["source"] = claim.source
    if grant.order_id is not None:
        props["order_id"] = grant.order_id
    return Event(claim.member_id, "redpacket_claim", at, props, key=f"rpclaim:{grant.bill_no}")


def paid_event(
    *,
    rule_id: str,
    member_id: str,
    bill_no: str,
    amount_fen: int,
    at: dt.datetime,
    platform_id: str | None = None,
) -> Event:
    """The ``redpacket_paid`` event of a confirmed payout (keyed by bill number)."""
    props: dict[str, str | int | float | bool] = {
        "rule": rule_id,
        "amount_fen": amount_fen,
        "bill_no": bill_no,
    }
    if platform_id:
        props["platform_id"] = platform_id
    return Event(member_id, "redpacket_paid", at, props, key=f"rppaid:{bill_no}")


@attrs.frozen(slots=True, kw_only=True)
class ClaimRow:
    """One granted claim in a :class:`ClaimReport`.

    Attributes:
        member_id / bill_no / amount_fen / source: from the claim event.
        claimed_at: when (UTC); ``hour`` is the Beijing hour of day (0–23).
        paid_at: when the payout was confirmed, or ``None``.
        repurchased: a purchase by the member after the claim, within the report window.
        repurchase_fen: money of those purchases.
    """

    member_id: str
    bill_no: str
    amount_fen: int
    source: str | None
    claimed_at: dt.datetime
    hour: int
    paid_at: dt.datetime | None
    repurchased: bool
    repurchase_fen: int


@attrs.frozen(slots=True, kw_only=True)
class ClaimReport:
    """Who claimed at what time, from which channel, and did they buy again.

    Attributes:
        rule_id: the rule.
        rows: one :class:`ClaimRow` per claim, by time.
        by_hour: Beijing hour → number of claims.
        by_source: source → (claims, paid, repurchased).
    """

    rule_id: str
    rows: tuple[ClaimRow, ...]
    by_hour: Mapping[int, int]
    by_source: Mapping[str, tuple[int, int, int]]

    @property
    def claims(self) -> int:
        return len(self.rows)

    @property
    def paid(self) -> int:
        return sum(1 for r in self.rows if r.paid_at is not None)

    @property
    def paid_fen(self) -> int:
        return sum(r.amount_fen for r in self.rows if r.paid_at is not None)

    @property
    def repurchase_rate(self) -> float:
        return sum(r.repurchased for r in self.rows) / len(self.rows) if self.rows else 0.0


def claim_report(
    events: Iterable[Event],
    rule_id: str,
    as_of: dt.datetime,
    *,
    repurchase_within: dt.timedelta | None = None,
) -> ClaimReport:
    """Build the claim report of ``rule_id`` from events (claims, payouts, purchases).

    Only events at or before ``as_of`` count. A claim counts as "bought again" when the same
    member has a ``purchase`` event after the claim (and within ``repurchase_within`` of it,
    when given).
    """
    claims: list[Event] = []
    paid: dict[str, dt.datetime] = {}
    purchases: dict[str, list[Event]] = {}
    for e in events:
        if e.at_utc > as_of:
            continue
        if e.type == "redpacket_claim" and e.properties.get("rule") == rule_id:
            claims.append(e)
        elif e.type == "redpacket_paid" and e.properties.get("rule") == rule_id:
            b = str(e.properties.get("bill_no", ""))
            if b not in paid or e.at_utc < paid[b]:
                paid[b] = e.at_utc
        elif e.type == "purchase":
            purchases.setdefault(e.member_id, []).append(e)
    rows: list[ClaimRow] = []
    seen: set[str] = set()
    for c in sorted(claims, key=lambda e: (e.at_utc, e.key or "")):
        b = str(c.properties.get("bill_no", ""))
        if b in seen:
            continue
        seen.add(b)
        start = c.at_utc
        end = start + repurchase_within if repurchase_within is not None else None
        later = [
            p
            for p in purchases.get(c.member_id, ())
            if p.at_utc > start and (end is None or p.at_utc <= end)
        ]
        src = c.properties.get("source")
        amount = c.properties.get("amount_fen", 0)
        rows.append(
            ClaimRow(
                member_id=c.member_id,
                bill_no=b,
                amount_fen=int(amount) if isinstance(amount, int) else 0,
                source=src if isinstance(src, str) else None,
                claimed_at=start,
                hour=start.astimezone(BEIJING).hour,
                paid_at=paid.get(b),
                repurchased=bool(later),
                repurchase_fen=sum(_purchase_fen(p) for p in later),
            )
        )
    by_hour: dict[int, int] = {}
    by_source: dict[str, tuple[int, int, int]] = {}
    for r in rows:
        by_hour[r.hour] = by_hour.get(r.hour, 0) + 1
        key = r.source or "(none)"
        n, p, rb = by_source.get(key, (0, 0, 0))
        by_source[key] = (n + 1, p + (r.paid_at is not None), rb + r.repurchased)
    return ClaimReport(
        rule_id=rule_id,
        rows=tuple(rows),
        by_hour=FrozenMap(dict(sorted(by_hour.items()))),
        by_source=FrozenMap(dict(sorted(by_source.items()))),
    )


def _purchase_fen(event: Event) -> int:
    amount = event.properties.get("amount_fen", 0)
    return amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
