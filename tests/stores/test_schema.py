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
