"""Synthetic data speed: the column-wise generator (``membermkt.testing.bulk``) and the
per-object one (``membermkt.testing.synthetic``), each next to its floor, in one run.

    .venv/bin/python benchmarks/synthetic.py                     # 1,000,000 members
    .venv/bin/python benchmarks/synthetic.py --members 200000 --object-members 20000
    .venv/bin/python benchmarks/synthetic.py --load sqlite,postgresql

Goal (issue #18 item 6): 1M members with their events in ≤ 20 s, seeded and deterministic.

1. ``bulk.generate_columns(--members)``: every column drawn with numpy, the members'
   state folded with grouped reductions. Timed in CPU time of the thread (numpy runs these
   calls single-threaded, so a loaded machine's other jobs do not count) and wall time,
   best of ``--repeat``. Baseline in the same run: **the numpy floor** — drawing the same
   number of random values, one ``argsort`` of as many int64 keys as there are events and
   one gather of an object array per event (what any column generator of this shape must
   do at least).
2. ``synthetic.generate(--object-members)``, projected to 1M members, and its floor (the
   same number of ``random()`` draws and one tuple per event in a Python loop): the
   generator the demo uses, for comparison.
3. With ``--load``: ``bulk.load`` of the ``--members`` population into a fresh SQLite file
   and/or PostgreSQL (``COPY``) — wall time and rows per second (a cost of the database,
   reported, not a goal).

Determinism is checked on the way (the same seed gives the same columns).
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np

from membermkt.testing.bulk import BulkConfig, generate_columns, load
from membermkt.testing.synthetic import generate

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def numpy_floor(members: int, events: int) -> tuple[float, float]:
    """(CPU, wall) seconds of the floor of a column generator of this size."""
    t0, c0 = time.perf_counter(), time.thread_time()
    rng = np.random.default_rng(0)
    rng.random(3 * events)
    rng.integers(0, 1 << 40, 15 * members)
    keys = rng.integers(0, 1 << 62, events)
    order = np.argsort(keys, kind="stable")
    table = np.asarray(["a", "b", "c"], dtype=object)
    table[order % 3]
    return time.thread_time() - c0, time.perf_counter() - t0


def object_floor(members: int, events_per_member: float, draws_per_member: float) -> float:
    """The same number of ``random()`` draws and event tuples, nothing else (CPU seconds
    of this thread)."""
    t0 = time.thread_time()
    for idx in range(members):
        rng = random.Random(idx)
        r = rng.random
        for _ in range(int(draws_per_member)):
            r()
        [(idx, k, "x") for k in range(int(events_per_member))]
    return time.thread_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--events-per-member", type=float, default=8.5)
    ap.add_argument("--object-members", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--load", default="", help="comma-separated: sqlite, postgresql")
    ap.add_argument("--pg-url", default=os.environ.get("MEMBERMKT_TEST_POSTGRES_URL", PG_DEFAULT))
    args = ap.parse_args()
    cfg = BulkConfig(seed=args.seed, events_per_member=args.events_per_member)

    a, b = generate_columns(300, config=cfg), generate_columns(300, config=cfg)
    assert all(np.array_equal(a.events[k], b.events[k]) for k in a.events), "not deterministic"

    best_cpu = best_wall = base_cpu = base_wall = float("inf")
    pop = None
    for _ in range(args.repeat):  # interleaved with the floor, best of --repeat
        pop = None
        t0, c0 = time.perf_counter(), time.thread_time()
        pop = generate_columns(args.members, config=cfg)
        best_cpu = min(best_cpu, time.thread_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - t0)
        fc, fw = numpy_floor(args.members, pop.n_events)
        base_cpu, base_wall = min(base_cpu, fc), min(base_wall, fw)
    assert pop is not None
    per_1m = best_cpu * 1_000_000 / max(1, args.members)
    print(
        f"bulk.generate_columns: {args.members:,} members, {pop.n_events:,} events in "
        f"{best_cpu:.1f} s CPU ({best_wall:.1f} s wall), best of {args.repeat}"
    )
    print(f"  projected to 1M members: {per_1m:.1f} s of one core (goal <= 20 s)")
    print(
        f"  numpy floor (same draws, sort, gather): {base_cpu:.1f} s CPU ({base_wall:.1f} s wall)"
    )
    print(f"  ratio generate_columns / numpy floor: {best_cpu / base_cpu:.2f}x (CPU)")

    n_obj = args.object_members
    t0, c0 = time.perf_counter(), time.thread_time()
    events = sum(len(evs) for _, evs in generate(n_obj, seed=args.seed))
    secs, wall = time.thread_time() - c0, time.perf_counter() - t0
    print(
        f"synthetic.generate (Member/Event objects): {n_obj:,} members, {events:,} events in "
        f"{secs:.1f} s CPU ({wall:.1f} s wall); projected to 1M: "
        f"{secs * 1_000_000 / max(1, n_obj):.1f} s"
    )
    base = object_floor(n_obj, events / max(1, n_obj), 45)
    print(f"  Python floor loop (45 draws + one tuple per event): {base:.1f} s")
    print(f"  ratio generate / floor loop: {secs / base:.2f}x")
    print(
        f"  column generator vs object generator, per member: "
        f"{(secs / max(1, n_obj)) / (best_cpu / max(1, args.members)):.1f}x faster"
    )

    for target in filter(None, args.load.split(",")):
        from membermkt.stores.sql import SqlStore

        if target == "sqlite":
            path = f"/tmp/membermkt-bulk-{args.members}.db"
            if os.path.exists(path):
                os.remove(path)
            store = SqlStore(f"sqlite:///{path}")
        elif target == "postgresql":
            store = SqlStore(args.pg_url, table_prefix=f"bulkbench_{args.members}_")
            store.drop_tables()
        else:
            raise SystemExit(f"--load: unknown target {target!r}")
        t0 = time.perf_counter()
        load(store, pop)
        secs = time.perf_counter() - t0
        rows = pop.n_events + 3 * len(pop)
        print(
            f"bulk.load into {target}: {secs:.1f} s wall, {pop.n_events / secs:,.0f} events/s "
            f"(~{rows / secs:,.0f} rows/s with members, identities and attributes)"
        )
        if target == "postgresql":
            store.drop_tables()
        store.close()


if __name__ == "__main__":
    main()
