"""Normalise segments without changing their meaning.

Rules: flatten nested And/Or; fold constants; remove duplicates; complements (``x & ~x`` is
FALSE, ``x | ~x`` is TRUE); absorption (``x & (x | y)`` is ``x``); double negation; empty
ranges (``between`` with low > high, ``did`` with at_most < at_least, ``sample(0)``) become
FALSE and trivially true leaves (``did(at_least=0)``, ``sample(1)``) become TRUE;
single-value ``in``/``not_in`` become ``eq``/``ne``. Children are sorted into a canonical
order, so ``a & b`` and ``b & a`` simplify to the same tree.

Note the two-valued rule: ``~(attr(x) == v)`` is **not** ``attr(x) != v`` (a missing value
makes the first true and the second false), so negation is never pushed into comparisons.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from membermkt.core.segjson import node_to_json
from membermkt.core.segments import (
    BUCKETS,
    FALSE,
    TRUE,
    And,
    Cmp,
    Const,
    Did,
    Not,
    Or,
    RelTime,
    Sample,
    Segment,
    Tags,
    _type_class,
)

__all__ = ["canonical_key", "simplify"]


def canonical_key(node: Segment) -> str:
    """A total order on nodes (their canonical JSON text)."""
    return json.dumps(node_to_json(node), sort_keys=True, default=str, ensure_ascii=False)


def simplify(segment: Segment) -> Segment:
    """An equivalent, normalised segment. Idempotent: ``simplify(simplify(s)) == simplify(s)``."""
    current = segment
    for _ in range(32):
        nxt = _simplify(current)
        if nxt == current:
            return nxt
        current = nxt
    return current


def _simplify(node: Segment) -> Segment:
    if isinstance(node, And | Or):
        return _simplify_nary(node)
    if isinstance(node, Not):
        return Not.of(_simplify(node.part))
    if isinstance(node, Cmp):
        return _simplify_cmp(node)
    if isinstance(node, Did):
        if node.at_most is not None and node.at_most < node.at_least:
            return FALSE
        if node.at_least == 0 and node.at_most is None:
            return TRUE
        return node
    if isinstance(node, Sample):
        if node.threshold <= 0:
            return FALSE
        if node.threshold >= BUCKETS:
            return TRUE
        return node
    if isinstance(node, Tags):
        if node.mode == "all" and len(node.names) == 1:
            return Tags("any", node.names)
        return node
    return node


def _simplify_cmp(node: Cmp) -> Segment:
    if node.op == "in" and len(node.values) == 1:
        return Cmp(node.field, "eq", node.values)
    if node.op == "not_in" and len(node.values) == 1:
        return Cmp(node.field, "ne", node.values)
    if node.op == "between":
        lo, hi = node.values
        if isinstance(lo, RelTime) and isinstance(hi, RelTime):
            if lo.seconds < hi.seconds:  # as_of - lo > as_of - hi
                return FALSE
        elif (
            not isinstance(lo, RelTime)
            and not isinstance(hi, RelTime)
            and _type_class(lo) == _type_class(hi)
            and lo > hi  # type: ignore[operator]
        ):
            return FALSE
    return node


def _simplify_nary(node: And | Or) -> Segment:
    is_and = isinstance(node, And)
    unit, zero = (TRUE, FALSE) if is_and else (FALSE, TRUE)
    same: type[And] | type[Or] = And if is_and else Or
    dual: type[And] | type[Or] = Or if is_and else And
    flat: list[Segment] = []
    for p in node.parts:
        sp = _simplify(p)
        if isinstance(sp, same):
            flat.extend(sp.parts)
        else:
            flat.append(sp)
    parts: dict[Segment, None] = {}
    for p in flat:
        if isinstance(p, Const):
            if p == zero:
                return zero
            continue
        parts[p] = None
    # complements
    for p in parts:
        if isinstance(p, Not) and p.part in parts:
            return zero
    # absorption: x & (x | y) -> x ; x | (x & y) -> x
    kept = [
        p
        for p in parts
        if not (isinstance(p, dual) and any(q in parts for q in p.parts if q is not p))
    ]
    if not kept:
        return unit
    if len(kept) == 1:
        return kept[0]
    kept.sort(key=canonical_key)
    builder: Callable[[tuple[Segment, ...]], Segment] = same
    return builder(tuple(kept))
