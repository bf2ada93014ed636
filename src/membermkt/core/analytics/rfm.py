"""RFM scoring: recency, frequency and monetary quantile scores, and named RFM groups.

Only buyers are scored (members with at least one purchase at or before ``as_of``). Each
dimension is scored by *position*: buyers are put in order of that dimension, worst first,
and cut into ``bins`` equal parts::

    score = 1 + (bins * position) // n

where ``n`` is the number of buyers and ``position`` (0-based) the buyer's place in the order.
Ties are broken by the other two dimensions and then by member id (R: last order, orders,
spend, id; F: orders, spend, last order, id; M: spend, orders, last order, id), so the order is
total and independent of input order, every score from 1 to ``bins`` holds ``n // bins`` or
``n // bins + 1`` buyers (no empty bin when ``n >= bins``, however many buyers share one
order count), and a strictly better value never scores lower. Scores run from 1 (worst) to
``bins`` (best). The same formula is computed in SQL and DuckDB by the store-backed runners
(``ROW_NUMBER() OVER (ORDER BY ...)`` with the same tie-breaks), so all give identical scores.

Named groups come from ordered :class:`RFMGroup` rules over the R and F (and optionally M)
scores on a 1..5 scale (scores with other ``bins`` are rescaled with
``ceil(score * 5 / bins)``); the first matching rule names the member.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import History, Table, check_as_of
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import UsageError

__all__ = [
    "DEFAULT_RFM_GROUPS",
    "RFMGroup",
    "RFMInput",
    "RFMResult",
    "RFMScore",
    "rfm",
    "rfm_input",
    "rfm_inputs",
    "score_rfm",
]


def _check_range(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        or not 1 <= value[0] <= value[1] <= 5
    ):
        raise UsageError(
            f"RFMGroup.{attribute.name} must be (low, high) with 1 <= low <= high <= 5, "
            f"got {value!r}"
        )


@attrs.frozen(slots=True, kw_only=True)
class RFMGroup:
    """A named RFM group: members whose scores (on a 1..5 scale) fall in every range.

    Attributes:
        name: e.g. ``"champions"``.
        r / f / m: inclusive ``(low, high)`` score ranges; ``(1, 5)`` means any.
        description: one line for operators.
    """

    name: str
    r: tuple[int, int] = attrs.field(default=(1, 5), validator=_check_range)
    f: tuple[int, int] = attrs.field(default=(1, 5), validator=_check_range)
    m: tuple[int, int] = attrs.field(default=(1, 5), validator=_check_range)
    description: str = ""

    def matches(self, r: int, f: int, m: int) -> bool:
        """Whether scores (already on the 1..5 scale) fall in this group."""
        return (
            self.r[0] <= r <= self.r[1]
            and self.f[0] <= f <= self.f[1]
            and self.m[0] <= m <= self.m[1]
        )


DEFAULT_RFM_GROUPS: Final[tuple[RFMGroup, ...]] = (
    RFMGroup(name="champions", r=(4, 5), f=(4, 5), description="bought recently and often"),
    RFMGroup(name="loyal", r=(3, 5), f=(3, 5), description="buy regularly"),
    RFMGroup(name="new", r=(4, 5), f=(1, 1), description="first order, recently"),
    RFMGroup(name="promising", r=(3, 5), f=(1, 2), description="recent, few orders"),
    RFMGroup(name="at_risk", r=(1, 2), f=(3, 5), description="used to buy often, not lately"),
    RFMGroup(name="hibernating", r=(2, 2), f=(1, 2), description="few orders, long ago"),
    RFMGroup(name="lost", description="everyone else: lowest recency and frequency"),
)
"""The default groups, matched in order (the last one catches everyone left)."""


@attrs.frozen(slots=True, kw_only=True)
class RFMInput:
    """One buyer's raw RFM values.

    Attributes:
        member_id: the member.
        last_order_at: the latest purchase at or before ``as_of`` (UTC).
        orders: number of purchases at or before ``as_of`` (>= 1).
        monetary_fen: their total ``amount_fen``.
    """

    member_id: str
    last_order_at: dt.datetime
    orders: int
    monetary_fen: int


@attrs.frozen(slots=True, kw_only=True)
class RFMScore:
    """A buyer's RFM values, scores (1..bins) and group name."""

    member_id: str
    recency_days: int
    frequency: int
    monetary_fen: int
    r: int
    f: int
    m: int
    group: str

    @property
    def code(self) -> str:
        """The scores as text, e.g. ``"545"``."""
        return f"{self.r}{self.f}{self.m}"


@attrs.frozen(slots=True, kw_only=True)
class RFMResult:
    """RFM scores of every buyer, sorted by member id.

    Attributes:
        as_of: the evaluation time.
        bins: the number of score levels per dimension.
        scores: one :class:`RFMScore` per buyer.
        groups: the group rules used, in matching order.
    """

    as_of: dt.datetime
    bins: int
    scores: tuple[RFMScore, ...]
    groups: tuple[RFMGroup, ...] = DEFAULT_RFM_GROUPS

    def __len__(self) -> int:
        return len(self.scores)

    def group_counts(self) -> dict[str, int]:
        """Buyers per group name, in rule order (groups with nobody included, as 0)."""
        out = {g.name: 0 for g in self.groups}
        for s in self.scores:
            out[s.group] += 1
        return out

    def members(self, group: str) -> tuple[str, ...]:
        """Member ids in ``group`` (sorted).

        Raises:
            UsageError: for an unknown group name.
        """
        if group not in {g.name for g in self.groups}:
            raise UsageError(f"unknown RFM group {group!r}; known: {[g.name for g in self.groups]}")
        return tuple(s.member_id for s in self.scores if s.group == group)

    def score_of(self, member_id: str) -> RFMScore | None:
        """The member's score, or ``None`` (not a buyer)."""
        i = bisect.bisect_left(self.scores, member_id, key=lambda s: s.member_id)
        if i < len(self.scores) and self.scores[i].member_id == member_id:
            return self.scores[i]
        return None

    def grid(self) -> tuple[tuple[int, ...], ...]:
        """Buyer counts as a ``bins`` × ``bins`` grid: ``grid()[r-1][f-1]``."""
        g = [[0] * self.bins for _ in range(self.bins)]
        for s in self.scores:
            g[s.r - 1][s.f - 1] += 1
        return tuple(tuple(row) for row in g)

    def grid_monetary(self) -> tuple[tuple[float | None, ...], ...]:
        """Mean monetary value (fen) per R × F cell (``None`` for an empty cell)."""
        tot = [[0] * self.bins for _ in range(self.bins)]
        cnt = [[0] * self.bins for _ in range(self.bins)]
        for s in self.scores:
            tot[s.r - 1][s.f - 1] += s.monetary_fen
            cnt[s.r - 1][s.f - 1] += 1
        return tuple(
            tuple(t / c if c else None for t, c in zip(tr, cr, strict=True))
            for tr, cr in zip(tot, cnt, strict=True)
        )

    def table(self) -> Table:
        """One row per buyer."""
        return Table(
            ("member_id", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "group"),
            tuple(
                (s.member_id, s.recency_days, s.frequency, s.monetary_fen, s.r, s.f, s.m, s.group)
                for s in self.scores
            ),
            title=f"RFM scores as of {self.as_of:%Y-%m-%d}",
        )

    def groups_table(self) -> Table:
        """Buyers per group."""
        counts = self.group_counts()
        n = len(self.scores) or 1
        return Table(
            ("group", "members", "share"),
            tuple((g, c, c / n) for g, c in counts.items()),
            title="RFM groups",
        )

    def _repr_html_(self) -> str:
        return (
            f"<p><b>RFM</b> as of {self.as_of:%Y-%m-%d %H:%M} UTC — {len(self.scores)} buyers, "
            f"{self.bins} bins</p>" + self.groups_table().to_html()
        )


def rfm_input(member: Member, events: Iterable[Event], as_of: dt.datetime) -> RFMInput | None:
    """A member's raw RFM values from their purchase events at or before ``as_of``
    (``None`` when they bought nothing)."""
    as_of = check_as_of(as_of)
    last: dt.datetime | None = None
    n = 0
    total = 0
    for e in events:
        if e.type != "purchase" or e.at > as_of:
            continue
        n += 1
        amount = e.properties.get("amount_fen", 0)
        total += int(amount) if isinstance(amount, int) else 0
        at = e.at_utc
        if last is None or at > last:
            last = at
    if last is None:
        return None
    return RFMInput(member_id=member.id, last_order_at=last, orders=n, monetary_fen=total)


def rfm_inputs(history: History, as_of: dt.datetime) -> list[RFMInput]:
    """:func:`rfm_input` for every member of ``history`` (non-buyers left out)."""
    out = []
    for member, events in history:
        row = rfm_input(member, events, as_of)
        if row is not None:
            out.append(row)
    return out


def _check_bins(bins: object) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 100:
        raise UsageError(f"RFM bins must be an int from 2 to 100, got {bins!r}")
    return bins


def _check_groups(groups: Sequence[RFMGroup]) -> tuple[RFMGroup, ...]:
    out = tuple(groups)
    if not out or not all(isinstance(g, RFMGroup) for g in out):
        raise UsageError("RFM groups must be a non-empty sequence of RFMGroup")
    names = [g.name for g in out]
    if len(set(names)) != len(names):
        raise UsageError(f"RFM group names must be unique, got {names}")
    return out


def _scores(keys: Sequence[Any], bins: int) -> list[int]:
    """Scores by position in the total order of ``keys`` (all distinct)."""
    n = len(keys)
    order = sorted(range(n), key=keys.__getitem__)
    out = [0] * n
    for position, i in enumerate(order):
        out[i] = 1 + (bins * position) // n
    return out


def _to5(score: int, bins: int) -> int:
    return score if bins == 5 else max(1, min(5, math.ceil(score * 5 / bins)))


def group_for(
    r: int, f: int, m: int, bins: int, groups: Sequence[RFMGroup] = DEFAULT_RFM_GROUPS
) -> str:
    """The name of the first group matching scores ``r, f, m`` (on the 1..bins scale);
    the last group's name when none matches."""
    r5, f5, m5 = _to5(r, bins), _to5(f, bins), _to5(m, bins)
    for g in groups:
        if g.matches(r5, f5, m5):
            return g.name
    return groups[-1].name


def score_rfm(
    inputs: Iterable[RFMInput],
    *,
    as_of: dt.datetime,
    bins: int = 5,
    groups: Sequence[RFMGroup] = DEFAULT_RFM_GROUPS,
) -> RFMResult:
    """Score raw RFM values (see the module docstring for the formula).

    Raises:
        UsageError: for bad ``bins``/``groups``, a duplicate member id or a negative value.
    """
    as_of = check_as_of(as_of)
    bins = _check_bins(bins)
    rules = _check_groups(groups)
    rows = sorted(inputs, key=lambda i: i.member_id)
    for a, b in itertools.pairwise(rows):
        if a.member_id == b.member_id:
            raise UsageError(f"member {a.member_id!r} appears twice in the RFM input")
    if not rows:
        return RFMResult(as_of=as_of, bins=bins, scores=(), groups=rules)
    rs = _scores([(i.last_order_at, i.orders, i.monetary_fen, i.member_id) for i in rows], bins)
    fs = _scores([(i.orders, i.monetary_fen, i.last_order_at, i.member_id) for i in rows], bins)
    ms = _scores([(i.monetary_fen, i.orders, i.last_order_at, i.member_id) for i in rows], bins)
    scores = []
    for i, r, f, m in zip(rows, rs, fs, ms, strict=True):
        if i.orders < 1 or i.monetary_fen < 0:
            raise UsageError(f"invalid RFM input for {i.member_id!r}: {i!r}")
        recency = as_of - i.last_order_at
        scores.append(
            RFMScore(
                member_id=i.member_id,
                recency_days=recency // dt.timedelta(days=1),
                frequency=i.orders,
                monetary_fen=i.monetary_fen,
                r=r,
                f=f,
                m=m,
                group=group_for(r, f, m, bins, rules),
            )
        )
    return RFMResult(as_of=as_of, bins=bins, scores=tuple(scores), groups=rules)


def rfm(
    history: History,
    *,
    as_of: dt.datetime,
    bins: int = 5,
    groups: Sequence[RFMGroup] = DEFAULT_RFM_GROUPS,
) -> RFMResult:
    """RFM scores of every buyer in ``history`` as of ``as_of``.

    Example::

        result = rfm(history, as_of=now)
        result.members("champions")

    Raises:
        UsageError: for bad arguments.
    """
    return score_rfm(rfm_inputs(history, as_of), as_of=as_of, bins=bins, groups=groups)


def tag_names(result: RFMResult, *, prefix: str = "rfm:") -> Mapping[str, tuple[str, ...]]:
    """Member ids per tag name ``prefix + group`` — what to write with ``store.tag`` so the
    groups become segment input (``tag("rfm:champions")``)."""
    return {prefix + g.name: result.members(g.name) for g in result.groups}
