"""Real processes: a runner killed with SIGKILL at random points and resumed, and several
runners sharing one PostgreSQL ledger. The SMS gateway emulator is served on loopback in this
process and counts what every handset received."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from membermkt import Member
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import DeliveryStatus
from membermkt.engine.campaigns import prepare
from membermkt.segments import TRUE
from membermkt.stores.sql import SqlStore
from membermkt.testing.phones import TEST_PHONES

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "sms_channel_plugin" / "src"
sys.path.insert(0, str(EXAMPLE_SRC))

from membermkt_sms import SmsGateway  # noqa: E402

WORKER = Path(__file__).with_name("campaign_worker.py")
AS_OF = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")


def _campaign() -> Campaign:
    return Campaign(
        id=f"crash-{uuid.uuid4().hex[:8]}",
        audience=TRUE,
        channel="sms.example",
        variants=(Variant(name="A", content={"text": "会员日 {{ id }}"}),),
        address_kind="phone",
    )


def _members(n: int) -> list[Member]:
    return [Member(f"m{i:05d}", identities=[TEST_PHONES.identity(f"138{i:08d}")]) for i in range(n)]


def _spawn(
    url: str, prefix: str, lease: float, concurrency: int, batch: int, *specs: str
) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), url, prefix, str(lease), str(concurrency), str(batch)]
    return subprocess.Popen(
        [*args, *specs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_sigkill_at_20_random_points_then_resume(tmp_path: Path) -> None:
    """Rule: a runner process killed at any point and resumed never makes a gateway deliver
    twice; through an idempotent gateway every delivery arrives exactly once, through a
    non-idempotent one the interrupted sends are reported ``unknown``, never re-sent.

    One process runs both campaigns (one per gateway) so the 20 kills interrupt both."""
    url, prefix = f"sqlite:///{tmp_path / 'ledger.db'}", "mm_"
    n = 800
    store = SqlStore(url, table_prefix=prefix, phones=TEST_PHONES)
    idem, plain = _campaign(), _campaign()
    for c in (idem, plain):
        prepare(store, c, _members(n), None, AS_OF)
    gateways = {
        True: SmsGateway(idempotent=True, seed=7),
        False: SmsGateway(idempotent=False, seed=8),
    }
    for g in gateways.values():
        g.faults.update(transient=0.05, busy=0.03)
    rng = random.Random(20260310)
    kills = 0

    def requests() -> int:
        return sum(g.requests for g in gateways.values())

    with gateways[True].serve() as url_idem, gateways[False].serve() as url_plain:
        specs = (f"{idem.id},{url_idem},1", f"{plain.id},{url_plain},0")
        while kills < 20:
            target = requests() + rng.randint(1, 6)
            proc = _spawn(url, prefix, 0.0, 3, 10, *specs)
            deadline = time.monotonic() + 60
            while requests() < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            if proc.poll() is not None:
                proc.communicate()
                break  # finished before we could kill it: nothing left to interrupt
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
        final = _spawn(url, prefix, 0.0, 3, 10, *specs)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err
    assert kills == 20, "the runner was interrupted 20 times"
    for c, idempotent in ((idem, True), (plain, False)):
        gateway = gateways[idempotent]
        keys = {r.key for r in store.deliveries(c.id)}
        counts = store.status_counts(c.id)
        assert counts["planned"] == counts["sending"] == 0
        assert gateway.duplicates == 0
        assert set(gateway.received) <= keys
        for rec in store.deliveries(c.id):
            if rec.status is DeliveryStatus.SENT:
                assert gateway.received[rec.key] == 1
        if idempotent:
            assert counts["sent"] == n
            assert all(gateway.received[k] == 1 for k in keys)
        else:
            assert counts["sent"] + counts["unknown"] + counts["failed"] == n
            assert counts["unknown"] > 0, "interrupted sends are reported unknown, not re-sent"
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set")
def test_four_runner_processes_share_one_postgres_ledger() -> None:
    """Rule: several runner processes on one PostgreSQL ledger send each delivery exactly
    once (claims with FOR UPDATE SKIP LOCKED)."""
    assert POSTGRES_URL
    prefix = f"cx{uuid.uuid4().hex[:8]}_"
    store = SqlStore(POSTGRES_URL, table_prefix=prefix, phones=TEST_PHONES)
    try:
        n = 2000
        c = _campaign()
        prepare(store, c, _members(n), None, AS_OF)
        gateway = SmsGateway(idempotent=False, seed=3)
        gateway.faults.update(transient=0.05)
        with gateway.serve() as base:
            procs = [
                _spawn(POSTGRES_URL, prefix, 600.0, 4, 25, f"{c.id},{base},0") for _ in range(4)
            ]
            outs = [p.communicate(timeout=180) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
        claimed = [json.loads(out)[0]["claimed"] for out, _ in outs]
        assert sum(claimed) == n, "every delivery claimed by exactly one process"
        assert sum(1 for x in claimed if x > 0) >= 2, "the work was actually shared"
        counts = store.status_counts(c.id)
        assert counts["sent"] == n
        assert gateway.duplicates == 0
        assert len(gateway.received) == n
    finally:
        store.drop_tables()
        store.close()
