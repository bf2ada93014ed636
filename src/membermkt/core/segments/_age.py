"""Ages as birthday ranges: year shifting and the ``age`` → ``birthday`` rewrite."""

from __future__ import annotations

import datetime as dt
import math

from membermkt.core.segments._cmp import Cmp
from membermkt.core.segments._nodes import FALSE, And, Not, Or, Segment
from membermkt.errors import SegmentError


def shift_years(d: dt.date, years: int) -> dt.date:
    """``d`` moved by ``years``; Feb 29 becomes Feb 28 in a common year.

    Raises:
        SegmentError: when the result is outside years 1..9999.
    """
    y = d.year + years
    if not 1 <= y <= 9999:
        raise SegmentError(f"date out of range: {d.isoformat()} shifted by {years} years")
    try:
        return d.replace(year=y)
    except ValueError:
        return d.replace(year=y, day=28)


def age_threshold_birthday(n: int, as_of: dt.date) -> dt.date:
    """The latest birthday of someone aged at least ``n`` completed years on ``as_of``.

    ``age >= n  ⟺  birthday <= age_threshold_birthday(n, as_of)`` — a Feb-29 birthday
    counts on Mar 1 in common years. Backends compile age comparisons to birthday ranges
    with this, so no backend computes ages per row.
    """
    return shift_years(as_of, -n)


def _age_ge(n: int, as_of: dt.date) -> Segment:
    # age >= n  <=>  birthday <= as_of shifted back n years (present birthdays only)
    year = as_of.year - n
    if year < 1:
        return FALSE
    if year > 9999:
        return Cmp("birthday", "exists", ())
    return Cmp("birthday", "le", (shift_years(as_of, -n),))


def _age_lt(n: int, as_of: dt.date) -> Segment:
    year = as_of.year - n
    if year < 1:
        return Cmp("birthday", "exists", ())
    if year > 9999:
        return FALSE
    return Cmp("birthday", "gt", (shift_years(as_of, -n),))


def expand_age(node: Cmp, as_of: dt.date) -> Segment:
    """Rewrite a comparison on ``age`` as the equivalent comparisons on ``birthday``.

    Both backends use this, so age is never computed per row and the Feb-29 rule (a Feb-29
    birthday counts on Mar 1 in common years) holds everywhere. Missing birthday → false.
    """
    if node.field != "age":
        raise SegmentError(f"expand_age needs a comparison on age, got {node.field!r}")
    op = node.op
    if op == "exists":
        return Cmp("birthday", "exists", ())
    ns = [int(v) if isinstance(v, int) else math.ceil(v) for v in node.values]  # type: ignore[arg-type]
    if op in ("in", "not_in"):
        eqs = [And.of(_age_ge(n, as_of), _age_lt(n + 1, as_of)) for n in ns]
        if op == "in":
            return Or.of(*eqs)
        return And.of(Cmp("birthday", "exists", ()), *(Not.of(e) for e in eqs))
    if op == "between":
        lo, hi = ns
        return And.of(_age_ge(lo, as_of), _age_lt(hi + 1, as_of))
    n = ns[0]
    if op == "ge":
        return _age_ge(n, as_of)
    if op == "gt":
        return _age_ge(n + 1, as_of)
    if op == "lt":
        return _age_lt(n, as_of)
    if op == "le":
        return _age_lt(n + 1, as_of)
    if op == "eq":
        return And.of(_age_ge(n, as_of), _age_lt(n + 1, as_of))
    if op == "ne":
        return Or.of(_age_lt(n, as_of), _age_ge(n + 1, as_of))
    raise SegmentError(f"{op} is not defined on age")


def completed_years(birthday: dt.date, as_of: dt.date) -> int:
    """Age in completed years (reference definition; Feb 29 counts on Mar 1)."""
    return as_of.year - birthday.year - ((as_of.month, as_of.day) < (birthday.month, birthday.day))
