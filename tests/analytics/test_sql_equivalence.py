"""The store-backed runners (SQL pushdown on SqlStore; ports on InMemoryStore) return exactly
what the pure functions return on the same random data."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from membermkt import Member, analytics
from membermkt.core import analytics as core
from membermkt.segments import sample, tag
from membermkt.stores import InMemoryStore
from membermkt.stores.sql import SqlStore

from ._data import AS_OF, DAY, histories

FUNNEL = core.Funnel.of(
    core.step("A", "menu_click", where={"key": "A"}),
    core.step("C", "menu_click", where={"key": "C"}, within=DAY),
    core.step("buy", "purchase"),
    core.step("again", "purchase", within=3 * DAY),
)
RULES = (
    core.affinity_offer("durian", offer="durian-coupon", at_least=2),
    core.trial_offer("apple", offer="apple-trial"),
    core.membership_offer(offer="membership"),
)
SINCE = AS_OF - 2 * DAY


def load(store, hist) -> None:
    store.upsert_members([Member(m.id, tags=m.tags) for m, _ in hist])
    store.append_events([e for _, es in hist for e in es])


def check_all(source, hist) -> None:
    """Every analysis of ``source`` equals the pure computation on ``hist``."""
    a = analytics
    assert a.rfm(source, as_of=AS_OF) == a.rfm(hist, as_of=AS_OF)
    assert a.rfm(source, as_of=AS_OF, bins=3) == a.rfm(hist, as_of=AS_OF, bins=3)
    for by in (None, "source"):
        assert a.activity_counts(source, as_of=AS_OF, by=by) == a.activity_counts(
            hist, as_of=AS_OF, by=by
        )
        # the classes are those of each member's state folded up to AS_OF (#14: not the
        # stored state, which also folds the events after AS_OF)
        classes = [core.activity_class(m, AS_OF, events=es) for m, es in hist]
        assert a.activity_counts(source, as_of=AS_OF, by=by).counts == tuple(
            classes.count(c) for c in core.ACTIVITY_CLASSES
        )
        for spec in (FUNNEL, core.ACQUISITION_FUNNEL):
            assert a.funnel(source, spec, as_of=AS_OF, by=by) == a.funnel(
                hist, spec, as_of=AS_OF, by=by
            )
    assert a.funnel(source, FUNNEL, as_of=AS_OF, since=SINCE) == a.funnel(
        hist, FUNNEL, as_of=AS_OF, since=SINCE
    )
    for cfg in (core.PathConfig(), core.PathConfig(session_gap=600, path_length=2, top_k=3)):
        assert a.paths(source, as_of=AS_OF, config=cfg) == a.paths(hist, as_of=AS_OF, config=cfg)
    assert a.paths(source, as_of=AS_OF, since=SINCE) == a.paths(hist, as_of=AS_OF, since=SINCE)
    assert a.attribution(source, as_of=AS_OF) == a.attribution(hist, as_of=AS_OF)
    assert a.attribution(source, as_of=AS_OF, window=3 * DAY) == a.attribution(
        hist, as_of=AS_OF, window=3 * DAY
    )
    for period in ("week", "month"):
        assert a.cohorts(source, as_of=AS_OF, period=period, max_periods=4) == a.cohorts(
            hist, as_of=AS_OF, period=period, max_periods=4
        )
    assert a.staff_metrics(source, as_of=AS_OF) == a.staff_metrics(hist, as_of=AS_OF)
    assert a.staff_metrics(source, as_of=AS_OF, since=SINCE) == a.staff_metrics(
        hist, as_of=AS_OF, since=SINCE
    )
    assert a.recommend(source, RULES, as_of=AS_OF) == a.recommend(hist, RULES, as_of=AS_OF)
    ids = [m.id for m, _ in hist]
    if hasattr(source, "select"):  # the activity segments select what activity_class says
        for c in core.ACTIVITY_CLASSES:
            want = [m.id for m, es in hist if core.activity_class(m, AS_OF, events=es) == c]
            assert list(source.select(core.activity(c), AS_OF)) == want
    window = {"start": AS_OF - 5 * DAY, "end": AS_OF}
    lift = a.campaign_lift(source, treatment=ids[::2], holdout=ids[1::2], **window)
    assert lift == a.campaign_lift(hist, treatment=ids[::2], holdout=ids[1::2], **window)


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_sqlite_pushdown_equals_pure(hist) -> None:
    store = SqlStore("sqlite://")
    try:
        load(store, hist)
        assert analytics.sql_runner(store) is not None
        check_all(store, hist)
    finally:
        store.close()


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_duckdb_from_sqlite_equals_pure(hist) -> None:
    """DuckDB runs the SQL definitions on a column-store copy: same results as pure."""
    pytest.importorskip("duckdb")
    store = SqlStore("sqlite://")
    try:
        load(store, hist)
        with analytics.DuckDBAnalytics.from_store(store, chunk_rows=3) as duck:
            assert analytics.sql_runner(duck) is duck
            assert duck.count("members") == len(hist)
            assert duck.count("events") == sum(len(es) for _, es in hist)
            check_all(duck, hist)
    finally:
        store.close()


@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_in_memory_store_equals_pure(hist) -> None:
    store = InMemoryStore()
    load(store, hist)
    assert analytics.sql_runner(store) is None
    check_all(store, hist)


PG_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def pg_store() -> Iterator[SqlStore]:
    if not PG_URL:
        pytest.skip("MEMBERMKT_TEST_POSTGRES_URL is not set")
    store = SqlStore(PG_URL, table_prefix=f"an{uuid.uuid4().hex[:8]}_")
    store.create_schema()
    yield store
    store.drop_tables()
    store.close()


def _clear(store: SqlStore) -> None:
    t = store.tables
    with store._engine.begin() as conn:  # test teardown between examples
        for table in (t.events, t.tags, t.attrs, t.identities, t.members):
            conn.execute(table.delete())


_counter = itertools.count()


@pytest.mark.postgres
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(max_members=8, max_events=40))
def test_postgres_pushdown_equals_pure(pg_store: SqlStore, hist) -> None:
    _clear(pg_store)
    load(pg_store, hist)
    check_all(pg_store, hist)


@pytest.mark.postgres
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(max_members=8, max_events=40))
def test_duckdb_from_postgres_equals_pure(pg_store: SqlStore, hist) -> None:
    """The PostgreSQL copy goes through COPY ... TO STDOUT (CSV): NULLs, empty strings,
    booleans and JSON text survive it."""
    pytest.importorskip("duckdb")
    _clear(pg_store)
    load(pg_store, hist)
    with analytics.DuckDBAnalytics.from_store(pg_store) as duck:
        check_all(duck, hist)


MYSQL_URL = os.environ.get("MEMBERMKT_TEST_MYSQL_URL")


@pytest.fixture(scope="module")
def mysql_store() -> Iterator[SqlStore]:
    if not MYSQL_URL:
        pytest.skip("MEMBERMKT_TEST_MYSQL_URL is not set")
    store = SqlStore(MYSQL_URL, table_prefix=f"an{uuid.uuid4().hex[:8]}_")
    store.create_schema()
    yield store
    store.drop_tables()
    store.close()


@pytest.mark.mysql
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories(max_members=8, max_events=40))
def test_mariadb_pushdown_equals_pure(mysql_store: SqlStore, hist) -> None:
    """MariaDB runs the same definitions (JSON_VALUE, binary collations, no MATERIALIZED)."""
    _clear(mysql_store)
    load(mysql_store, hist)
    assert analytics.sql_runner(mysql_store) is not None
    check_all(mysql_store, hist)


def test_duckdb_refuses_what_it_cannot_copy() -> None:
    pytest.importorskip("duckdb")
    with pytest.raises(Exception, match="copy from a SqlStore"):
        analytics.DuckDBAnalytics.from_store(InMemoryStore())
    with pytest.raises(Exception, match="chunk_rows"):
        analytics.DuckDBAnalytics.from_store(SqlStore("sqlite://"), chunk_rows=0)


def test_segments_over_store_agree_with_rfm_tags() -> None:
    """RFM groups become segment input once materialised as tags."""
    from ._data import buy, history

    hist = history([buy("a", AS_OF - DAY, 100), buy("b", AS_OF - 9 * DAY, 50)])
    store = InMemoryStore()
    load(store, hist)
    result = analytics.rfm(store, as_of=AS_OF)
    analytics.tag_rfm_groups(store, result)
    for g in result.groups:
        assert tuple(store.select(tag(f"rfm:{g.name}"), AS_OF)) == result.members(g.name)
    # re-tagging after a change moves members between groups and nothing else
    assert analytics.tag_rfm_groups(store, result) == 0


def test_campaign_arms_as_segments() -> None:
    from ._data import buy, history

    hist = history([buy(f"m{i}", AS_OF - DAY, 100) for i in range(6)], ids=["x", "y"])
    store = InMemoryStore()
    load(store, hist)
    hold = sample(0.5, "camp")
    lift = analytics.campaign_lift(
        store,
        treatment=~hold,
        holdout=hold,
        start=AS_OF - 2 * DAY,
        end=AS_OF,
    )
    # arms are evaluated as of the start of the window (when the campaign targeted them)
    assert lift.treatment.members + lift.holdout.members == 8
    assert lift.treatment.converted + lift.holdout.converted == 6
    assert isinstance(lift.start, dt.datetime)
    with pytest.raises(Exception, match="needs a store"):
        analytics.campaign_lift(hist, treatment=hold, holdout=~hold, start=AS_OF - DAY, end=AS_OF)


def test_sql_runner_refuses_non_stores() -> None:
    assert analytics.sql_runner(object()) is None
    assert analytics.sql_runner([]) is None
    with pytest.raises(Exception, match="expected a store or an iterable"):
        analytics.rfm(3, as_of=AS_OF)


def test_strategy_is_not_trivial() -> None:
    """Sanity: the random histories exercise every analysis (some example has data)."""
    seen = {"rfm": False, "paths": False, "staff": False}

    @settings(max_examples=100, database=None, derandomize=True)
    @given(histories())
    def probe(hist) -> None:
        seen["rfm"] |= len(core.rfm(hist, as_of=AS_OF)) > 1
        seen["paths"] |= bool(core.paths(hist, as_of=AS_OF).transitions)
        seen["staff"] |= any(
            r.replies
            for r in core.staff_metrics((e for _, es in hist for e in es), as_of=AS_OF).rows
        )

    probe()
    assert all(seen.values()), seen


def _long_history() -> list:
    """Follows and interactions on period boundaries (to the microsecond) over ~3 years, so
    that cohorts need more than one 62-offset bit mask."""
    from ._data import ev, history

    us = dt.timedelta(microseconds=1)
    week0 = dt.datetime(2023, 4, 3, tzinfo=dt.UTC)  # a Monday, 151 weeks before AS_OF
    month0 = dt.datetime(2023, 2, 1, tzinfo=dt.UTC)
    events = [ev("a", "follow", week0)]
    events += [
        ev("a", "view", week0 + w * 7 * DAY + (w % 7) * DAY, url="/x")
        for w in range(150)
        if w % 5 != 3
    ]
    events += [ev("b", "follow", month0 - us), ev("b", "scan", month0)]  # last µs of January
    for m in range(1, 37, 2):
        y, mo = divmod(month0.month - 1 + m, 12)
        events.append(ev("b", "purchase", dt.datetime(month0.year + y, mo + 1, 1, tzinfo=dt.UTC)))
    sunday = week0 + 20 * 7 * DAY - us  # the last µs of a week, then the next Monday
    events += [ev("c", "message", sunday - DAY), ev("c", "follow", sunday)]
    events += [ev("c", "follow", sunday + 3 * DAY), ev("c", "menu_click", sunday + us, key="A")]
    events += [ev("c", "unfollow", sunday + 30 * DAY), ev("c", "view", AS_OF + DAY, url="/y")]
    events += [ev("d", "view", week0, url="/x"), ev("e", "follow", AS_OF + us)]
    events += [ev("f", "follow", AS_OF), ev("f", "scan", AS_OF)]  # the as_of instant counts
    return history(events)


@pytest.mark.parametrize("backend", ["sqlite", "duckdb", "postgres", "mariadb"])
def test_cohorts_over_long_histories_equal_pure(backend: str, request) -> None:
    """SQL cohorts keep one bit per offset in 62-bit masks: offsets past the first mask,
    period boundaries to the microsecond and the as_of instant agree with the pure
    function, by week and by month."""
    hist = _long_history()
    if backend in ("sqlite", "duckdb"):
        if backend == "duckdb":
            pytest.importorskip("duckdb")
        store = SqlStore("sqlite://")
    else:
        store = request.getfixturevalue("pg_store" if backend == "postgres" else "mysql_store")
        _clear(store)
    try:
        load(store, hist)
        source = store
        if backend == "duckdb":
            source = analytics.DuckDBAnalytics.from_store(store)
        for period in ("week", "month"):
            for max_periods in (1, 4, 62, 63, 130, 1000):
                got = analytics.cohorts(source, as_of=AS_OF, period=period, max_periods=max_periods)
                want = analytics.cohorts(hist, as_of=AS_OF, period=period, max_periods=max_periods)
                assert got == want, (period, max_periods)
        weeks = analytics.cohorts(hist, as_of=AS_OF, period="week", max_periods=1000)
        assert any(sum(r.retained[62:]) for r in weeks.rows)  # the second mask is used
        if backend == "duckdb":
            source.close()
    finally:
        if backend in ("sqlite", "duckdb"):
            store.close()


def _large_table_statistics(store: SqlStore) -> None:
    """Make SQLite plan as over the 1M members / 20M events benchmark: its ``sqlite_stat1``
    rows for the events indexes, whatever the store holds."""
    p, t = store.tables.prefix, store.tables.events.name
    with store._engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("DELETE FROM sqlite_stat1")
        conn.exec_driver_sql(
            f"INSERT INTO sqlite_stat1 VALUES ('{t}', '{p}ix_events_member', "
            f"'20069803 21 4 1'), ('{t}', '{p}ux_events_key', '20069803 1')"
        )
        conn.exec_driver_sql("ANALYZE sqlite_schema")


@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_sqlite_pushdown_equals_pure_under_large_table_statistics(hist) -> None:
    """Every analysis, on random histories, with the plans SQLite picks for a 20M-event
    table (where SQLite 3.40's IN seek over the (member_id, type, at) index returned rows
    past ``at <= as_of``): still equal to the pure computation."""
    store = SqlStore("sqlite://")
    try:
        load(store, hist)
        _large_table_statistics(store)
        check_all(store, hist)
    finally:
        store.close()


def test_sqlite_results_do_not_depend_on_planner_statistics() -> None:
    """With the statistics of a large events table (``ANALYZE`` at 1M members / 20M
    events), SQLite 3.40 seeks each type of ``type IN (...)`` in the (member_id, type, at)
    index and returns rows past ``at <= as_of``; events after as_of must still not count
    (cohorts used to retain these members in March)."""
    from ._data import buy, ev, history

    hour = dt.timedelta(hours=1)
    events = []
    for i in range(5):
        m = f"m{i}"
        events += [
            ev(m, "follow", AS_OF - 20 * DAY),
            buy(m, AS_OF - 10 * DAY, 100),
            ev(m, "menu_click", AS_OF + hour, key="A"),
            ev(m, "view", AS_OF + 2 * hour, url="/a"),
            buy(m, AS_OF + 3 * hour, 500),
        ]
    hist = history(events)
    store = SqlStore("sqlite://")
    try:
        load(store, hist)
        _large_table_statistics(store)
        for period in ("week", "month"):
            got = analytics.cohorts(store, as_of=AS_OF, period=period)
            assert got == analytics.cohorts(hist, as_of=AS_OF, period=period)
            if period == "month":  # followed in February, nothing in March up to as_of
                assert [r.retained for r in got.rows] == [(5, 0)]
        check_all(store, hist)
    finally:
        store.close()


def test_sqlite_analytics_let_the_sorter_use_threads() -> None:
    """SQLite analytics connections allow sorter helper threads (``PRAGMA threads``)."""
    from membermkt.analytics.sql._base import SQLITE_SORT_THREADS

    store = SqlStore("sqlite://")
    store.create_schema()
    try:
        sql = analytics.sql_runner(store)
        assert sql is not None
        with sql._connect() as conn:
            got = conn.exec_driver_sql("PRAGMA threads").scalar()
        assert got == min(os.cpu_count() or 1, SQLITE_SORT_THREADS)
        assert got >= 1
    finally:
        store.close()


def test_sqlite_attribution_does_not_count_later_purchases_under_large_statistics() -> None:
    """Found by the fuzz test above: with a 20M-event table's statistics SQLite 3.40 seeks
    ``type IN ('follow', 'purchase')`` per member in the (member_id, type, at) index and
    returned a purchase one day after ``as_of``; attribution now filters with ``+type``."""
    from ._data import buy, ev, history

    events = [
        ev("m0", "follow", AS_OF),
        ev("m0", "follow", AS_OF - DAY),
        buy("m0", AS_OF + DAY, 0, "durian"),
        ev("m1", "follow", AS_OF - 2 * DAY),
    ]
    hist = history(events)
    store = SqlStore("sqlite://")
    try:
        load(store, hist)
        _large_table_statistics(store)
        got = analytics.attribution(store, as_of=AS_OF)
        assert got == analytics.attribution(hist, as_of=AS_OF)
        assert got.buyers == 0
    finally:
        store.close()


def _empty_store(backend: str, request) -> SqlStore:
    """A fresh SQLite store, or the module's PostgreSQL / MariaDB store emptied."""
    if backend == "sqlite":
        return SqlStore("sqlite://")
    store = request.getfixturevalue({"postgresql": "pg_store", "mysql": "mysql_store"}[backend])
    _clear(store)
    return store


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_funnel_where_tells_trailing_spaces_apart(backend: str, request) -> None:
    """A step ``where={"key": "A"}`` does not match the key "A " (MariaDB's utf8mb4_bin
    pads, so the two compared equal there)."""
    from ._data import ev, history

    store = _empty_store(backend, request)
    spec = core.Funnel.of(core.step("A", "menu_click", where={"key": "A"}))
    hist = history([ev("m0", "menu_click", AS_OF - DAY, key="A "), ev("m1", "view", AS_OF)])
    try:
        load(store, hist)
        got = analytics.funnel(store, spec, as_of=AS_OF, by=None)
        assert got == analytics.funnel(hist, spec, as_of=AS_OF, by=None)
        assert got.counts == (0,)
    finally:
        if backend == "sqlite":
            store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_paths_tell_nodes_apart_by_trailing_spaces(backend: str, request) -> None:
    """ "/a" and "/a " are two nodes, ordered by code point when they share an instant
    (a PAD SPACE collation would tie them and leave their order to the server)."""
    from ._data import ev, history

    store = _empty_store(backend, request)
    events = [
        ev("m0", "view", AS_OF - DAY, url="/a "),
        ev("m0", "view", AS_OF - DAY, url="/a"),
        ev("m0", "view", AS_OF - DAY + dt.timedelta(minutes=1), url="/b"),
        ev("m1", "view", AS_OF - DAY, url="/a"),
        ev("m1", "view", AS_OF - DAY, url="/a "),
    ]
    hist = history(events)
    try:
        load(store, hist)
        got = analytics.paths(store, as_of=AS_OF)
        assert got == analytics.paths(hist, as_of=AS_OF)
        assert got.count("page:/a", "page:/a ") == 2
    finally:
        if backend == "sqlite":
            store.close()
