"""Paths: menu/page transitions, top paths and dwell-time distributions.

A member's *page events* are their ``menu_click`` events (node ``"menu:<key>"``) and
``view`` events (node ``"page:<url>"``), ordered by time (ties by node name). A gap longer
than ``session_gap`` starts a new session; transitions and paths never cross sessions.

* **Transitions** ``A → B``: consecutive page events in a session; their *shares* per source
  node sum to 1 (``shares()["menu:A"]["page:/c"]`` is "of the steps leaving A, how many went
  to /c").
* **Top paths**: the most frequent runs of ``path_length`` consecutive nodes in a session
  (ties by path), the ``top_k`` first.
* **Dwell**: the ``dwell_seconds`` property of page events (views carry it; menu clicks may),
  per node: count, mean, median, p90 (nearest rank) and a histogram over ``dwell_edges``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from membermkt.core.analytics._common import History, Table, check_as_of
from membermkt.core.events import Event
from membermkt.errors import UsageError

__all__ = [
    "DwellStats",
    "PathConfig",
    "PathResult",
    "dwell_stats",
    "fold_page_rows",
    "page_node",
    "path_result",
    "paths",
]

PAGE_TYPES: Final = frozenset({"menu_click", "view"})


def page_node(event: Event) -> str | None:
    """The path node of a page event (``"menu:<key>"`` / ``"page:<url>"``), else ``None``."""
    if event.type == "menu_click":
        key = event.properties.get("key")
        return f"menu:{key}" if isinstance(key, str) and key else None
    if event.type == "view":
        url = event.properties.get("url")
        return f"page:{url}" if isinstance(url, str) and url else None
    return None


def _dwell(event: Event) -> float | None:
    d = event.properties.get("dwell_seconds")
    if isinstance(d, bool) or not isinstance(d, int | float) or d < 0:
        return None
    return d


def _pos(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"PathConfig.{attribute.name} must be a positive int, got {value!r}")


def _edges(value: Iterable[float]) -> tuple[float, ...]:
    out = tuple(value)
    if not out or any(b <= a for a, b in itertools.pairwise(out)) or out[0] < 0:
        raise UsageError(f"dwell_edges must be increasing and non-negative, got {out!r}")
    return out


@attrs.frozen(slots=True, kw_only=True)
class PathConfig:
    """Path analysis settings.

    Attributes:
        session_gap: seconds of silence that end a session (default 30 minutes).
        path_length: nodes per counted path (2 or more).
        top_k: how many top paths to keep.
        dwell_edges: histogram bin lower edges in seconds; the last bin is open-ended.
    """

    session_gap: int = attrs.field(default=1800, validator=_pos)
    path_length: int = attrs.field(default=3, validator=_pos)
    top_k: int = attrs.field(default=10, validator=_pos)
    dwell_edges: tuple[float, ...] = attrs.field(
        default=(0, 5, 10, 30, 60, 120, 300, 600), converter=_edges
    )

    def __attrs_post_init__(self) -> None:
        if self.path_length < 2:
            raise UsageError(f"PathConfig.path_length must be at least 2, got {self.path_length}")


@attrs.frozen(slots=True, kw_only=True)
class DwellStats:
    """Dwell-time distribution of one node (seconds)."""

    count: int
    mean: float
    p50: float
    p90: float
    max: float
    histogram: tuple[int, ...]
    """Counts per bin of :attr:`PathConfig.dwell_edges` (last bin open-ended)."""


def dwell_stats(values: Mapping[float, int], edges: tuple[float, ...]) -> DwellStats:
    """Stats from a value → count mapping (the shape SQL returns from ``GROUP BY``).

    Raises:
        UsageError: when there is no value.
    """
    items = sorted((v, c) for v, c in values.items() if c > 0)
    n = sum(c for _, c in items)
    if n == 0:
        raise UsageError("dwell_stats needs at least one value")
    hist = [0] * len(edges)
    total = 0.0
    for v, c in items:
        total += v * c
        hist[max(0, bisect.bisect_right(edges, v) - 1)] += c
    return DwellStats(
        count=n,
        mean=total / n,
        p50=_quantile_counts(items, n, 0.5),
        p90=_quantile_counts(items, n, 0.9),
        max=items[-1][0],
        histogram=tuple(hist),
    )


def _quantile_counts(items: list[tuple[float, int]], n: int, q: float) -> float:
    """The nearest-rank ``q`` quantile of sorted (value, count) pairs."""
    rank = max(1, math.ceil(q * n))
    acc = 0
    for v, c in items:
        acc += c
        if acc >= rank:
            return v
    return items[-1][0]


@attrs.frozen(slots=True, kw_only=True)
class PathResult:
    """Transitions, top paths and dwell distributions.

    Attributes:
        config: the settings used.
        transitions: ``(from, to, count)`` sorted by from, to.
        top_paths: ``(nodes, count)``, most frequent first (ties by nodes).
        dwell: ``(node, DwellStats)`` sorted by node.
    """

    config: PathConfig
    transitions: tuple[tuple[str, str, int], ...]
    top_paths: tuple[tuple[tuple[str, ...], int], ...]
    dwell: tuple[tuple[str, DwellStats], ...]

    def shares(self) -> dict[str, dict[str, float]]:
        """For each source node, the share of its transitions going to each target (sums
        to 1 per source)."""
        totals: Counter[str] = Counter()
        for a, _, n in self.transitions:
            totals[a] += n
        out: dict[str, dict[str, float]] = {}
        for a, b, n in self.transitions:
            out.setdefault(a, {})[b] = n / totals[a]
        return out

    def nodes(self) -> tuple[str, ...]:
        """Every node seen in a transition, busiest first (ties by name)."""
        c: Counter[str] = Counter()
        for a, b, n in self.transitions:
            c[a] += n
            c[b] += n
        return tuple(sorted(c, key=lambda k: (-c[k], k)))

    def count(self, a: str, b: str) -> int:
        """How many ``a → b`` transitions."""
        for x, y, n in self.transitions:
            if x == a and y == b:
                return n
        return 0

    def table(self) -> Table:
        """One row per transition with its share of the source's transitions."""
        shares = self.shares()
        return Table(
            ("from", "to", "count", "share"),
            tuple((a, b, n, shares[a][b]) for a, b, n in self.transitions),
            title="Transitions",
        )

    def paths_table(self) -> Table:
        """The top paths."""
        return Table(
            ("path", "count"),
            tuple((" → ".join(p), n) for p, n in self.top_paths),
            title=f"Top {self.config.path_length}-step paths",
        )

    def dwell_table(self) -> Table:
        """Dwell stats per node."""
        return Table(
            ("node", "count", "mean", "p50", "p90", "max"),
            tuple((k, d.count, d.mean, d.p50, d.p90, d.max) for k, d in self.dwell),
            title="Dwell time (seconds)",
        )

    def _repr_html_(self) -> str:
        return (
            f"<p><b>Paths</b> — {len(self.transitions)} distinct transitions</p>"
            + self.paths_table().to_html()
            + self.dwell_table().to_html()
            + self.table().to_html(max_rows=20)
        )


def path_result(
    *,
    config: PathConfig,
    transitions: Mapping[tuple[str, str], int],
    path_counts: Mapping[tuple[str, ...], int],
    dwell_values: Mapping[str, Mapping[float, int]],
) -> PathResult:
    """Assemble a :class:`PathResult` from counts (used by the pure and the SQL runners)."""
    top = sorted(((p, n) for p, n in path_counts.items() if n > 0), key=lambda x: (-x[1], x[0]))
    return PathResult(
        config=config,
        transitions=tuple(sorted((a, b, n) for (a, b), n in transitions.items() if n > 0)),
        top_paths=tuple(top[: config.top_k]),
        dwell=tuple(
            (node, dwell_stats(vals, config.dwell_edges))
            for node, vals in sorted(dwell_values.items())
            if any(c > 0 for c in vals.values())
        ),
    )


def paths(
    history: History,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
    config: PathConfig | None = None,
) -> PathResult:
    """Path analysis of the page events in ``(since, as_of]``.

    Raises:
        UsageError: for bad arguments.
    """
    cfg = config or PathConfig()
    as_of = check_as_of(as_of)
    lower = check_as_of(since, "since") if since is not None else None
    trans: Counter[tuple[str, str]] = Counter()
    grams: Counter[tuple[str, ...]] = Counter()
    dwell: dict[str, Counter[float]] = {}
    k = cfg.path_length
    for _member, events in history:
        seq = []
        for e in events:
            at = e.at_utc
            if e.type not in PAGE_TYPES or at > as_of or (lower is not None and at <= lower):
                continue
            node = page_node(e)
            if node is None:
                continue
            seq.append((at, node))
            d = _dwell(e)
            if d is not None:
                dwell.setdefault(node, Counter())[d] += 1
        seq.sort()
        session: list[str] = []
        prev_at: dt.datetime | None = None
        for at, node in seq:
            if prev_at is not None and (at - prev_at).total_seconds() > cfg.session_gap:
                session = []
            if session:
                trans[(session[-1], node)] += 1
            session.append(node)
            if len(session) >= k:
                grams[tuple(session[-k:])] += 1
            prev_at = at
    return path_result(config=cfg, transitions=trans, path_counts=grams, dwell_values=dwell)


def fold_page_rows(
    rows: Iterable[tuple[Any, int, str, float | None]], *, config: PathConfig
) -> PathResult:
    """Paths from page events already reduced to ``(member, at_us, node, dwell)`` rows —
    sorted by member, then time, then node — as a database streams them (the SQLite runner
    of :mod:`membermkt.analytics.sql`). ``at_us`` is the instant in integer microseconds;
    ``dwell`` the ``dwell_seconds`` number or None. The same sessions, transitions, paths
    and dwell counts as :func:`paths` over the events they came from, in one pass with
    memory bounded by the number of distinct nodes and paths (not by the rows).

    Raises:
        UsageError: when the rows are not in that order.
    """
    k = config.path_length
    gap = config.session_gap * 1_000_000
    trans: dict[tuple[str, str], int] = {}
    grams: dict[tuple[str, ...], int] = {}
    dwell: dict[str, dict[float, int]] = {}
    prev_member: Any = None
    prev_key: tuple[int, str] = (0, "")
    session: list[str] = []
    for member, at, node, d in rows:
        if d is not None and d >= 0:
            per = dwell.get(node)
            if per is None:
                per = dwell[node] = {}
            per[d] = per.get(d, 0) + 1
        if member != prev_member:
            if prev_member is not None and member < prev_member:
                raise UsageError(f"page rows out of member order: {member!r} after {prev_member!r}")
            prev_member = member
            session = [node]
        else:
            key = (at, node)
            if key < prev_key:
                raise UsageError(f"page rows of {member!r} out of time order at {at}")
            if at - prev_key[0] > gap:
                session = [node]
            else:
                pair = (session[-1], node)
                trans[pair] = trans.get(pair, 0) + 1
                session.append(node)
                if len(session) >= k:
                    gram = tuple(session[-k:])
                    grams[gram] = grams.get(gram, 0) + 1
                    if len(session) > 2 * k:  # keep the list short: only the last k matter
                        del session[:-k]
        prev_key = (at, node)
    return path_result(config=config, transitions=trans, path_counts=grams, dwell_values=dwell)
