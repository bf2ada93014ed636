"""Benchmark: the full analytics bundle over a large store, on SQLite, PostgreSQL and
DuckDB, next to a hand-written DuckDB baseline of the same metrics, in one run.

The issue's size is 1M members / 20M events (the defaults). The data set is synthetic and
seeded, drawn column-wise by ``membermkt.testing.bulk`` (acquisition by scene QR and WeCom
clerks, follows/unfollows, menu paths, page views with dwell times, red-packet claims,
purchases with categories, WeCom conversations, over a year before ``AS_OF``) and written
once into each store with ``bulk.load`` (``COPY`` on PostgreSQL; indexes built after the
rows). Every analysis then runs in a *fresh process* so its peak memory is the analytics'
own, not the loader's. (Before 2026-12-04 (third session) the data set came from a
per-member Python generator with a slightly different story: six sources, 20 staff, more
WeCom messages; its load took 1,978 s at 1M / 20M.)

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

Measured figures: docs/performance/analytics.md.

Options: ``--members``, ``--events``, ``--db sqlite|postgresql|both``, ``--sqlite-path``
(default ``/tmp/membermkt-bench-<members>-<events>.db``, reused when already loaded; the
data set is generated once per run for every store not yet loaded),
``--pg-url`` (default ``$MEMBERMKT_TEST_POSTGRES_URL`` or the local test server),
``--reload`` (load again), ``--seed``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from typing import Any

AS_OF = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
YEAR_US = 365 * 86_400_000_000
AS_OF_US = (AS_OF - EPOCH) // dt.timedelta(microseconds=1)
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PREFIX = "anbench_"


def load(urls: list[str], members: int, events: int, seed: int) -> None:
    """Draw the data set once with the column-wise generator (``membermkt.testing.bulk``,
    ``events / members`` events per member over a year before ``AS_OF``) and write it into
    a fresh store at each of ``urls`` (``bulk.load``: ``COPY`` on PostgreSQL; on SQLite and
    PostgreSQL the secondary indexes are built after the rows)."""
    from membermkt.stores.sql import SqlStore
    from membermkt.testing import bulk

    t0 = time.perf_counter()
    cfg = bulk.BulkConfig(
        seed=seed, as_of=AS_OF, days=365, events_per_member=max(4.0, events / members)
    )
    pop = bulk.generate_columns(members, config=cfg)
    print(
        f"generated {members:,} members and {pop.n_events:,} events in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    for url in urls:
        store = SqlStore(url, table_prefix=PREFIX)
        store.drop_tables()
        t0 = time.perf_counter()
        bulk.load(store, pop)
        print(f"loaded them into {store.dialect} in {time.perf_counter() - t0:.0f} s", flush=True)
        store.close()


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


def run(url: str, only: str | None = None) -> None:
    """Every analysis (or those whose names start with one of the comma-separated ``only``),
    timed, in this (fresh) process."""
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
    if only:
        steps = [(n, f) for n, f in steps if n.startswith(tuple(only.split(",")))]
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
    p.add_argument("--only", help="SQL steps to time: name prefixes, e.g. paths,cohorts")
    p.add_argument("--run-only", help=argparse.SUPPRESS)  # internal: analyse URL in this process
    p.add_argument("--duck-only", help=argparse.SUPPRESS)  # internal: DuckDB copy of URL
    args = p.parse_args(argv)
    if args.run_only:
        run(args.run_only, args.only)
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
    totals: dict[str, float] = {}
    missing = [u for u in urls if args.reload or not _loaded(u, args.members)]
    if missing:
        load(missing, args.members, args.events, args.seed)
    for url in urls:
        if args.db != "duckdb":
            totals.update(_child("--run-only", url, *(("--only", args.only) if args.only else ())))
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
