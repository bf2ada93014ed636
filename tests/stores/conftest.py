"""Store fixtures: SQLite always; PostgreSQL / MariaDB when their URL env vars are set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("MEMBERMKT_TEST_MYSQL_URL")

SQL_BACKENDS = [
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


def backend_url(backend: str) -> str:
    """The URL of a test database for ``backend`` (SQLite: in memory)."""
    if backend == "postgresql":
        assert POSTGRES_URL
        return POSTGRES_URL
    if backend == "mysql":
        assert MYSQL_URL
        return MYSQL_URL
    return "sqlite://"


def unique_prefix() -> str:
    """A table prefix no other test (or helper) uses at the same time."""
    return f"t{uuid.uuid4().hex[:10]}_"


def make_store(backend: str, **kwargs: object) -> SqlStore:
    """A fresh store with its own tables (drop them with ``store.drop_tables()``), keeping
    phones under the published test key (``TEST_PHONES``) unless ``phones=`` says otherwise."""
    kwargs.setdefault("phones", TEST_PHONES)
    return SqlStore(backend_url(backend), table_prefix=unique_prefix(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    """Each SQL backend available here."""
    return str(request.param)


@pytest.fixture(scope="module")
def _shared_store(sql_backend: str) -> Iterator[SqlStore]:
    store = make_store(sql_backend)
    yield store
    store.drop_tables()
    store.close()


@pytest.fixture
def sql_store(_shared_store: SqlStore) -> SqlStore:
    """An empty SqlStore on each available backend (tables shared within a module and
    emptied before each test; dropped at the end)."""
    _shared_store.delete_all()
    return _shared_store
