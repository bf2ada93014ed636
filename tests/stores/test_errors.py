"""Bad input gets a clear ``membermkt.errors`` exception, never a driver traceback."""

from __future__ import annotations

import datetime as dt

import pytest

from membermkt.core.members import Member
from membermkt.errors import ConfigError, SegmentError, StoreError, StoreUnavailable, UsageError
from membermkt.segments import attr
from membermkt.stores import InMemoryStore, SqlStore

from .conftest import make_store

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "",
        "oracle://scott:tiger@localhost/db",
        "postgresql+nosuchdriver://localhost/db",
    ],
)
def test_malformed_or_unsupported_urls_are_config_errors(url: str) -> None:
    """A URL that cannot work fails at construction with ConfigError (also a UsageError)."""
    with pytest.raises(ConfigError):
        SqlStore(url)


def test_missing_driver_names_the_extra() -> None:
    """A known dialect whose driver is not installed says which extra to install."""
    with pytest.raises(ConfigError, match=r"not installed|driver"):
        SqlStore("mysql+mysqldb://root@127.0.0.1/test")


def test_bad_table_prefix_is_a_config_error() -> None:
    """Table prefixes are plain identifiers (no quoting games)."""
    with pytest.raises(ConfigError):
        SqlStore("sqlite://", table_prefix="x; drop table")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
        "mysql+pymysql://root@127.0.0.1:1/test?connect_timeout=2",
        "sqlite:////nonexistent-dir/sub/x.db",
    ],
)
def test_a_database_that_is_down_is_store_unavailable(url: str) -> None:
    """Nothing listening (or an unreachable file) → StoreUnavailable, driver error chained."""
    store = SqlStore(url)
    with pytest.raises(StoreUnavailable) as info:
        store.count(attr("city") == "x", AS_OF)
    assert info.value.__cause__ is not None
    assert isinstance(info.value, StoreError)
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_declared_attributes_catch_unknown_fields_and_wrong_types(kind: str) -> None:
    """With a declared schema, typos and type mistakes in segments raise SegmentError."""
    kwargs: dict[str, object] = {"attributes": {"vip_level": int, "nick": str}, "strict": True}
    store = InMemoryStore(**kwargs) if kind == "memory" else make_store("sqlite", **kwargs)  # type: ignore[arg-type]
    store.upsert_members([Member("m1", attributes={"vip_level": 3, "nick": "a"})])
    assert store.count(attr("vip_level") > 2, AS_OF) == 1
    with pytest.raises(SegmentError, match="unknown field 'vip_levle'"):
        store.count(attr("vip_levle") > 2, AS_OF)
    with pytest.raises(SegmentError, match="holds int"):
        list(store.select(attr("vip_level") == "3", AS_OF))
    with pytest.raises(SegmentError, match="vip_level"):
        store.count(attr("vip_level").contains("3"), AS_OF)
    with pytest.raises(UsageError, match="undeclared"):
        store.upsert_members([Member("m2", attributes={"other": 1})])


def test_built_in_field_types_are_checked_when_building_segments() -> None:
    """Wrong types for built-in fields never reach a store."""
    with pytest.raises(SegmentError):
        attr("orders_count") == "many"  # noqa: B015
    with pytest.raises(SegmentError):
        attr("last_active_at") > dt.datetime(2026, 1, 1)  # noqa: B015


def test_text_too_long_for_a_column_is_a_usage_error() -> None:
    """SQL columns have limits; exceeding one names the field instead of truncating."""
    store = make_store("sqlite")
    with pytest.raises(UsageError, match="city"):
        store.upsert_members([Member("m1", attributes={}, profile=_long_city())])
    with pytest.raises(UsageError, match="attribute"):
        store.upsert_members([Member("m1", attributes={"note": "x" * 5000})])


def _long_city() -> object:
    from membermkt.core.members import Profile

    return Profile(city="x" * 300)


def test_naive_as_of_and_non_segments_are_refused() -> None:
    """as_of must be aware and segments must be segments."""
    store = make_store("sqlite")
    with pytest.raises(UsageError):
        store.count(attr("city") == "x", dt.datetime(2026, 1, 1))
    with pytest.raises(SegmentError):
        store.count("city = 'x'", AS_OF)  # type: ignore[arg-type]
