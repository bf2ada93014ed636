"""Database errors from every driver surface as StoreError naming the operation: NUL bytes
(PostgreSQL text cannot hold them), over-long values, lost connections."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.errors import StoreError

from .conftest import POSTGRES_URL, SQL_BACKENDS, backend_url, make_store

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(params=SQL_BACKENDS)
def store(request):
    s = make_store(request.param)
    s.create_schema()
    s.upsert_members([Member("m1")])
    yield request.param, s
    s.drop_tables()
    s.close()


def _error_of(fn):
    try:
        fn()
    except StoreError as exc:
        return exc
    return None


CASES = {
    "upsert_members": lambda s: s.upsert_members([Member("m2", tags={"a\x00b"})]),
    "append_events": lambda s: s.append_events([Event("m1", "ty\x00pe", AT, {})]),
    "tag": lambda s: s.tag(["m1"], "t\x00"),
    "get_member": lambda s: s.get_member("m\x00"),
    "events_for": lambda s: list(s.events_for("m\x00")),
}


@pytest.mark.parametrize("operation", sorted(CASES))
def test_nul_bytes_are_stored_or_a_store_error_naming_the_operation(store, operation):
    backend, s = store
    if backend != "postgresql":  # SQLite and MariaDB store a NUL byte
        CASES[operation](s)
        return
    with pytest.raises(StoreError) as info:  # PostgreSQL text cannot hold one
        CASES[operation](s)
    assert str(info.value).startswith(f"{operation}: "), str(info.value)
    assert info.value.__cause__ is not None


def test_over_long_event_type_is_a_membermkt_error(store):
    _, s = store
    from membermkt.errors import MembermktError

    with pytest.raises(MembermktError):
        s.append_events([Event("m1", "x" * 100_000, AT, {})])


def test_a_lost_connection_is_store_unavailable_naming_the_operation():
    if not POSTGRES_URL:
        pytest.skip("MEMBERMKT_TEST_POSTGRES_URL not set")
    url = backend_url("postgresql")
    s = make_store("postgresql")
    s.create_schema()
    try:
        assert s.get_member("nobody") is None  # a pooled connection now exists
        with s._engine.connect() as conn:  # that same pooled connection: its backend pid
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        admin = sa.create_engine(url)
        with admin.begin() as conn:  # terminate exactly that backend, nobody else's
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.dispose()
        exc = _error_of(lambda: s.get_member("nobody"))
        if exc is not None:
            assert str(exc).startswith("get_member: "), str(exc)
        # (a pool that noticed the dead connection and reconnected is also correct)
        assert s.get_member("nobody") is None
    finally:
        s.drop_tables()
        s.close()
