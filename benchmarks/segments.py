"""Compiled segment predicate vs a hand-written Python loop, same data, one run.

    .venv/bin/python benchmarks/segments.py            # 1,000,000 members
    .venv/bin/python benchmarks/segments.py --members 200000

The segment (the foundation issue's): gender female AND city in {Shanghai, Hangzhou} AND
age 25–40 AND (tag vip OR did purchase ≥ 3 in 90 days) AND active in the last 30 days.

Data: ``membermkt.testing.synthetic``. To keep memory modest at 1M members only the events
the segment can look at (purchases) are kept; every contestant gets exactly the same lists.
Four contestants, run interleaved (one round of each, ``--repeat`` rounds, the best time of
each counts, in CPU time of the benchmark's thread):

* the issue's baseline — a hand-written loop over **plain tuples** (gender, city, birthday,
  vip, last active, purchase times), which pays nothing for an object model;
* ``MemberTable.count(segment, as_of)`` — the segment compiled into one loop over the
  table's columns (goal: ≤ 1.5× the plain-tuple loop). Building the table (and its columns,
  on the first count) is timed separately, like building the plain tuples is not timed;
* ``compile_predicate(segment, as_of)`` called per ``Member`` (what ``InMemoryStore``
  runs);
* a hand-written loop over the same ``Member`` objects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from membermkt.core.segments import shift_years
from membermkt.core.table import MemberTable
from membermkt.segments import ago, attr, compile_predicate, did, tag
from membermkt.testing.synthetic import SyntheticConfig, generate


def segment():
    return (
        (attr("gender") == "female")
        & attr("city").isin(["Shanghai", "Hangzhou"])
        & attr("age").between(25, 40)
        & (tag("vip") | did("purchase", at_least=3, within=dt.timedelta(days=90)))
        & (attr("last_active_at") >= ago(days=30))
    )


def hand_written(as_of: dt.datetime):
    cities = {"Shanghai", "Hangzhou"}
    today = as_of.date()
    oldest = shift_years(today, -41) + dt.timedelta(days=1)  # age <= 40
    youngest = shift_years(today, -25)  # age >= 25
    cut90 = as_of - dt.timedelta(days=90)
    cut30 = as_of - dt.timedelta(days=30)

    def check(m, events):
        p = m.profile
        if p.gender != "female" or p.city not in cities:
            return False
        b = p.birthday
        if b is None or not oldest <= b <= youngest:
            return False
        if "vip" not in m.tags:
            n = 0
            for e in events:
                if e.type == "purchase" and cut90 < e.at <= as_of:
                    n += 1
                    if n >= 3:
                        break
            else:
                return False
        la = m.state.last_active_at
        return la is not None and la >= cut30

    return check


def plain_tuples(data):
    """The members as plain tuples ``(gender, city, birthday, is_vip, last_active_at,
    purchase times)`` — what a hand-written loop without an object model reads."""
    return [
        (
            m.profile.gender,
            m.profile.city,
            m.profile.birthday,
            "vip" in m.tags,
            m.state.last_active_at,
            tuple(e.at for e in evs if e.type == "purchase"),
        )
        for m, evs in data
    ]


def plain_loop(as_of: dt.datetime):
    """The segment hand-written over :func:`plain_tuples` (the issue's baseline)."""
    cities = {"Shanghai", "Hangzhou"}
    today = as_of.date()
    oldest = shift_years(today, -41) + dt.timedelta(days=1)
    youngest = shift_years(today, -25)
    cut90 = as_of - dt.timedelta(days=90)
    cut30 = as_of - dt.timedelta(days=30)

    def count(rows):
        n = 0
        for gender, city, birthday, vip, last_active, buys in rows:
            if gender != "female" or city not in cities:
                continue
            if birthday is None or not oldest <= birthday <= youngest:
                continue
            if not vip and sum(1 for t in buys if cut90 < t <= as_of) < 3:
                continue
            if last_active is not None and last_active >= cut30:
                n += 1
        return n

    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    cfg = SyntheticConfig(seed=args.seed)
    as_of = cfg.as_of
    t0 = time.perf_counter()
    data = [
        (m, [e for e in evs if e.type == "purchase"])
        for m, evs in generate(args.members, config=cfg)
    ]
    print(f"generated {len(data):,} members in {time.perf_counter() - t0:.1f}s")

    seg = segment()
    pred = compile_predicate(seg, as_of)
    hand = hand_written(as_of)
    t0 = time.perf_counter()
    rows = plain_tuples(data)
    t_rows = time.perf_counter() - t0
    count = plain_loop(as_of)
    t0 = time.perf_counter()
    table = MemberTable(data)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    table.count(seg, as_of)  # builds the columns the segment reads
    t_first = time.perf_counter() - t0

    contestants = {
        "plain": lambda: count(rows),
        "table": lambda: table.count(seg, as_of),
        "compiled": lambda: sum(1 for m, evs in data if pred(m, evs)),
        "hand": lambda: sum(1 for m, evs in data if hand(m, evs)),
    }
    best = dict.fromkeys(contestants, float("inf"))
    hits: dict[str, int] = {}
    # Interleaved rounds, each contestant timed in CPU time of this thread (all four are
    # single-threaded Python): other jobs on a shared machine do not count, their cache
    # and memory-bandwidth pressure still does — it shifts every contestant alike.
    for _ in range(args.repeat):
        for name, fn in contestants.items():
            t = time.thread_time()
            hits[name] = fn()
            best[name] = min(best[name], time.thread_time() - t)
    assert len(set(hits.values())) == 1, hits
    n = len(data)
    print(f"selected {hits['plain']:,} members (all four agree)")
    print(f"plain tuples built in {t_rows:.3f}s (not timed below)")
    print(f"MemberTable built in {t_build:.3f}s, its columns on the first count in {t_first:.3f}s")
    labels = {
        "plain": "plain-tuple loop   ",
        "table": "MemberTable.count  ",
        "compiled": "compiled predicate ",
        "hand": "loop over Members  ",
    }
    for name, label in labels.items():
        print(f"{label}: {best[name]:.3f}s  ({n / best[name] / 1e6:.2f} M members/s)")
    plain = best["plain"]
    print(f"ratio MemberTable/plain-tuple loop: {best['table'] / plain:.2f}x (goal <= 1.5x)")
    print(f"ratio compiled predicate/plain-tuple loop: {best['compiled'] / plain:.2f}x")
    print(f"ratio compiled predicate/loop over Members: {best['compiled'] / best['hand']:.2f}x")


if __name__ == "__main__":
    main()
