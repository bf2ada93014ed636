"""The staff's customer card: who this customer is, as of a moment, for a clerk chatting
with them in WeCom (the chat-toolbar sidebar, see ``examples/wecom_sidebar``).

>>> card = customer_card(store, "wmEXTERNAL", as_of=now, corpid="ww1")   # doctest: +SKIP
>>> card.to_dict()["orders_90d"]                                          # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from membermkt.core.analytics.activity import activity_class
from membermkt.core.analytics.offers import (
    OfferRule,
    affinity_offer,
    category_affinity,
    membership_offer,
    trial_offer,
)
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event, fold
from membermkt.core.identity import Identity
from membermkt.core.members import Member, MemberState
from membermkt.errors import UsageError

__all__ = ["CustomerCard", "Order", "customer_card", "default_offer_rules"]

ORDER_WINDOW = dt.timedelta(days=90)


class _CardStore(Protocol):
    def get_member(self, member_id: str) -> Member | None: ...

    def resolve(self, identity: Identity) -> str | None: ...

    def events_for(
        self,
        member_id: str,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        types: Any = None,
    ) -> list[Event]: ...


@attrs.frozen(slots=True, kw_only=True)
class Order:
    """One purchase on the card."""

    at: dt.datetime
    order_id: str
    category: str
    amount_fen: int


@attrs.frozen(slots=True, kw_only=True)
class CustomerCard:
    """What the clerk sees (all as of ``as_of``).

    Attributes:
        member_id: the member.
        identities: ``(kind, namespace, value)`` triples (phones only as digests).
        tier: the membership tier (``Profile.tier``), tags: the member's tags.
        source: the first-touch acquisition source; channel: the channel of the first
            acquisition event (``"wechat"``, ``"wecom"``...); owner_staff: the WeCom staff
            userid who holds the relation (latest ``contact_added`` not deleted since).
        orders_90d: purchases of the last 90 days, newest first; by_category: category →
            (orders, fen) over those.
        preferences: category → purchases over the whole history (most bought first).
        activity: the activity class (``active``, ``to_be_activated``, ``dormant``,
            ``churned``).
        open_coupons: coupons granted and not used (``stock_id``, ``coupon_id``).
        offer / offer_reason: the recommended offer and why (the first matching rule).
    """

    member_id: str
    as_of: dt.datetime
    identities: tuple[tuple[str, str, str], ...]
    tier: str | None
    tags: tuple[str, ...]
    source: str | None
    channel: str | None
    owner_staff: str | None
    orders_90d: tuple[Order, ...]
    by_category: tuple[tuple[str, int, int], ...]
    preferences: tuple[tuple[str, int], ...]
    activity: str
    open_coupons: tuple[tuple[str, str], ...]
    offer: str | None
    offer_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (datetimes as ISO strings, amounts in fen)."""
        return {
            "member_id": self.member_id,
            "as_of": self.as_of.isoformat(),
            "identities": [{"kind": k, "namespace": n, "value": v} for k, n, v in self.identities],
            "tier": self.tier,
            "tags": list(self.tags),
            "source": self.source,
            "channel": self.channel,
            "owner_staff": self.owner_staff,
            "orders_90d": [
                {
                    "at": o.at.isoformat(),
                    "order_id": o.order_id,
                    "category": o.category,
                    "amount_fen": o.amount_fen,
                }
                for o in self.orders_90d
            ],
            "by_category": [
                {"category": c, "orders": n, "amount_fen": fen} for c, n, fen in self.by_category
            ],
            "preferences": [{"category": c, "purchases": n} for c, n in self.preferences],
            "activity": self.activity,
            "open_coupons": [{"stock_id": s, "coupon_id": c} for s, c in self.open_coupons],
            "offer": self.offer,
            "offer_reason": self.offer_reason,
        }

    def _repr_html_(self) -> str:
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(o.at.date().isoformat())}</td><td>{e(o.category)}</td>"
            f"<td>{e(o.order_id)}</td>"
            f"<td style='text-align:right'>{o.amount_fen / 100:.2f}</td></tr>"
            for o in self.orders_90d
        )
        cats = ", ".join(f"{e(c)} ×{n} ({fen / 100:.2f})" for c, n, fen in self.by_category)
        prefs = ", ".join(f"{e(c)} ({n})" for c, n in self.preferences) or "—"
        coupons = ", ".join(e(s) for s, _ in self.open_coupons) or "—"
        offer = (
            f"<b id='offer'>{e(self.offer)}</b> <small>({e(self.offer_reason or '')})</small>"
            if self.offer
            else "—"
        )
        return (
            f"<div class='mm-card' data-member='{e(self.member_id)}'>"
            f"<h3>{e(self.member_id)} <small>{e(self.tier or 'no tier')} · "
            f"{e(self.activity)}</small></h3>"
            f"<p>Came through: {e(self.source or 'unknown')} ({e(self.channel or '?')}); "
            f"staff: {e(self.owner_staff or '—')}</p>"
            f"<h4>Orders, last 90 days</h4>"
            f"<table id='orders'><tr><th>date</th><th>category</th><th>order</th>"
            f"<th>¥</th></tr>{rows}</table>"
            f"<p>By category: {cats or '—'}</p>"
            f"<p>Preferences: {prefs}</p><p>Open coupons: {coupons}</p>"
            f"<p>Recommended offer: {offer}</p></div>"
        )


def default_offer_rules(preferences: Sequence[tuple[str, int]]) -> tuple[OfferRule, ...]:
    """Offer rules from the member's top category: a coupon for a regular (≥ 3 purchases),
    a new-arrival trial for one who bought it, membership for a repeat buyer."""
    rules: list[OfferRule] = []
    if preferences:
        top = preferences[0][0]
        rules.append(affinity_offer(top, offer=f"{top}-coupon", at_least=3))
        rules.append(trial_offer(top, offer=f"{top}-new-arrival"))
    rules.append(membership_offer())
    return tuple(rules)


def _resolve(store: _CardStore, who: str | Identity, corpid: str | None) -> str:
    if isinstance(who, Identity):
        mid = store.resolve(who)
        if mid is None:
            raise UsageError(f"no member holds {who.kind.value} {who.value!r}")
        return mid
    if not isinstance(who, str) or not who:
        raise UsageError(f"customer_card needs a member id or external_userid, got {who!r}")
    if store.get_member(who) is not None:
        return who
    if corpid:
        mid = store.resolve(Identity("external_userid", who, corpid))
        if mid is not None:
            return mid
    raise UsageError(
        f"no member {who!r}"
        + (f" and no external_userid {who!r} in corp {corpid!r}" if corpid else "")
        + " (pass corpid= to look up an external_userid)"
    )


def customer_card(
    store: _CardStore,
    member_or_external_userid: str | Identity,
    as_of: dt.datetime,
    *,
    corpid: str | None = None,
    offers: Sequence[OfferRule] | None = None,
) -> CustomerCard:
    """The customer card of a member (by member id, by WeCom ``external_userid`` with
    ``corpid``, or by any :class:`~membermkt.core.identity.Identity`), as of ``as_of``:
    only events at or before ``as_of`` count, the member's state is re-folded from them.

    Args:
        offers: offer rules (first match wins); default :func:`default_offer_rules`.

    Raises:
        UsageError: for an unknown member / identity or a naive ``as_of``.
    """
    if not isinstance(as_of, dt.datetime) or as_of.utcoffset() is None:
        raise UsageError(f"customer_card needs a timezone-aware as_of, got {as_of!r}")
    mid = _resolve(store, member_or_external_userid, corpid)
    member = store.get_member(mid)
    if member is None:
        raise UsageError(f"member {mid!r} vanished while reading the card")
    events = sorted(store.events_for(mid, until=as_of), key=lambda e: (e.at_utc, e.type))
    then = fold(attrs.evolve(member, state=MemberState()), events)
    start = as_of - ORDER_WINDOW
    orders = []
    for ev in events:
        if ev.type == "purchase" and ev.at_utc > start:
            amount = ev.properties.get("amount_fen", 0)
            orders.append(
                Order(
                    at=ev.at_utc,
                    order_id=str(ev.properties.get("order_id", ev.key or "")),
                    category=str(ev.properties.get("category", "")),
                    amount_fen=amount if isinstance(amount, int) else 0,
                )
            )
    orders.sort(key=lambda o: o.at, reverse=True)
    cats: dict[str, list[int]] = {}
    for o in orders:
        c = cats.setdefault(o.category, [0, 0])
        c[0] += 1
        c[1] += o.amount_fen
    by_category = tuple(
        sorted(((k, v[0], v[1]) for k, v in cats.items()), key=lambda x: (-x[2], x[0]))
    )
    preferences = category_affinity(events, as_of=as_of)
    channel = next(
        (
            str(ev.properties.get("channel") or ev.type)
            for ev in events
            if ev.type in ("follow", "scan", "contact_added")
        ),
        None,
    )
    owner: str | None = None
    for ev in events:
        staff = ev.properties.get("staff")
        if ev.type == "contact_added" and isinstance(staff, str):
            owner = staff
        elif ev.type == "contact_deleted" and staff == owner:
            owner = None
    granted: dict[str, str] = {}
    used: set[str] = set()
    for ev in events:
        cid = ev.properties.get("coupon_id")
        if ev.type == "coupon_granted" and isinstance(cid, str) and cid:
            granted[cid] = str(ev.properties.get("stock_id", ""))
        elif ev.type == "coupon_used" and isinstance(cid, str):
            used.add(cid)
    rules = tuple(offers) if offers is not None else default_offer_rules(preferences)
    offer = reason = None
    for rule in rules:
        if compile_predicate(rule.segment, as_of)(then, events):
            offer, reason = rule.offer, rule.description or None
            break
    return CustomerCard(
        member_id=mid,
        as_of=as_of,
        identities=tuple(sorted((i.kind.value, i.namespace, i.value) for i in member.identities)),
        tier=member.profile.tier,
        tags=tuple(sorted(member.tags)),
        source=then.state.source,
        channel=channel,
        owner_staff=owner,
        orders_90d=tuple(orders),
        by_category=by_category,
        preferences=preferences,
        activity=activity_class(then, as_of),
        open_coupons=tuple(sorted((s, c) for c, s in granted.items() if c not in used)),
        offer=offer,
        offer_reason=reason,
    )
