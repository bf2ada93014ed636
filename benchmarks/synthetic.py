"""Synthetic data speed: ``membermkt.testing.synthetic.generate`` members with their events.

    .venv/bin/python benchmarks/synthetic.py                 # 1,000,000 members
    .venv/bin/python benchmarks/synthetic.py --members 200000

Goal (issue #18): 1M members with their events in ≤ 20 s. Prints the time, the rate, the
time projected to 1M members (CPU time of the generating thread, so a loaded machine's
other jobs do not count; wall time is printed too), and the ratio against a baseline
measured in the same run: a bare loop drawing the same number of random numbers and
building one tuple per event — the floor of any pure-Python generator of this shape.
Checks determinism on the way (the same seed gives the same first members).

For data at 10M members the generator is not the tool: ``benchmarks/scale_postgres.py``
generates inside PostgreSQL (no row passes through Python).
"""

from __future__ import annotations

import argparse
import random
import time

from membermkt.testing.synthetic import generate


def floor_loop(members: int, events_per_member: float, draws_per_member: float) -> float:
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
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    first = [m for m, _ in generate(50, seed=args.seed)]
    again = [m for m, _ in generate(50, seed=args.seed)]
    assert first == again, "same seed, different members"
    t0 = time.perf_counter()
    c0 = time.thread_time()
    events = 0
    for _, evs in generate(args.members, seed=args.seed):
        events += len(evs)
    wall = time.perf_counter() - t0
    secs = time.thread_time() - c0  # CPU of this thread: other jobs' load does not count
    per_1m = secs * 1_000_000 / args.members
    print(
        f"generated {args.members:,} members and {events:,} events in {secs:.1f} s of CPU "
        f"({wall:.1f} s wall)"
    )
    print(f"  {args.members / secs:,.0f} members/s, {events / secs:,.0f} events/s (CPU)")
    print(f"  projected to 1M members: {per_1m:.1f} s of one core (goal <= 20 s)")
    base = floor_loop(args.members, events / args.members, 45)
    print(f"floor loop (45 draws + one tuple per event, per member): {base:.1f} s")
    print(f"ratio generate/floor loop: {secs / base:.2f}x")


if __name__ == "__main__":
    main()
