"""Analytics for operators and notebooks, on a store or on an in-memory history.

Every function takes a *source* first:

* a SQL store (``SqlStore`` on SQLite or PostgreSQL): the database does the work
  (:class:`~membermkt.analytics.sql.SqlAnalytics`);
* a :class:`~membermkt.analytics.duck.DuckDBAnalytics` (extra ``duckdb``): a column-store
  copy of a SQL store's members and events, queried with the same definitions as SQL;
* any other :class:`~membermkt.core.ports.Store` (e.g. ``InMemoryStore``): members and their
  events are read through the ports, one member at a time;
* a history: an iterable of ``(member, events)`` pairs.

and returns a notebook-ready result (:mod:`membermkt.analytics.results`): the frozen core
result plus ``to_pandas()`` (extra ``pandas``), ``plot()`` (extra ``plot``) and
``_repr_html_``. :func:`run_all` computes the whole bundle, which :mod:`membermkt.report`
turns into one HTML page.

Example::

    from membermkt import analytics
    rfm = analytics.rfm(store, as_of=now)
    rfm.plot()                                   # the RFM grid
    analytics.tag_rfm_groups(store, rfm)         # now tag("rfm:champions") is a segment
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy.engine import Engine

from membermkt.analytics._extras import MissingExtraError
from membermkt.analytics.duck import DuckDBAnalytics
from membermkt.analytics.results import (
    ActivityResult,
    AttributionResult,
    CohortResult,
    FunnelResult,
    LiftResult,
    NotebookResult,
    OfferResult,
    PathResult,
    RFMResult,
    StaffResult,
    notebook,
)
from membermkt.analytics.sql import SUPPORTED_DIALECTS, SqlAnalytics
from membermkt.core import analytics as core
from membermkt.core.analytics import (
    ACQUISITION_FUNNEL,
    ACTIVITY_CLASSES,
    DEFAULT_RFM_GROUPS,
    ActivityWindows,
    Funnel,
    FunnelStep,
    OfferRule,
    PathConfig,
    RFMGroup,
    activity,
    affinity_offer,
    membership_offer,
    step,
    trial_offer,
)
from membermkt.core.analytics._common import History, check_as_of
from membermkt.core.events import state_as_of
from membermkt.core.segments import TRUE, Segment
from membermkt.errors import UsageError
from membermkt.stores.sql.schema import Tables

__all__ = [
    "ACQUISITION_FUNNEL",
    "ACTIVITY_CLASSES",
    "DEFAULT_RFM_GROUPS",
    "ActivityResult",
    "ActivityWindows",
    "AnalyticsBundle",
    "AttributionResult",
    "CohortResult",
    "DuckDBAnalytics",
    "Funnel",
    "FunnelResult",
    "FunnelStep",
    "LiftResult",
    "MissingExtraError",
    "NotebookResult",
    "OfferResult",
    "OfferRule",
    "PathConfig",
    "PathResult",
    "RFMGroup",
    "RFMResult",
    "SqlAnalytics",
    "StaffResult",
    "activity",
    "activity_counts",
    "affinity_offer",
    "attribution",
    "campaign_lift",
    "cohorts",
    "funnel",
    "history_of",
    "membership_offer",
    "notebook",
    "paths",
    "recommend",
    "rfm",
    "run_all",
    "sql_runner",
    "staff_metrics",
    "step",
    "tag_rfm_groups",
    "trial_offer",
]


def _is_store(source: object) -> bool:
    return all(hasattr(source, a) for a in ("select", "get_member", "events_for"))


def sql_runner(source: object) -> SqlAnalytics | None:
    """A :class:`~membermkt.analytics.sql.SqlAnalytics` for a SQL store on a supported
    dialect, else ``None`` (the caller then reads through the ports).

    The store must expose its schema ``tables`` and its SQLAlchemy engine (``engine``; the
    ``SqlStore`` of this version keeps it as ``_engine``). Its schema is created first.
    """
    if isinstance(source, SqlAnalytics):
        return source
    tables = getattr(source, "tables", None)
    engine = getattr(source, "engine", None) or getattr(source, "_engine", None)
    if not isinstance(engine, Engine) or not isinstance(tables, Tables):
        return None
    if engine.dialect.name not in SUPPORTED_DIALECTS:
        return None
    create = getattr(source, "create_schema", None)
    if callable(create):
        create()
    return SqlAnalytics(engine, tables)


def history_of(source: object, as_of: dt.datetime) -> History:
    """``(member, events)`` pairs of a store (read member by member through the ports), or
    of ``source`` itself when it already is a history — each member with its state as of
    ``as_of`` (:func:`~membermkt.core.events.state_as_of`: the stored state when no event is
    later, else the fold of the events at or before ``as_of``)."""
    as_of = check_as_of(as_of)
    if not _is_store(source):
        if isinstance(source, Iterable):
            return ((state_as_of(m, es, as_of), es) for m, es in source)
        raise UsageError(
            f"expected a store or an iterable of (member, events), got {type(source).__name__}"
        )
    store: Any = source

    def pairs() -> Iterator[tuple[Any, Sequence[Any]]]:
        for mid in store.select(TRUE, as_of):
            member = store.get_member(mid)
            if member is not None:
                events = store.events_for(mid)
                yield state_as_of(member, events, as_of), events

    return pairs()


def rfm(
    source: object,
    *,
    as_of: dt.datetime,
    bins: int = 5,
    groups: Sequence[RFMGroup] = DEFAULT_RFM_GROUPS,
) -> RFMResult:
    """RFM scores and groups; see :func:`membermkt.core.analytics.rfm`."""
    sql = sql_runner(source)
    if sql is not None:
        return notebook(sql.rfm(as_of=as_of, bins=bins, groups=groups))
    result = core.rfm(history_of(source, as_of), as_of=as_of, bins=bins, groups=groups)
    return notebook(result)


def tag_rfm_groups(store: Any, result: core.RFMResult, *, prefix: str = "rfm:") -> int:
    """Materialise RFM groups as tags (``prefix + group``) so they work as segment input:
    members get their group's tag and lose the other groups' tags. Returns the number of
    changes."""
    changed = 0
    names = core.tag_names(result, prefix=prefix)
    for tag, ids in names.items():
        keep = frozenset(ids)
        changed += store.untag(
            [
                i
                for i in store.select(core.OfferRule("x", _tag(tag)).segment, result.as_of)
                if i not in keep
            ],
            tag,
        )
        changed += store.tag(ids, tag)
    return changed


def _tag(name: str) -> Segment:
    from membermkt.core.segments import tag

    return tag(name)


def activity_counts(
    source: object,
    *,
    as_of: dt.datetime,
    windows: ActivityWindows | None = None,
    by: str | None = None,
) -> ActivityResult:
    """Members per activity class; see :func:`membermkt.core.analytics.activity_counts`."""
    w = windows or ActivityWindows()
    sql = sql_runner(source)
    if sql is not None and (by is None or by in _SQL_BY):
        return notebook(sql.activity_counts(as_of=as_of, windows=w, by=by))
    members = (m for m, _ in history_of(source, as_of))
    return notebook(core.activity_counts(members, as_of=as_of, windows=w, by=by))


_SQL_BY = frozenset({"source", "gender", "city", "province", "country", "income_band", "tier"})


def funnel(
    source: object,
    spec: core.Funnel = ACQUISITION_FUNNEL,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
    by: str | None = "source",
) -> FunnelResult:
    """Funnel counts per step (and per ``by`` group); see
    :func:`membermkt.core.analytics.funnel`."""
    sql = sql_runner(source)
    if sql is not None and (by is None or by in _SQL_BY):
        return notebook(sql.funnel(spec, as_of=as_of, since=since, by=by))
    result = core.funnel(spec, history_of(source, as_of), as_of=as_of, since=since, by=by)
    return notebook(result)


def paths(
    source: object,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None = None,
    config: PathConfig | None = None,
) -> PathResult:
    """Transitions, top paths and dwell times; see :func:`membermkt.core.analytics.paths`."""
    sql = sql_runner(source)
    if sql is not None:
        return notebook(sql.paths(as_of=as_of, since=since, config=config))
    result = core.paths(history_of(source, as_of), as_of=as_of, since=since, config=config)
    return notebook(result)


def attribution(
    source: object,
    *,
    as_of: dt.datetime,
    model: str = "first_touch",
    window: dt.timedelta | None = None,
) -> AttributionResult:
    """Source → followers → buyers → revenue, crediting a source only with revenue after the
    member arrived through it; see :func:`membermkt.core.analytics.attribution`."""
    sql = sql_runner(source)
    if sql is not None and model == "first_touch":
        return notebook(sql.attribution(as_of=as_of, window=window))
    return notebook(
        core.attribution(history_of(source, as_of), as_of=as_of, model=model, window=window)
    )


def _store_of(source: object) -> Any:
    """The store that evaluates segments for ``source`` (itself, or the store a
    :class:`DuckDBAnalytics` was copied from), else ``None``."""
    if _is_store(source):
        return source
    store = getattr(source, "store", None) if isinstance(source, DuckDBAnalytics) else None
    return store if _is_store(store) else None


def _ids(source: object, arm: Segment | Iterable[str], as_of: dt.datetime) -> Iterable[str]:
    if isinstance(arm, Segment):
        store = _store_of(source)
        if store is None:
            raise UsageError("a segment as campaign arm needs a store; pass member ids instead")
        return list(store.select(arm, as_of))
    return arm


def campaign_lift(
    source: object,
    *,
    treatment: Segment | Iterable[str],
    holdout: Segment | Iterable[str],
    start: dt.datetime,
    end: dt.datetime,
    event: str = "purchase",
    where: Mapping[str, object] | None = None,
) -> LiftResult:
    """Campaign conversions in ``(start, end]`` against the holdout; arms are member ids or
    segments (evaluated as of ``start``)."""
    t = _ids(source, treatment, start)
    h = _ids(source, holdout, start)
    sql = sql_runner(source)
    if sql is not None:
        conv = sql.conversions(start=start, end=end, event=event, where=where)
        return notebook(
            core.lift_from_conversions(
                treatment=t, holdout=h, conversions=conv, start=start, end=end
            )
        )
    result = core.campaign_lift(
        history_of(source, end),
        treatment=t,
        holdout=h,
        start=start,
        end=end,
        event=event,
        where=where,
    )
    return notebook(result)


def cohorts(
    source: object, *, as_of: dt.datetime, period: str = "week", max_periods: int = 12
) -> CohortResult:
    """Retention by follow week/month; see :func:`membermkt.core.analytics.cohorts`."""
    sql = sql_runner(source)
    if sql is not None:
        return notebook(sql.cohorts(as_of=as_of, period=period, max_periods=max_periods))
    result = core.cohorts(
        history_of(source, as_of), as_of=as_of, period=period, max_periods=max_periods
    )
    return notebook(result)


def staff_metrics(
    source: object, *, as_of: dt.datetime, since: dt.datetime | None = None
) -> StaffResult:
    """WeCom staff metrics; see :func:`membermkt.core.analytics.staff_metrics`."""
    sql = sql_runner(source)
    if sql is not None:
        return notebook(sql.staff_metrics(as_of=as_of, since=since))
    events = (e for _, evs in history_of(source, as_of) for e in evs)
    return notebook(core.staff_metrics(events, as_of=as_of, since=since))


def recommend(source: object, rules: Sequence[OfferRule], *, as_of: dt.datetime) -> OfferResult:
    """The next offer per member. On a store each rule's segment is evaluated by the store
    (``store.select``, compiled to SQL on a SQL store)."""
    store = _store_of(source)
    if store is not None:
        selections = [store.select(r.segment, as_of) for r in rules]
        return notebook(core.offers_from_selections(rules, selections, as_of=as_of))
    return notebook(core.recommend(rules, history_of(source, as_of), as_of=as_of))


@attrs.frozen(slots=True, kw_only=True)
class AnalyticsBundle:
    """Every analysis of one source as of one time (what :mod:`membermkt.report` renders)."""

    as_of: dt.datetime
    activity: ActivityResult
    rfm: RFMResult
    funnel: FunnelResult
    attribution: AttributionResult
    cohorts: CohortResult
    paths: PathResult
    staff: StaffResult
    offers: OfferResult | None = None
    lift: LiftResult | None = None

    def results(self) -> list[tuple[str, NotebookResult]]:
        """``(title, result)`` pairs in report order (absent ones left out)."""
        items: list[tuple[str, NotebookResult | None]] = [
            ("Activity classes", self.activity),
            ("RFM", self.rfm),
            ("Funnel", self.funnel),
            ("Attribution", self.attribution),
            ("Cohort retention", self.cohorts),
            ("Paths", self.paths),
            ("WeCom staff", self.staff),
            ("Next offers", self.offers),
            ("Campaign lift", self.lift),
        ]
        return [(t, r) for t, r in items if r is not None]

    def _repr_html_(self) -> str:
        parts = [f"<h3>Analytics as of {self.as_of:%Y-%m-%d %H:%M} UTC</h3>"]
        parts.extend(r._repr_html_() for _, r in self.results())  # type: ignore[attr-defined]
        return "".join(parts)


def run_all(
    source: object,
    *,
    as_of: dt.datetime,
    funnel_spec: core.Funnel = ACQUISITION_FUNNEL,
    windows: ActivityWindows | None = None,
    offer_rules: Sequence[OfferRule] = (),
    period: str = "week",
    since: dt.datetime | None = None,
) -> AnalyticsBundle:
    """The whole analytics bundle. On a history, pass a re-iterable one (a list), since
    every analysis reads it again.

    Raises:
        UsageError: for bad arguments.
    """
    as_of = check_as_of(as_of)
    if not _is_store(source) and sql_runner(source) is None and iter(source) is source:  # type: ignore[call-overload]
        raise UsageError("run_all reads the history several times: pass a list, not an iterator")
    return AnalyticsBundle(
        as_of=as_of,
        activity=activity_counts(source, as_of=as_of, windows=windows, by="source"),
        rfm=rfm(source, as_of=as_of),
        funnel=funnel(source, funnel_spec, as_of=as_of, since=since),
        attribution=attribution(source, as_of=as_of),
        cohorts=cohorts(source, as_of=as_of, period=period),
        paths=paths(source, as_of=as_of, since=since),
        staff=staff_metrics(source, as_of=as_of, since=since),
        offers=recommend(source, offer_rules, as_of=as_of) if offer_rules else None,
    )
