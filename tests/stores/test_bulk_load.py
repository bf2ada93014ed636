"""``membermkt.testing.bulk.load`` leaves a store exactly as ``upsert_members`` then
``append_events`` of the same values would, on every SQL backend."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

pytest.importorskip("numpy")

from membermkt.errors import UsageError
from membermkt.stores.sql import SqlStore
from membermkt.testing.bulk import BulkConfig, generate_columns, load

from .conftest import make_store


def _tables(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    t = store.tables
    with store.engine.connect() as conn:
        for table in (t.members, t.identities, t.tags, t.attrs, t.events):
            cols = [c for c in table.columns if c.name != "seq"]
            rows = [tuple(_norm(v) for v in r) for r in conn.execute(sa.select(*cols))]
            out[table.name.removeprefix(t.prefix)] = sorted(rows, key=repr)
    return out


def _norm(v: Any) -> Any:
    return bool(v) if isinstance(v, bool) else v


def test_bulk_load_equals_the_public_api(sql_backend: str) -> None:
    pop = generate_columns(700, config=BulkConfig(seed=11, events_per_member=10))
    bulk, slow = make_store(sql_backend), make_store(sql_backend)
    try:
        bulk.create_schema()
        slow.create_schema()
        load(bulk, pop, chunk=97)  # several chunks
        values = list(pop.iter_values(with_state=False))
        slow.upsert_members([m for m, _ in values])
        slow.append_events([e for _, evs in values for e in evs])
        got, want = _tables(bulk), _tables(slow)
        for name in want:
            assert len(got[name]) == len(want[name]), name
            assert got[name] == want[name], name
        first, _ = pop.member_values(5)
        assert bulk.get_member(first.id) == slow.get_member(first.id) == first
        if sql_backend == "postgresql":
            # VACUUM (ANALYZE), as autovacuum would after a load: every table vacuumed
            with bulk.engine.connect() as conn:
                names = [t.name for t in (bulk.tables.members, bulk.tables.events)]
                vacuumed = conn.execute(
                    sa.text(
                        "SELECT relname FROM pg_stat_user_tables "
                        "WHERE relname = ANY(:names) AND last_vacuum IS NOT NULL "
                        "AND last_analyze IS NOT NULL"
                    ),
                    {"names": names},
                ).scalars()
                assert sorted(vacuumed) == sorted(names)
    finally:
        for s in (bulk, slow):
            s.drop_tables()
            s.close()


def test_bulk_load_refuses_a_store_with_members() -> None:
    store = make_store("sqlite")
    try:
        pop = generate_columns(20, seed=1)
        load(store, pop)
        with pytest.raises(UsageError, match="empty store"):
            load(store, pop)
        with pytest.raises(UsageError, match="chunk"):
            load(store, pop, chunk=0)
    finally:
        store.close()
