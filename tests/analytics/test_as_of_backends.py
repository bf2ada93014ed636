"""Analytics and exports as of a past time use the state as of that time, on every backend
(history, memory, SQLite, PostgreSQL, MariaDB; DuckDB for analytics): the derived fields
``activity_counts`` and the member exports read are the fold of the events at or before
``as_of`` — never the stored state when a member has later events (#14).

Regression: ``activity_counts`` in SQL classified members by the stored
``last_active_at`` / ``subscribed`` / ``wecom_contact`` (as of their latest event) and the
pure path by the member's stored state, while the activity segments folded up to ``as_of``
(hypothesis seed 221267060889546010895704791665922422648 of
``test_sql_equivalence.py::test_sqlite_pushdown_equals_pure``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt import Event, Member, analytics, fold
from membermkt.core import analytics as core
from membermkt.core.events import state_as_of
from membermkt.errors import UsageError
from membermkt.stores import InMemoryStore
from membermkt.stores.io import (
    STATE_COLUMNS,
    events_to_dataframe,
    export_events_csv,
    export_members_csv,
    member_record,
    members_to_dataframe,
)
from membermkt.stores.sql import SqlStore
from membermkt.testing import strategies as mst

from ._data import AS_OF, DAY, histories

H = dt.timedelta(hours=1)
POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("MEMBERMKT_TEST_MYSQL_URL")

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set"),
        ],
    ),
    pytest.param(
        "mysql",
        id="mariadb",
        marks=[
            pytest.mark.mysql,
            pytest.mark.skipif(not MYSQL_URL, reason="MEMBERMKT_TEST_MYSQL_URL not set"),
        ],
    ),
]
_URLS = {"sqlite": "sqlite://", "postgresql": POSTGRES_URL, "mysql": MYSQL_URL}


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``"memory"`` or one SqlStore per module and backend (emptied by :func:`_fresh`)."""
    if request.param == "memory":
        yield "memory"
        return
    url = _URLS[str(request.param)]
    assert url
    store = SqlStore(url, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
    store.create_schema()
    yield store
    store.drop_tables()
    store.close()


def _fresh(backend: Any) -> InMemoryStore | SqlStore:
    if backend == "memory":
        return InMemoryStore()
    assert isinstance(backend, SqlStore)
    backend.delete_all()
    return backend


def _events_of(mid: str, events: list[Event]) -> list[Event]:
    return [e for e in events if e.member_id == mid]


# --------------------------------------------------------------------------- by hand


def _hand_events() -> list[Event]:
    return [
        # followed long ago, interacts again only after as_of: churned as of then
        Event("m1", "follow", AS_OF - 200 * DAY, {"source": "a"}, key="m1f"),
        Event("m1", "menu_click", AS_OF + DAY, {"key": "A"}, key="m1c"),
        # arrives after as_of: nothing as of then (no source, no activity)
        Event("m2", "follow", AS_OF + DAY, {"source": "b"}, key="m2f"),
        # followed two days before, unfollows after as_of: active as of then
        Event("m3", "follow", AS_OF - 2 * DAY, {}, key="m3f"),
        Event("m3", "unfollow", AS_OF + DAY, {}, key="m3u"),
        # a WeCom contact deleted after as_of: still a contact then, and active
        Event("m4", "contact_added", AS_OF - 3 * DAY, {"staff": "s1"}, key="m4a"),
        Event("m4", "contact_deleted", AS_OF + H, {"staff": "s1", "by": "customer"}, key="m4d"),
    ]


def test_activity_counts_as_of_a_past_time_by_hand(backend: Any) -> None:
    store = _fresh(backend)
    events = _hand_events()
    store.upsert_members([Member(f"m{i}") for i in range(1, 5)])
    store.append_events(events)
    result = _plain(analytics.activity_counts(store, as_of=AS_OF, by="source"))
    # active: m3, m4; churned: m1 (200 days), m2 (nothing yet)
    assert result[:2] == ((2, 0, 0, 2), (("(unknown)", (2, 0, 0, 1)), ("a", (0, 0, 0, 1))))
    # as of now (after every event) the stored state is right: m1, m2 active, m3, m4 churned
    later = analytics.activity_counts(store, as_of=AS_OF + 2 * DAY, by="source")
    assert later.as_dict() == {"active": 2, "to_be_activated": 0, "dormant": 0, "churned": 2}
    assert later.groups == (("(unknown)", (0, 0, 0, 2)), ("a", (1, 0, 0, 0)), ("b", (1, 0, 0, 0)))
    # the pure path on the same history agrees
    hist = [(fold(Member(f"m{i}"), _events_of(f"m{i}", events)), []) for i in range(1, 5)]
    hist = [(m, _events_of(m.id, events)) for m, _ in hist]
    assert _plain(analytics.activity_counts(hist, as_of=AS_OF, by="source")) == result
    # and so does a DuckDB copy of a SQL store
    if isinstance(store, SqlStore) and store._engine.dialect.name == "sqlite":
        pytest.importorskip("duckdb")
        with analytics.DuckDBAnalytics.from_store(store) as duck:
            assert _plain(analytics.activity_counts(duck, as_of=AS_OF, by="source")) == result


# --------------------------------------------------------------------------- properties


def _want_counts(hist: list[tuple[Member, list[Event]]], as_of: dt.datetime) -> tuple[int, ...]:
    classes = [core.activity_class(m, as_of, events=es) for m, es in hist]
    return tuple(classes.count(c) for c in core.ACTIVITY_CLASSES)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(hist=histories(max_members=8, max_events=40), shift=st.sampled_from((-200, -3, -1, 0, 2)))
def test_activity_counts_and_groups_fold_as_of(
    backend: Any, hist: list[tuple[Member, list[Event]]], shift: int
) -> None:
    store = _fresh(backend)
    store.upsert_members([Member(m.id, tags=m.tags) for m, _ in hist])
    store.append_events([e for _, es in hist for e in es])
    as_of = AS_OF + shift * DAY
    folded = [state_as_of(m, es, as_of) for m, es in hist]
    for by in (None, "source"):
        want = _plain(core.activity_counts(folded, as_of=as_of, by=by))
        got = analytics.activity_counts(store, as_of=as_of, by=by)
        assert _plain(got) == want, (by, as_of)
        assert _plain(analytics.activity_counts(hist, as_of=as_of, by=by)) == want
    assert want[0] == _want_counts(hist, as_of)
    spec = core.ACQUISITION_FUNNEL
    pure = core.funnel(
        spec, [(m, es) for m, (_, es) in zip(folded, hist, strict=True)], as_of=as_of
    )
    got_funnel = analytics.funnel(store, spec, as_of=as_of, by="source")
    assert (got_funnel.counts, got_funnel.groups) == (pure.counts, pure.groups)
    if isinstance(store, SqlStore) and store._engine.dialect.name == "sqlite":
        pytest.importorskip("duckdb")
        with analytics.DuckDBAnalytics.from_store(store) as duck:
            assert _plain(analytics.activity_counts(duck, as_of=as_of, by="source")) == (
                _plain(core.activity_counts(folded, as_of=as_of, by="source"))
            )


def _plain(result: Any) -> tuple[Any, ...]:
    return (result.counts, result.groups, result.by, result.as_of)


def _state_cells(row: dict[str, Any]) -> dict[str, str]:
    return {c: str(row[c]) for c in STATE_COLUMNS}


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=mst.histories(max_members=8, max_events=30), shift=st.integers(-30, 30))
def test_member_exports_as_of_are_the_fold_up_to_as_of(
    backend: Any, history: tuple[list[Member], list[Event]], shift: int
) -> None:
    pd = pytest.importorskip("pandas")
    members, events = history
    store = _fresh(backend)
    store.upsert_members(members)
    store.append_events(events)
    as_of = mst.AS_OF + shift * H
    kept = [e for e in events if e.at <= as_of]
    want = {m.id: fold(Member(m.id), [e for e in kept if e.member_id == m.id]) for m in members}
    # CSV: every state column is the fold up to as_of
    buf = io.StringIO()
    assert export_members_csv(store, buf, as_of=as_of) == len(want)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert {r["id"]: _state_cells(r) for r in rows} == {
        mid: _state_cells(member_record(m)) for mid, m in want.items()
    }
    buf = io.StringIO()
    assert export_events_csv(store, buf, as_of=as_of) == len(kept)
    # DataFrame
    df = members_to_dataframe(store, as_of=as_of)
    got = {
        r["id"]: tuple(
            None if pd.isna(v) else v
            for v in (r["orders_count"], r["orders_total_fen"], r["source"], r["subscribed"])
        )
        for r in df.to_dict("records")
    }
    assert got == {
        mid: (
            m.state.purchases.count,
            m.state.purchases.total_fen,
            m.state.source or None,
            m.state.subscribed,
        )
        for mid, m in want.items()
    }
    last = {r["id"]: r["last_active_at"] for r in df.to_dict("records")}
    for mid, m in want.items():
        s = m.state.last_active_at
        assert pd.isna(last[mid]) if s is None else last[mid] == pd.Timestamp(s), mid
    assert len(events_to_dataframe(store, as_of=as_of)) == len(kept)
    # export_sql into another database
    target = sa.create_engine("sqlite://")
    counts = store.export_sql(target, table_prefix="crm_", as_of=as_of)
    assert (counts["members"], counts["events"]) == (len(want), len(kept))
    with target.connect() as conn:
        table = sa.Table("crm_members", sa.MetaData(), autoload_with=conn)
        exported = {r.id: r for r in conn.execute(sa.select(table))}
    for mid, m in want.items():
        s, r = m.state, exported[mid]
        assert (r.orders_count, r.orders_total_fen) == (s.purchases.count, s.purchases.total_fen)
        assert (r.subscribed, r.wecom_contact, r.source) == (
            s.subscribed,
            s.wecom_contact,
            s.source,
        )
        assert _utc(r.last_active_at) == s.last_active_at
        assert _utc(r.followed_at) == s.followed_at
        assert _utc(r.last_order_at) == s.purchases.last_at
    target.dispose()


def _utc(v: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands timestamps back naive (they were written as UTC)
    return None if v is None else v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v


def test_exports_refuse_a_naive_as_of() -> None:
    store = InMemoryStore()
    naive = dt.datetime(2026, 3, 1, 12)
    with pytest.raises(UsageError, match="as_of"):
        export_members_csv(store, io.StringIO(), as_of=naive)
    with pytest.raises(UsageError, match="as_of"):
        export_events_csv(store, io.StringIO(), as_of=naive)
    with pytest.raises(UsageError, match="as_of"):
        store.export_sql("sqlite://", as_of=naive)


def test_cli_members_export_as_of(tmp_path: Any) -> None:
    from membermkt.cli import main

    db = f"sqlite:///{tmp_path / 'm.db'}"
    store = SqlStore(db)
    store.append_events(_hand_events())
    store.close()
    out = tmp_path / "members.csv"
    assert main(["members", "export", str(out), "--as-of", AS_OF.isoformat(), "--db", db]) == 0
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert (rows["m2"]["subscribed"], rows["m2"]["source"]) == ("", "")
    assert (rows["m3"]["subscribed"], rows["m4"]["wecom_contact"]) == ("true", "true")
    assert rows["m1"]["last_active_at"] == (AS_OF - 200 * DAY).isoformat()
    assert main(["members", "export", str(out), "--db", db]) == 0
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert (rows["m2"]["source"], rows["m3"]["subscribed"]) == ("b", "false")
    events = tmp_path / "events.csv"
    assert (
        main(
            ["members", "export", str(events), "--events", "--as-of", AS_OF.isoformat(), "--db", db]
        )
        == 0
    )
    assert len(list(csv.DictReader(io.StringIO(events.read_text(encoding="utf-8"))))) == 3
