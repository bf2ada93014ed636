"""SQLite 3.40's seek-scan of ``member_id = ? AND type IN (...) AND at <= ?`` over the
``(member_id, type, at)`` index returns rows past the time bound once the planner has the
statistics of a large events table. The store's per-member type filters hide the type
column from that index on SQLite (``+type``): as-of folds and ``events_for`` agree with the
in-memory store under such statistics (#18)."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Iterator

import pytest

from membermkt import Event
from membermkt.segments import attr
from membermkt.stores import InMemoryStore
from membermkt.stores.sql import SqlStore

from .conftest import make_store

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
TYPES = ("follow", "unfollow", "scan", "menu_click", "view", "purchase", "message")


def _events(seed: int) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for m in range(120):
        for k in range(30):
            t = rng.choice(TYPES)
            props: dict[str, object] = {}
            if t == "purchase":
                props = {"amount_fen": 100}
            elif t in ("follow", "scan"):
                props = {"source": rng.choice(("qr", "shop"))}
            at = BASE + dt.timedelta(seconds=rng.randrange(1000))
            out.append(Event(f"m{m:03d}", t, at, props, key=f"e{m}-{k}"))
    return out


@pytest.fixture
def stores() -> Iterator[tuple[SqlStore, InMemoryStore]]:
    sql = make_store("sqlite")
    sql.create_schema()
    mem = InMemoryStore()
    events = _events(7)
    sql.append_events(events)
    mem.append_events(events)
    t = sql.tables
    with sql.engine.begin() as conn:  # the statistics of a 20M-event table
        conn.exec_driver_sql("ANALYZE")
        conn.exec_driver_sql("DELETE FROM sqlite_stat1")
        conn.exec_driver_sql(
            f"INSERT INTO sqlite_stat1 VALUES ('{t.events.name}', "
            f"'{t.prefix}ix_events_member', '20069803 21 4 1'), "
            f"('{t.events.name}', '{t.prefix}ux_events_key', '20069803 1')"
        )
        conn.exec_driver_sql("ANALYZE sqlite_schema")
    try:
        yield sql, mem
    finally:
        sql.close()


def test_the_sqlite_library_misbehaves_without_the_guard() -> None:
    # documents why the guard exists; passes vacuously on a SQLite that got it right
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE ev (member_id TEXT, type TEXT, at INTEGER)")
    con.execute("CREATE INDEX ix ON ev (member_id, type, at)")
    rng = random.Random(1)
    con.executemany(
        "INSERT INTO ev VALUES (?, ?, ?)",
        [(f"m{m}", rng.choice(TYPES), rng.randrange(1000)) for m in range(50) for _ in range(30)],
    )
    con.execute("ANALYZE")
    con.execute("DELETE FROM sqlite_stat1")
    con.execute("INSERT INTO sqlite_stat1 VALUES ('ev', 'ix', '20069803 21 4 1')")
    con.execute("ANALYZE sqlite_schema")
    q = "SELECT count(*) FROM ev WHERE member_id = ? AND {} IN (?, ?, ?) AND at <= ?"
    args = ("m1", "view", "scan", "message", 0)
    guarded = con.execute(q.format("+type"), args).fetchone()[0]
    assert guarded == 0
    plain = con.execute(q.format("type"), args).fetchone()[0]
    if plain != guarded:
        assert sqlite3.sqlite_version_info < (3, 99)  # the library bug this module guards


@pytest.mark.parametrize("offset", [0, 1, 137, 500, 999])
def test_as_of_folds_agree_with_memory(stores: tuple[SqlStore, InMemoryStore], offset: int) -> None:
    sql, mem = stores
    as_of = BASE + dt.timedelta(seconds=offset)
    for seg in (
        attr("last_active_at") >= BASE + dt.timedelta(seconds=offset // 2),
        attr("subscribed") == True,  # noqa: E712
        attr("followed_at") < BASE + dt.timedelta(seconds=offset),
        attr("source") == "qr",
    ):
        assert sorted(sql.select(seg, as_of)) == sorted(mem.select(seg, as_of)), (seg, offset)


def test_events_for_types_until(stores: tuple[SqlStore, InMemoryStore]) -> None:
    sql, mem = stores
    until = BASE + dt.timedelta(seconds=300)
    for m in ("m000", "m001", "m050"):
        got = sql.events_for(m, types=["view", "scan", "message"], until=until)
        assert all(e.at <= until for e in got)
        want = mem.events_for(m, types=["view", "scan", "message"], until=until)
        assert [e.key for e in got] == [e.key for e in want]
