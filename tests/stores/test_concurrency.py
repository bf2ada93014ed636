"""Concurrency: several processes / threads on one database lose nothing, duplicate nothing.

* 4 processes append overlapping, shuffled batches of the same events (WeChat re-pushes):
  every key is stored once, and each member's state is exactly the fold of its events;
* 4 threads claim from one campaign: every delivery is handed out exactly once
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB; a single writer on SQLite);
* 4 threads reserve from one budget: the limit is never exceeded.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from membermkt.core.delivery import Delivery
from membermkt.core.events import Event, fold
from membermkt.core.members import Member
from membermkt.stores.sql import SqlStore

from .conftest import MYSQL_URL, POSTGRES_URL, SQL_BACKENDS, backend_url, unique_prefix

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
N_EVENTS = 800
N_MEMBERS = 30


def _events() -> list[Event]:
    rng = random.Random(42)
    out = []
    for i in range(N_EVENTS):
        mid = f"m{rng.randrange(N_MEMBERS):02d}"
        kind = rng.choice(["purchase", "view", "follow", "unfollow"])
        props = {"amount_fen": rng.choice([100, 990])} if kind == "purchase" else {}
        out.append(
            Event(mid, kind, T0 + dt.timedelta(minutes=rng.randrange(5000)), props, key=f"k{i}")
        )
    return out


def _append_worker(url: str, prefix: str, seed: int) -> int:
    """One process: append every event in a shuffled order, in small batches."""
    evs = _events()
    random.Random(seed).shuffle(evs)
    store = SqlStore(url, table_prefix=prefix)
    new = 0
    for i in range(0, len(evs), 200):
        new += store.append_events(evs[i : i + 200])
    store.close()
    return new


@pytest.fixture
def file_or_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    backend = request.param
    url = f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else backend_url(backend)
    prefix = unique_prefix()
    yield url, prefix
    store = SqlStore(url, table_prefix=prefix)
    store.drop_tables()
    store.close()


def _process_backends() -> list[object]:
    # processes: PostgreSQL (the scale-out database) and an SQLite file (the shop default);
    # MariaDB's concurrent appends are covered by the thread test below
    return [p for p in SQL_BACKENDS if p.values[0] != "mysql"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("file_or_server", _process_backends(), indirect=True)
def test_four_processes_append_the_same_events(file_or_server: tuple[str, str]) -> None:
    """Concurrent appends from 4 processes store each event once and fold it once."""
    url, prefix = file_or_server
    with SqlStore(url, table_prefix=prefix) as first:
        first.create_schema()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        counts = pool.starmap(_append_worker, [(url, prefix, s) for s in range(4)])
    assert sum(counts) == N_EVENTS
    store = SqlStore(url, table_prefix=prefix)
    evs = _events()
    for mid in sorted({e.member_id for e in evs}):
        mine = [e for e in evs if e.member_id == mid]
        stored = store.events_for(mid)
        assert sorted(e.key or "" for e in stored) == sorted(e.key or "" for e in mine)
        assert store.get_member(mid).state == fold(Member(mid), mine).state  # type: ignore[union-attr]
    store.close()


@pytest.mark.parametrize("sql_backend", SQL_BACKENDS, indirect=True)
def test_four_threads_append_the_same_events(sql_store: SqlStore) -> None:
    """Concurrent appends from 4 threads (own connections) store and fold each event once."""
    evs = _events()[:400]
    counts: list[int] = []

    def work(seed: int) -> None:
        mine = list(evs)
        random.Random(seed).shuffle(mine)
        counts.append(sum(sql_store.append_events(mine[i : i + 100]) for i in range(0, 400, 100)))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 400
    for mid in sorted({e.member_id for e in evs}):
        mine = [e for e in evs if e.member_id == mid]
        assert len(sql_store.events_for(mid)) == len(mine)
        assert sql_store.get_member(mid).state == fold(Member(mid), mine).state  # type: ignore[union-attr]


@pytest.mark.parametrize("sql_backend", SQL_BACKENDS, indirect=True)
def test_concurrent_claims_hand_out_each_delivery_once(sql_store: SqlStore) -> None:
    """4 workers claiming at once never share a delivery and leave none behind."""
    sql_store.record_plan(
        [
            Delivery(
                key=f"d{i:04d}",
                campaign_id="c",
                member_id=f"m{i}",
                channel="wechat.mass",
                address=f"o{i}",
                variant="A",
            )
            for i in range(400)
        ],
        now=T0,
    )
    got: list[list[str]] = [[] for _ in range(4)]

    def work(w: int) -> None:
        while True:
            batch = sql_store.claim("c", worker=f"w{w}", limit=7, now=T0)
            if not batch:
                return
            got[w].extend(r.key for r in batch)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [k for keys in got for k in keys]
    assert len(flat) == 400
    assert len(set(flat)) == 400
    assert sql_store.status_counts("c")["sending"] == 400


@pytest.mark.parametrize("sql_backend", SQL_BACKENDS, indirect=True)
def test_concurrent_reservations_never_exceed_the_limit(sql_store: SqlStore) -> None:
    """Budgets are conditional updates: racing reservations stop exactly at the limit."""
    sql_store.ensure_budget("total", limit=1000)
    sql_store.ensure_budget("daily", limit=600)
    ok: list[bool] = []

    def work() -> None:
        for _ in range(40):
            ok.append(sql_store.reserve([("total", 10), ("daily", 10)]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ok.count(True) == 60
    assert sql_store.budget("daily").reserved == 600  # type: ignore[union-attr]
    assert sql_store.budget("total").reserved == 600  # type: ignore[union-attr]


def test_server_urls_are_read_from_the_environment() -> None:
    """Server tests skip (never fail) without their URL; CI sets both."""
    assert POSTGRES_URL is None or POSTGRES_URL.startswith("postgresql")
    assert MYSQL_URL is None or MYSQL_URL.startswith("mysql")
