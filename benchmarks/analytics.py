"""Benchmark: the full analytics bundle over a large store, on SQLite, PostgreSQL and
DuckDB, next to a hand-written DuckDB baseline of the same metrics, in one run.

The issue's size is 1M members / 20M events (the defaults). The data set is synthetic and
seeded: acquisition sources, follows/unfollows, menu paths, page views with dwell times,
red-packet claims, purchases with categories, WeCom conversations and contacts, spread over
a year. It is bulk-loaded once (members through ``SqlStore.upsert_members`` with their folded
state, events straight into the events table — ``COPY`` on PostgreSQL), then every analysis
runs in a *fresh process* so its peak memory is the analytics' own, not the loader's.

Each step prints wall time and the process's peak RSS after it; no step loads the event log
into Python (the SQL runner aggregates in the database; RFM streams one row per buyer,
staff metrics stream WeCom conversation messages only).

DuckDB (extra ``duckdb``): :class:`membermkt.analytics.DuckDBAnalytics` copies the store
(PostgreSQL when it is part of the run, else SQLite) into DuckDB once, runs membermkt's
analytics there, then ``benchmarks/_duck_baseline.py`` runs hand-written DuckDB SQL for the
same metrics on the same copy. The closing summary prints every total and its ratio against
that baseline (goals at 1M / 20M: DuckDB ≤ 30 s and ≤ 2× the baseline; SQLite/PostgreSQL
≤ 3 minutes). PostgreSQL is skipped with a note when the server cannot be reached.

Run (from the repository root)::

    .venv/bin/python benchmarks/analytics.py                         # 1M / 20M, SQLite + PG
    .venv/bin/python benchmarks/analytics.py --members 100000 --events 2000000 --db sqlite
    .venv/bin/python benchmarks/analytics.py --db postgresql \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Result of one run (1M members, 20.07M events, 2 shared vCPUs under load from other jobs):
SQLite total 720 s, peak RSS 356 MB; PostgreSQL total 505 s, peak RSS 183 MB; per-step
figures in ``docs/analytics.md``.

Options: ``--members``, ``--events``, ``--db sqlite|postgresql|both``, ``--sqlite-path``
(default ``/tmp/membermkt-bench-<members>-<events>.db``, reused when already loaded; a
loaded SQLite file is copied into PostgreSQL rather than generated again),
``--pg-url`` (default ``$MEMBERMKT_TEST_POSTGRES_URL`` or the local test server),
``--reload`` (load again), ``--seed``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
YEAR_US = 365 * 86_400_000_000
AS_OF_US = (AS_OF - EPOCH) // dt.timedelta(microseconds=1)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PREFIX = "anbench_"

SOURCES = ("qr:parcel", "qr:store", "qr:poster", "wecom:shop", "wecom:live", "platform:douyin")
CATEGORIES = ("durian", "apple", "cherry", "mango", "kiwi", "orange")
MENUS = ("new", "deals", "shop", "vip", "help")
PAGES = ("/home", "/item", "/cart", "/pay", "/vip")
STAFF = tuple(f"staff{i}" for i in range(20))


def member_events(
    rng: random.Random, mid: str, n: int
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """About ``n`` events of one member as (type, at_us, props), roughly in time order."""
    src = rng.choice(SOURCES)
    t = AS_OF_US - rng.randrange(YEAR_US)
    wecom = src.startswith("wecom")
    yield ("scan", t, {"source": src, "scene": src})
    yield ("follow", t + 1_000_000, {"source": src})
    if wecom:
        yield ("contact_added", t + 2_000_000, {"source": src, "staff": rng.choice(STAFF)})
    emitted = 3 if wecom else 2
    menu_step = 60_000_000
    while emitted < n:
        t += rng.randrange(3_600_000_000, 4 * 86_400_000_000)
        if t > AS_OF_US:
            break
        kind = rng.random()
        if kind < 0.55:  # a browsing session: menu clicks and page views
            for _ in range(rng.randrange(2, 6)):
                t += rng.randrange(5_000_000, menu_step)
                if rng.random() < 0.5:
                    yield ("menu_click", t, {"key": rng.choice(MENUS)})
                else:
                    page = rng.choice(PAGES)
                    yield ("view", t, {"url": page, "dwell_seconds": rng.randrange(1, 400)})
                emitted += 1
        elif kind < 0.7:
            yield ("redpacket_claim", t, {"rule": "welcome"})
            emitted += 1
        elif kind < 0.88:
            cat = rng.choice(CATEGORIES)
            yield (
                "purchase",
                t,
                {
                    "order_id": f"{mid}-{t}",
                    "amount_fen": rng.randrange(990, 30000),
                    "category": cat,
                },
            )
            emitted += 1
        else:
            staff = rng.choice(STAFF)
            yield ("message", t, {"channel": "wecom", "staff": staff, "direction": "in"})
            if rng.random() < 0.8:
                yield (
                    "message",
                    t + rng.randrange(10_000_000, 3_600_000_000),
                    {"channel": "wecom", "staff": staff, "direction": "out"},
                )
                emitted += 1
            emitted += 1
    if rng.random() < 0.1:
        yield ("unfollow", min(t + 86_400_000_000, AS_OF_US), {})


def generate(
    members: int, events: int, seed: int
) -> Iterator[tuple[str, list[tuple[str, int, dict[str, Any]]]]]:
    rng = random.Random(seed)
    mean = events / members
    for i in range(members):
        mid = f"m{i:08d}"
        n = max(3, int(rng.expovariate(1 / mean)))
        yield mid, list(member_events(rng, mid, n))


def _dt(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


INTERACTIONS = frozenset(
    {
        "follow",
        "scan",
        "menu_click",
        "view",
        "message",
        "purchase",
        "redpacket_claim",
        "contact_added",
    }
)


def fast_state(evs: list[tuple[str, int, dict[str, Any]]]) -> Any:
    """The member state the event fold would produce, computed straight from the generated
    tuples (folding 20M validated ``Event`` values takes far longer than the analytics).
    Checked against :func:`membermkt.fold` on the first members of every load."""
    from membermkt.core.members import MemberState, PurchaseStats, Relation

    sub: tuple[int, str, str] | None = None  # (at, tie-break, type): last writer wins
    adds: dict[str, tuple[int, str | None]] = {}  # staff -> latest add (at, state)
    last_event = None
    src: tuple[int, str, str] | None = None  # (at, tie-break, source): first touch wins
    contact: tuple[int, str, str] | None = None
    last_active = None
    n = total = 0
    first = last = None
    cats: set[str] = set()
    for etype, at, p in evs:
        if last_event is None or at > last_event:
            last_event = at
        outbound = p.get("direction") == "out"  # staff-initiated: not the member's activity
        if etype in INTERACTIONS and not outbound and (last_active is None or at > last_active):
            last_active = at
        if etype == "contact_added" and (
            p.get("staff", "") not in adds or at >= adds[p.get("staff", "")][0]
        ):
            state = p.get("state")
            adds[p.get("staff", "")] = (at, state if isinstance(state, str) else None)
        if etype in ("follow", "unfollow"):
            v = (at, "1" if etype == "unfollow" else "0", etype)
            sub = v if sub is None or v[:2] >= sub[:2] else sub
        elif etype in ("contact_added", "contact_deleted"):
            v = (at, "1" if etype == "contact_deleted" else "0", etype)
            contact = v if contact is None or v[:2] >= contact[:2] else contact
        elif etype == "purchase":
            n += 1
            total += p["amount_fen"]
            first = at if first is None else min(first, at)
            last = at if last is None else max(last, at)
            cats.add(p["category"])
        if etype in ("follow", "scan", "contact_added") and p.get("source"):
            v = (at, "0\x00" + p["source"], p["source"])  # the fold's tie-break
            src = v if src is None or v[:2] < src[:2] else src
    return MemberState(
        subscribed=None if sub is None else sub[2] == "follow",
        subscription_version=None if sub is None else (_dt(sub[0]), sub[1]),
        followed_at=_dt(sub[0]) if sub is not None and sub[2] == "follow" else None,
        source=None if src is None else src[2],
        source_version=None if src is None else (_dt(src[0]), src[1]),
        last_active_at=None if last_active is None else _dt(last_active),
        purchases=PurchaseStats(
            count=n,
            total_fen=total,
            first_at=None if first is None else _dt(first),
            last_at=None if last is None else _dt(last),
            categories=frozenset(cats),
        ),
        wecom_contact=None if contact is None else contact[2] == "contact_added",
        contact_version=None if contact is None else (_dt(contact[0]), contact[1]),
        last_event_at=None if last_event is None else _dt(last_event),
        relations=tuple(
            Relation(staff=staff, added=(_dt(at), "0"), state=state)
            for staff, (at, state) in sorted(adds.items())
        ),
    )


def load(url: str, members: int, events: int, seed: int) -> None:
    from membermkt import Event, Member, fold
    from membermkt.stores.sql import SqlStore

    store = SqlStore(url, table_prefix=PREFIX)
    store.drop_tables()
    store.create_schema()
    engine = store._engine  # benchmark set-up: bulk insert below the store API
    ev_table = store.tables.events
    pg = engine.dialect.name == "postgresql"
    t0 = time.perf_counter()
    n_events = 0
    batch_m: list[Any] = []
    batch_e: list[dict[str, Any]] = []

    def flush() -> None:
        store.upsert_members(batch_m)
        if pg:
            raw = engine.raw_connection()
            try:
                copy_sql = f"COPY {ev_table.name} (member_id, type, at, props) FROM STDIN"
                with raw.cursor() as cur, cur.copy(copy_sql) as cp:
                    for r in batch_e:
                        cp.write_row((r["member_id"], r["type"], r["at"], r["props"]))
                raw.commit()
            finally:
                raw.close()
        else:
            with engine.begin() as conn:
                conn.execute(ev_table.insert(), batch_e)
        batch_m.clear()
        batch_e.clear()

    for i, (mid, evs) in enumerate(generate(members, events, seed)):
        state = fast_state(evs)
        if i < 200:  # the shortcut must agree with the real fold
            real = fold(Member(mid), (Event(mid, t, _dt(at), p) for t, at, p in evs)).state
            assert state == real, (mid, state, real)
        batch_m.append(Member(mid, state=state))
        for t, at, p in evs:
            batch_e.append(
                {
                    "key": None,
                    "member_id": mid,
                    "type": t,
                    "at": at,
                    "props": json.dumps(p, separators=(",", ":")),
                }
            )
        n_events += len(evs)
        if len(batch_e) >= 200_000:
            flush()
            print(
                f"  loaded {i + 1:>9,} members, {n_events:>11,} events "
                f"({time.perf_counter() - t0:6.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    flush()
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"VACUUM ANALYZE {ev_table.name}")
    print(
        f"loaded {members:,} members and {n_events:,} events into {engine.dialect.name} "
        f"in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    store.close()


def copy_tables(src_url: str, dst_url: str) -> None:
    """Copy a loaded benchmark store (members and events) from ``src_url`` into a fresh store
    at ``dst_url`` (PostgreSQL: ``COPY``), instead of generating and folding it again."""
    import sqlalchemy as sa

    from membermkt.stores.sql import SqlStore

    src = SqlStore(src_url, table_prefix=PREFIX)
    dst = SqlStore(dst_url, table_prefix=PREFIX)
    dst.drop_tables()
    dst.create_schema()
    t0 = time.perf_counter()
    src_engine, dst_engine = src._engine, dst._engine  # benchmark set-up below the store API
    for name in ("members", "events"):
        table = getattr(src.tables, name)
        cols = [c.name for c in table.columns if c.name != "seq"]
        query = sa.select(*(table.c[c] for c in cols))
        raw = dst_engine.raw_connection()
        try:
            quoted = ", ".join(f'"{c}"' for c in cols)
            with (
                src_engine.connect() as conn,
                raw.cursor() as cur,  # type: ignore[attr-defined]
                cur.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as cp,
            ):
                for row in conn.execution_options(yield_per=50_000).execute(query):
                    cp.write_row(tuple(row))
            raw.commit()
        finally:
            raw.close()
        print(f"  copied {name} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    with dst_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (dst.tables.events, dst.tables.members):
            conn.exec_driver_sql(f"VACUUM ANALYZE {table.name}")
    print(
        f"copied the SQLite data set into {dst.dialect} in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    src.close()
    dst.close()


def _rss_mb() -> float:
    """This process's peak resident memory (MB) — ``VmHWM``, which, unlike ``ru_maxrss``,
    does not carry over the parent's peak across ``exec``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(url: str) -> None:
    """Every analysis, timed, in this (fresh) process."""
    from membermkt import analytics
    from membermkt.core import analytics as core
    from membermkt.stores.sql import SqlStore

    store = SqlStore(url, table_prefix=PREFIX)
    sql = analytics.sql_runner(store)
    assert sql is not None, "benchmark needs SQLite or PostgreSQL"
    rules = (
        core.affinity_offer("durian", offer="durian-coupon", at_least=3),
        core.trial_offer("apple", offer="apple-new-variant"),
        core.membership_offer(offer="membership"),
    )
    steps = [
        ("activity classes", lambda: analytics.activity_counts(store, as_of=AS_OF, by="source")),
        ("rfm", lambda: analytics.rfm(store, as_of=AS_OF)),
        ("funnel (5 steps)", lambda: analytics.funnel(store, as_of=AS_OF)),
        ("attribution", lambda: analytics.attribution(store, as_of=AS_OF)),
        ("cohorts (week)", lambda: analytics.cohorts(store, as_of=AS_OF)),
        ("cohorts (month)", lambda: analytics.cohorts(store, as_of=AS_OF, period="month")),
        ("paths", lambda: analytics.paths(store, as_of=AS_OF)),
        ("staff", lambda: analytics.staff_metrics(store, as_of=AS_OF)),
        ("next offers", lambda: analytics.recommend(store, rules, as_of=AS_OF)),
    ]
    print(f"{store.dialect}: {'step':<18} {'seconds':>9} {'peak RSS MB':>12}", flush=True)
    total = 0.0
    for name, fn in steps:
        t0 = time.perf_counter()
        fn()
        secs = time.perf_counter() - t0
        total += secs
        print(f"{store.dialect}: {name:<18} {secs:9.1f} {_rss_mb():12.0f}", flush=True)
    print(f"{store.dialect}: {'total':<18} {total:9.1f} {_rss_mb():12.0f}", flush=True)
    print(f"TOTAL {store.dialect} {total:.3f}", flush=True)
    store.close()


def run_duckdb(url: str) -> None:
    """Copy the store at ``url`` into DuckDB, run membermkt's analytics there, then the
    hand-written DuckDB baseline of the same metrics on the same copy (fresh process)."""
    from _duck_baseline import baseline

    from membermkt import analytics
    from membermkt.stores.sql import SqlStore

    store = SqlStore(url, table_prefix=PREFIX)
    t0 = time.perf_counter()
    duck = analytics.DuckDBAnalytics.from_store(store)
    copy_secs = time.perf_counter() - t0
    extract = duck.timings.get("extract", 0.0)
    print(
        f"duckdb: copied {duck.count('members'):,} members, {duck.count('events'):,} events "
        f"from {store.dialect} in {copy_secs:.1f} s, of which {extract:.1f} s parsing the "
        f"JSON properties (peak RSS {_rss_mb():.0f} MB)",
        flush=True,
    )
    steps = [
        ("activity classes", lambda: analytics.activity_counts(duck, as_of=AS_OF, by="source")),
        ("rfm", lambda: analytics.rfm(duck, as_of=AS_OF)),
        ("funnel (5 steps)", lambda: analytics.funnel(duck, as_of=AS_OF)),
        ("attribution", lambda: analytics.attribution(duck, as_of=AS_OF)),
        ("cohorts (week)", lambda: analytics.cohorts(duck, as_of=AS_OF)),
        ("paths", lambda: analytics.paths(duck, as_of=AS_OF)),
        ("staff", lambda: analytics.staff_metrics(duck, as_of=AS_OF)),
    ]
    got: dict[str, Any] = {}
    total = 0.0
    for name, fn in steps:
        t = time.perf_counter()
        got[name] = fn()
        secs = time.perf_counter() - t
        total += secs
        print(f"duckdb: {name:<18} {secs:9.1f} {_rss_mb():12.0f}", flush=True)
    print(f"duckdb: {'total':<18} {total:9.1f} {_rss_mb():12.0f}", flush=True)
    print(f"duckdb: {'total + parse JSON':<18} {total + extract:9.1f}", flush=True)
    base = baseline(duck.connection, duck.tables.members.name, duck.tables.events.name, AS_OF_US)
    for name, (secs, _) in ((k, v) for k, v in base.items() if k != "total"):
        print(f"baseline: {name:<18} {secs:9.1f}", flush=True)
    print(f"baseline: {'total':<18} {base['total']:9.1f}", flush=True)
    # the baseline computes the same numbers (where definitions coincide exactly)
    assert sum(r[-1] for r in base["activity classes"][1]) == got["activity classes"].total
    assert len(base["rfm"][1]) == len(got["rfm"])
    att = got["attribution"].totals()
    assert sum(r[5] for r in base["attribution"][1]) == att.revenue_fen
    # the baseline's total includes its property extraction: count membermkt's too
    print(f"TOTAL duckdb {total + extract:.3f}", flush=True)
    print(f"TOTAL duckdb+copy {total + copy_secs:.3f}", flush=True)
    print(f"TOTAL baseline {base['total']:.3f}", flush=True)
    duck.close()
    store.close()


def _loaded(url: str, members: int) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.exec_driver_sql(f"SELECT count(*) FROM {PREFIX}members").scalar()
        return n == members
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--db", choices=("sqlite", "postgresql", "duckdb", "both", "all"), default="all")
    p.add_argument("--sqlite-path")
    p.add_argument("--pg-url", default=os.environ.get("MEMBERMKT_TEST_POSTGRES_URL", PG_DEFAULT))
    p.add_argument("--reload", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-only", help=argparse.SUPPRESS)  # internal: analyse URL in this process
    p.add_argument("--duck-only", help=argparse.SUPPRESS)  # internal: DuckDB copy of URL
    args = p.parse_args(argv)
    if args.run_only:
        run(args.run_only)
        return
    if args.duck_only:
        run_duckdb(args.duck_only)
        return
    path = args.sqlite_path or f"/tmp/membermkt-bench-{args.members}-{args.events}.db"
    urls = []
    if args.db in ("sqlite", "both", "all", "duckdb"):
        urls.append(f"sqlite:///{path}")
    if args.db in ("postgresql", "both") or (args.db == "all" and _reachable(args.pg_url)):
        urls.append(args.pg_url)
    elif args.db == "all":
        print(f"note: PostgreSQL at {args.pg_url} is not reachable; skipped", flush=True)
    print(f"analytics benchmark: {args.members:,} members, ~{args.events:,} events", flush=True)
    sqlite_url = f"sqlite:///{path}"
    totals: dict[str, float] = {}
    for url in urls:
        if args.reload or not _loaded(url, args.members):
            if url != sqlite_url and _loaded(sqlite_url, args.members) and not args.reload:
                copy_tables(sqlite_url, url)  # same data, much faster than generating again
            else:
                load(url, args.members, args.events, args.seed)
        if args.db != "duckdb":
            totals.update(_child("--run-only", url))
    if args.db in ("duckdb", "all"):
        # copy from PostgreSQL (COPY) when it is part of the run, else from SQLite
        totals.update(_child("--duck-only", urls[-1]))
    base = totals.get("baseline")
    print("\nsummary (seconds; ratio against the hand-written DuckDB baseline, same run):")
    for name, secs in totals.items():
        ratio = f"{secs / base:8.2f}x" if base else "        -"
        print(f"  {name:<16} {secs:9.1f} s {ratio}")
    print("goals at 1M members / 20M events: duckdb <= 30 s and <= 2x baseline;")
    print("sqlite / postgresql pushdown <= 180 s")


def _reachable(url: str) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _child(*argv: str) -> dict[str, float]:
    """Run this script in a fresh process (its peak memory is its own), echo its output and
    return the ``TOTAL name seconds`` lines it printed."""
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f"{argv[0]} {argv[1]} failed with exit status {proc.returncode}")
    totals = {}
    for line in proc.stdout.splitlines():
        if line.startswith("TOTAL "):
            _, name, secs = line.split()
            totals[name] = float(secs)
        else:
            print(line, flush=True)
    return totals


if __name__ == "__main__":
    main()
