"""Next-offer rules: a recommended offer per member from segments over their history.

An offer rule is a segment plus the offer it earns; rules are tried in order and the first
segment containing the member wins. Typical rules come from category affinity in purchase
history::

    rules = (
        affinity_offer("durian", offer="durian-coupon", at_least=3),   # bought durian ≥ 3x
        trial_offer("apple", offer="apple-new-variant-trial"),         # bought apples
        membership_offer(offer="membership", member_tag="member"),     # repeat, not a member
    )
    recommend(rules, history, as_of=now).offer_for("m1")

Because rules are plain segments, a store evaluates them where the data lives
(``store.select(rule.segment, as_of)``), see :mod:`membermkt.analytics`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.analytics._common import History, Table, check_as_of
from membermkt.core.evaluate import compile_predicate
from membermkt.core.events import Event
from membermkt.core.segments import Not, Segment, attr, did, tag
from membermkt.errors import UsageError

__all__ = [
    "OfferResult",
    "OfferRule",
    "affinity_offer",
    "category_affinity",
    "membership_offer",
    "offers_from_selections",
    "recommend",
    "trial_offer",
]


def _check_offer(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"OfferRule.{attribute.name} must be a non-empty str, got {value!r}")


def _check_segment(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Segment):
        raise UsageError(f"OfferRule.segment must be a Segment, got {value!r}")


@attrs.frozen(slots=True)
class OfferRule:
    """Members in ``segment`` are offered ``offer`` (first matching rule wins)."""

    offer: str = attrs.field(validator=_check_offer)
    segment: Segment = attrs.field(validator=_check_segment)
    description: str = ""


def affinity_offer(
    category: str, *, offer: str, at_least: int = 3, within: dt.timedelta | None = None
) -> OfferRule:
    """Bought ``category`` at least ``at_least`` times (within ``within``) → ``offer``."""
    return OfferRule(
        offer,
        did("purchase", where={"category": category}, at_least=at_least, within=within),
        f"bought {category} ≥ {at_least} times",
    )


def trial_offer(category: str, *, offer: str, within: dt.timedelta | None = None) -> OfferRule:
    """Bought ``category`` at least once → ``offer`` (e.g. a new variant to try)."""
    return OfferRule(
        offer,
        did("purchase", where={"category": category}, within=within),
        f"bought {category}",
    )


def membership_offer(
    *, offer: str = "membership", member_tag: str = "member", min_orders: int = 2
) -> OfferRule:
    """Repeat buyer (≥ ``min_orders`` orders) without the ``member_tag`` tag → ``offer``."""
    return OfferRule(
        offer,
        (attr("orders_count") >= min_orders) & Not.of(tag(member_tag)),
        f"≥ {min_orders} orders, not tagged {member_tag}",
    )


def _check_rules(rules: Sequence[OfferRule]) -> tuple[OfferRule, ...]:
    out = tuple(rules)
    if not all(isinstance(r, OfferRule) for r in out):
        raise UsageError("offer rules must be OfferRule values")
    return out


@attrs.frozen(slots=True, kw_only=True)
class OfferResult:
    """The recommended offer per member (members without one are left out).

    Attributes:
        as_of: the evaluation time.
        offers: the offers in rule order.
        recommendations: ``(member_id, offer)`` sorted by member id.
    """

    as_of: dt.datetime
    offers: tuple[str, ...]
    recommendations: tuple[tuple[str, str], ...]

    def offer_for(self, member_id: str) -> str | None:
        """The member's offer, or ``None``."""
        return dict(self.recommendations).get(member_id)

    def counts(self) -> dict[str, int]:
        """Members per offer, in rule order."""
        c = Counter(o for _, o in self.recommendations)
        return {o: c.get(o, 0) for o in self.offers}

    def table(self) -> Table:
        """One row per recommendation."""
        return Table(("member_id", "offer"), self.recommendations, title="Next offers")

    def _repr_html_(self) -> str:
        counts = Table(("offer", "members"), tuple(self.counts().items()), title="Offers")
        return (
            f"<p><b>Next offers</b> — {len(self.recommendations)} members</p>"
            + counts.to_html()
            + self.table().to_html(max_rows=20)
        )


def _unique_offers(rules: Sequence[OfferRule]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.offer for r in rules))


def recommend(rules: Sequence[OfferRule], history: History, *, as_of: dt.datetime) -> OfferResult:
    """The first matching rule's offer for every member of ``history``.

    Raises:
        UsageError: for bad rules or ``as_of``.
    """
    as_of = check_as_of(as_of)
    checked = _check_rules(rules)
    preds = [(r.offer, compile_predicate(r.segment, as_of)) for r in checked]
    out = []
    for member, events in history:
        evs = events if isinstance(events, Sequence) else list(events)
        for offer, pred in preds:
            if pred(member, evs):
                out.append((member.id, offer))
                break
    return OfferResult(
        as_of=as_of, offers=_unique_offers(checked), recommendations=tuple(sorted(out))
    )


def offers_from_selections(
    rules: Sequence[OfferRule], selections: Iterable[Iterable[str]], *, as_of: dt.datetime
) -> OfferResult:
    """Combine per-rule member selections (one id iterable per rule, in rule order — e.g.
    ``store.select(rule.segment, as_of)``): each member gets the first rule selecting them."""
    checked = _check_rules(rules)
    chosen: dict[str, str] = {}
    for rule, ids in zip(checked, selections, strict=True):
        for i in ids:
            chosen.setdefault(i, rule.offer)
    return OfferResult(
        as_of=check_as_of(as_of),
        offers=_unique_offers(checked),
        recommendations=tuple(sorted(chosen.items())),
    )


def category_affinity(
    events: Iterable[Event], *, as_of: dt.datetime
) -> tuple[tuple[str, int], ...]:
    """Purchases per category at or before ``as_of``, most bought first (ties by name)."""
    as_of = check_as_of(as_of)
    c: Counter[str] = Counter()
    for e in events:
        cat = e.properties.get("category")
        if e.type == "purchase" and e.at <= as_of and isinstance(cat, str) and cat:
            c[cat] += 1
    return tuple(sorted(c.items(), key=lambda x: (-x[1], x[0])))


def affinity_table(affinity: Mapping[str, int]) -> Table:
    """A category → purchases mapping as a table."""
    return Table(("category", "purchases"), tuple(affinity.items()), title="Category affinity")
