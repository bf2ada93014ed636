"""Crash test: a 3-step journey (welcome → wait 3 days → coupon unless purchased) over 5,000
members on PostgreSQL, 4 worker processes, one SIGKILLed again and again, the emulated clock
advanced. Counted on the SMS gateway emulator's side: each member receives each step at most
once, exactly once where due; purchasers receive no coupon."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from membermkt import Member
from membermkt.core.events import Event
from membermkt.core.journeys import effect_key
from membermkt.engine.journeys import SqlJourneyProgress, campaign_id_for
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples" / "sms_channel_plugin" / "src"))
sys.path.insert(0, str(HERE))

from journey_crash_def import crash_journey  # noqa: E402
from membermkt_sms import SmsGateway  # noqa: E402

POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
N = 5000


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set")
def test_journey_exactly_once_with_a_worker_killed_repeatedly(tmp_path: Path) -> None:
    assert POSTGRES_URL
    prefix = f"jc{uuid.uuid4().hex[:8]}_"
    store = SqlStore(POSTGRES_URL, table_prefix=prefix, phones=TEST_PHONES)
    progress = SqlJourneyProgress(store)
    j = crash_journey()
    jid = j.id
    clock, stop = tmp_path / "clock", tmp_path / "stop"
    procs: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "workers.log").open("ab")
    try:
        store.upsert_members(
            Member(f"m{i:05d}", identities=[TEST_PHONES.identity(f"138{i:08d}")]) for i in range(N)
        )
        follows = [Event(f"m{i:05d}", "follow", T0, key=f"f{i}") for i in range(N)]
        buyers = {f"m{i:05d}" for i in range(N) if i % 3 == 0}
        buys = [
            Event(m, "purchase", T0 + dt.timedelta(days=1), {"amount_fen": 990}, key=f"p{m}")
            for m in sorted(buyers)
        ]
        store.append_events(follows + buys)
        progress.wake(jid, [e.member_id for e in follows], at=T0, version=j.version)
        gateway = SmsGateway(idempotent=True, seed=5)
        gateway.faults.update(transient=0.02)
        kills = 0
        with gateway.serve() as base:

            def spawn() -> subprocess.Popen[bytes]:
                return subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "journey_worker.py"),
                        POSTGRES_URL,
                        prefix,
                        str(clock),
                        str(stop),
                        base,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )

            def drive(now: dt.datetime, done: Callable[[], bool]) -> None:
                nonlocal kills
                clock.write_text(now.isoformat())
                deadline = time.monotonic() + 600
                while not done():
                    assert time.monotonic() < deadline, "workers did not finish in 10 min"
                    for i, p in enumerate(procs):
                        if p.poll() is not None:
                            log.flush()
                            err = (tmp_path / "workers.log").read_text()[-3000:]
                            assert p.returncode == -signal.SIGKILL, err
                            procs[i] = spawn()
                    time.sleep(1.5)
                    procs[0].send_signal(signal.SIGKILL)  # the victim
                    procs[0].wait()
                    kills += 1
                    procs[0] = spawn()

            def settled(now: dt.datetime) -> bool:
                counts = store.status_counts(campaign_id_for(jid))
                return (
                    progress.due_count(now) == 0
                    and counts.get("planned", 0) == 0
                    and counts.get("sending", 0) == 0
                )

            procs.extend(spawn() for _ in range(4))
            day0 = T0 + dt.timedelta(minutes=1)
            drive(day0, lambda: settled(day0) and len(gateway.received) >= N)
            day3 = T0 + dt.timedelta(days=3, minutes=1)
            drive(day3, lambda: settled(day3) and len(gateway.received) >= 2 * N - len(buyers))
            stop.write_text("stop")
            for p in procs:
                p.wait(timeout=60)
            time.sleep(0.5)
        assert kills >= 3, "the victim worker was killed several times"
        assert gateway.duplicates == 0
        welcome = {effect_key(jid, 1, f"m{i:05d}", "welcome", 0) for i in range(N)}
        coupon = {
            effect_key(jid, 1, f"m{i:05d}", "coupon", 0)
            for i in range(N)
            if f"m{i:05d}" not in buyers
        }
        assert set(gateway.received) == welcome | coupon
        assert all(n == 1 for n in gateway.received.values())
        statuses = {e.member_id: e.state.status for e in progress.entries(jid)}
        assert len(statuses) == N
        assert {m for m, s in statuses.items() if s == "goal"} == buyers
        assert all(s == "completed" for m, s in statuses.items() if m not in buyers)
    finally:
        stop.write_text("stop")
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
        progress.drop_tables()
        store.drop_tables()
        store.close()
