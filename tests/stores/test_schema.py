"""Schema versioning: created once on first use, re-opened as is, newer schemas refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from membermkt.core.members import Member, Profile
from membermkt.errors import StoreError
from membermkt.segments import attr
from membermkt.stores import SqlStore
from membermkt.stores.sql.schema import SCHEMA_VERSION

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_schema_is_created_on_first_use_and_reopened(tmp_path: Path) -> None:
    """A second store on the same file sees the data and the same version."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with SqlStore(url) as first:
        first.upsert_members([Member("m1", Profile(city="Hangzhou"))])
        assert first.schema_version() == SCHEMA_VERSION
    with SqlStore(url) as again:
        assert again.count(attr("city") == "Hangzhou", AS_OF) == 1
        assert again.schema_version() == SCHEMA_VERSION
        with again.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer membermkt is not silently misread."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with SqlStore(url, table_prefix="x_") as store:
        store.create_schema()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE x_schema_version SET version = 99")
    engine.dispose()
    with SqlStore(url, table_prefix="x_") as newer, pytest.raises(StoreError, match="newer"):
        newer.count(attr("city") == "x", AS_OF)


def test_table_prefixes_keep_stores_apart(tmp_path: Path) -> None:
    """Two prefixes in one database are two independent stores."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with SqlStore(url, table_prefix="a_") as a, SqlStore(url, table_prefix="b_") as b:
        a.upsert_members([Member("m1")])
        assert b.get_member("m1") is None
        names = sa.inspect(a.engine).get_table_names()
        assert "a_members" in names
        assert "b_members" in names


def test_a_version_1_database_is_migrated_and_backfilled(tmp_path: Path) -> None:
    """Version 2 adds the merges table and the as-of/relations columns, filled from events."""
    from membermkt.core.events import Event

    url = f"sqlite:///{tmp_path / 'v1.db'}"
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    h = dt.timedelta(hours=1)
    with SqlStore(url, table_prefix="x_") as first:
        first.append_events(
            [
                Event("m1", "follow", t0, {"source": "parcel"}, key="f"),
                Event("m1", "purchase", t0 + h, {"amount_fen": 990}, key="p"),
                Event("m1", "contact_added", t0, {"staff": "a"}, key="a1"),
                Event("m1", "contact_added", t0, {"staff": "b"}, key="b1"),
                Event("m1", "contact_deleted", t0 + h, {"staff": "a"}, key="a2"),
            ]
        )
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # make it look like version 1
        conn.exec_driver_sql("DROP TABLE x_merges")
        conn.exec_driver_sql("DROP INDEX x_ix_members_last_event")  # version 3's
        for col in ("amount_fen", "source", "staff", "outbound"):
            conn.exec_driver_sql(f"ALTER TABLE x_events DROP COLUMN {col}")
        for col in ("last_event_at", "relations"):
            conn.exec_driver_sql(f"ALTER TABLE x_members DROP COLUMN {col}")
        conn.exec_driver_sql("UPDATE x_members SET wecom_contact = 0")
        conn.exec_driver_sql("UPDATE x_schema_version SET version = 1")
    engine.dispose()
    with SqlStore(url, table_prefix="x_") as again:
        assert again.schema_version() == SCHEMA_VERSION
        m = again.get_member("m1")
        assert m is not None
        assert m.state.last_event_at == t0 + h
        assert m.state.live_staff == ("b",)
        assert m.state.wecom_contact is True
        assert again.merges() == []
        assert list(again.select(attr("orders_count") >= 1, t0)) == []
        assert list(again.select(attr("orders_total_fen") == 990, t0 + h)) == ["m1"]
        assert list(again.select(attr("source") == "parcel", t0)) == ["m1"]


def _index_names(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {ix["name"] for ix in sa.inspect(engine).get_indexes(table)}
    finally:
        engine.dispose()


def test_a_version_2_database_gains_the_last_event_index(tmp_path: Path) -> None:
    """Version 3 indexes members.last_event_at (segments on derived fields, #18); a version
    2 database gets the index on first use, its data and answers unchanged."""
    from membermkt.core.events import Event

    url = f"sqlite:///{tmp_path / 'v2.db'}"
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    h = dt.timedelta(hours=1)
    with SqlStore(url, table_prefix="x_") as first:
        first.upsert_members([Member("m1", Profile(city="Hangzhou"))])
        first.append_events([Event("m1", "purchase", t0 + h, {"amount_fen": 990}, key="p")])
    assert "x_ix_members_last_event" in _index_names(url, "x_members")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # make it look like version 2
        conn.exec_driver_sql("DROP INDEX x_ix_members_last_event")
        conn.exec_driver_sql("UPDATE x_schema_version SET version = 2")
    engine.dispose()
    assert "x_ix_members_last_event" not in _index_names(url, "x_members")
    with SqlStore(url, table_prefix="x_") as again:
        assert again.schema_version() == SCHEMA_VERSION == 3
        assert list(again.select(attr("orders_count") >= 1, t0)) == []
        assert list(again.select(attr("orders_count") >= 1, t0 + h)) == ["m1"]
    assert "x_ix_members_last_event" in _index_names(url, "x_members")
