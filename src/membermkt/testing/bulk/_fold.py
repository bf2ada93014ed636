"""The members' folded state, computed with grouped reductions over the event columns."""

from __future__ import annotations

from typing import Any

from membermkt.core.events import INTERACTION_TYPES
from membermkt.stores.sql._codec import STATE_COLS
from membermkt.testing.bulk._model import (
    CONTACT,
    EVENT_SOURCES,
    FOLLOW,
    PURCHASE,
    SCAN,
    STAFF,
    TYPES,
    UNFOLLOW,
    _dump,
    _nullable,
)
from membermkt.testing.synthetic import CATEGORIES

_NONE = -(1 << 63)
_CATEGORY_SETS = tuple(
    None
    if bits == 0
    else _dump(sorted(CATEGORIES[i] for i in range(len(CATEGORIES)) if bits >> i & 1))
    for bits in range(1 << len(CATEGORIES))
)


def _fold(np: Any, n: int, e: dict[str, Any]) -> dict[str, Any]:
    """The members' state, the SQL store's ``STATE_COLS`` encoding, from the sorted event
    columns — what :func:`membermkt.fold` gives for each member's events (tested). Every
    member has a scan and a follow, so no member's group is empty. The generator makes no
    ties a general fold would have to break: the scan is each member's first acquisition
    event, an unfollow comes at least an hour after the follow, one add per WeCom member."""
    member, etype, at = e["member"], e["type"], e["at"]
    if n == 0:
        return {name: np.empty(0, dtype=object) for name in STATE_COLS} | {
            "_followed": np.empty(0, dtype=np.int64)
        }
    starts = np.concatenate(([0], np.flatnonzero(np.diff(member)) + 1))
    if len(starts) != n:  # pragma: no cover - every member has a scan and a follow
        raise AssertionError("a member without events")
    big = np.iinfo(np.int64).max
    low = np.iinfo(np.int64).min

    def last(mask: Any) -> Any:
        return np.maximum.reduceat(np.where(mask, at, low), starts)

    def first(mask: Any) -> Any:
        return np.minimum.reduceat(np.where(mask, at, big), starts)

    def count(mask: Any) -> Any:
        return np.add.reduceat(mask.astype(np.int64), starts)

    interaction = np.asarray([t in INTERACTION_TYPES for t in TYPES])
    active = interaction[etype] & ~e["outbound"]
    follow_at = last(etype == FOLLOW)
    unfollow_at = last(etype == UNFOLLOW)
    unfollowed = count(etype == UNFOLLOW) > 0
    gone = unfollowed & (unfollow_at >= follow_at)  # at a tie the unfollow ranks later
    sub_at = np.where(gone, unfollow_at, follow_at)
    is_p = etype == PURCHASE
    orders = count(is_p)
    bought = orders > 0
    cats = np.bitwise_or.reduceat(
        np.where(is_p, np.left_shift(1, np.maximum(e["category"], 0).astype(np.int64)), 0),
        starts,
    )
    is_acq = (etype == SCAN) | (etype == FOLLOW) | (etype == CONTACT)
    source_at = first(is_acq)
    # the first acquisition event of each member (its earliest; the scan by construction)
    first_acq = np.flatnonzero(is_acq & (at == source_at[member]))
    first_acq = first_acq[np.concatenate(([True], np.diff(member[first_acq]) != 0))]
    source = np.asarray(EVENT_SOURCES, dtype=object)[e["source"][first_acq]]
    is_c = etype == CONTACT
    contacted = count(is_c) > 0
    contact_at = last(is_c)
    c_rows = np.flatnonzero(is_c)
    relations = np.full(n, None, dtype=object)
    relations[member[c_rows]] = [
        f'[["{st}",{a},"0","c:{src[len("wecom-") :]}",null,null]]'
        for st, a, src in zip(
            np.asarray(STAFF, dtype=object)[e["staff"][c_rows]].tolist(),
            at[c_rows].tolist(),
            np.asarray(EVENT_SOURCES, dtype=object)[e["source"][c_rows]].tolist(),
            strict=True,
        )
    ]
    table = np.asarray(_CATEGORY_SETS, dtype=object)
    everyone = np.ones(n, dtype=bool)
    return {
        "subscribed": np.where(gone, False, True).astype(object),
        "sub_at": sub_at.astype(object),
        "sub_tb": np.where(gone, "1", "0").astype(object),
        "followed_at": _nullable(np, follow_at, ~gone),
        "source": source,
        "source_at": source_at.astype(object),
        "source_tb": np.asarray(["0\\0" + s for s in source.tolist()], dtype=object),
        "last_active_at": _nullable(np, last(active), everyone),
        "orders_count": orders,
        "orders_total_fen": np.add.reduceat(np.where(is_p, e["amount_fen"], 0), starts),
        "first_order_at": _nullable(np, first(is_p), bought),
        "last_order_at": _nullable(np, last(is_p), bought),
        "categories": table[cats],
        "wecom_contact": np.where(contacted, True, None).astype(object),
        "contact_at": _nullable(np, contact_at, contacted),
        "contact_tb": np.where(contacted, "0", None).astype(object),
        "last_event_at": np.maximum.reduceat(at, starts).astype(object),
        "relations": relations,
        "_followed": np.where(gone, low, follow_at),
    }
