"""Compiled segment predicate vs a hand-written Python loop, same data, one run.

    .venv/bin/python benchmarks/segments.py            # 1,000,000 members
    .venv/bin/python benchmarks/segments.py --members 200000

The segment (the foundation issue's): gender female AND city in {Shanghai, Hangzhou} AND
age 25–40 AND (tag vip OR did purchase ≥ 3 in 90 days) AND active in the last 30 days.

Data: ``membermkt.testing.synthetic``. To keep memory modest at 1M members only the events
the segment can look at (purchases) are kept; both contestants get exactly the same lists.
Each contestant runs ``--repeat`` times; the best time counts. Three contestants: the
compiled predicate (``compile_predicate(segment, as_of)`` over ``Member`` objects), a
hand-written loop over the same ``Member`` objects, and the issue's baseline — a
hand-written loop over plain tuples (gender, city, birthday, vip, last active, purchase
times), which pays nothing for the object model. Prints the ratio compiled / plain-tuple loop
(goal ≤ 1.5) and compiled / loop over Members.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from membermkt.core.segments import shift_years
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
    ap.add_argument("--repeat", type=int, default=3)
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

    pred = compile_predicate(segment(), as_of)
    hand = hand_written(as_of)

    def run(fn):
        best = float("inf")
        hits = 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            hits = sum(1 for m, evs in data if fn(m, evs))
            best = min(best, time.perf_counter() - t)
        return best, hits

    t_hand, n_hand = run(hand)
    t_comp, n_comp = run(pred)
    rows = plain_tuples(data)
    count = plain_loop(as_of)
    t_plain = float("inf")
    n_plain = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        n_plain = count(rows)
        t_plain = min(t_plain, time.perf_counter() - t)
    assert n_hand == n_comp == n_plain, (n_hand, n_comp, n_plain)
    print(f"selected {n_comp:,} members (all three agree)")
    print(f"plain-tuple loop  : {t_plain:.3f}s  ({len(data) / t_plain / 1e6:.2f} M members/s)")
    print(f"loop over Members : {t_hand:.3f}s  ({len(data) / t_hand / 1e6:.2f} M members/s)")
    print(f"compiled predicate: {t_comp:.3f}s  ({len(data) / t_comp / 1e6:.2f} M members/s)")
    print(f"ratio compiled/plain-tuple loop: {t_comp / t_plain:.2f}x (goal <= 1.5x)")
    print(f"ratio compiled/loop over Members: {t_comp / t_hand:.2f}x")


if __name__ == "__main__":
    main()
