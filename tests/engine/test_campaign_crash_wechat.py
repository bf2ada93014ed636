"""Real processes on the real official-account channels: a runner SIGKILLed at random points
and resumed, on SQLite and PostgreSQL, and four runners sharing one PostgreSQL ledger with
one of them killed. The emulator is served on loopback in this process and counts what every
follower received (DESIGN §4.1)."""

from __future__ import annotations

import collections
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

from membermkt import Identity, Member, MemberState
from membermkt.core.campaigns import Campaign, Variant
from membermkt.core.delivery import DeliveryStatus
from membermkt.engine.campaigns import prepare
from membermkt.segments import TRUE
from membermkt.stores.sql import SqlStore
from membermkt.testing.emulator.wechat import WeChatEmulator

WORKER = Path(__file__).with_name("wechat_campaign_worker.py")
AS_OF = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
APPID = "wxcrash00000001"
POSTGRES_URL = os.environ.get("MEMBERMKT_TEST_POSTGRES_URL")
MASS_API = "/cgi-bin/message/mass/send"
TEMPLATE_API = "/cgi-bin/message/template/send"
CONCURRENCY = 3


def _members(n: int) -> list[Member]:
    return [
        Member(
            f"m{i:05d}",
            identities=[Identity("openid", f"o{i:05d}", APPID)],
            state=MemberState(subscribed=True),
        )
        for i in range(n)
    ]


def _campaigns() -> tuple[Campaign, Campaign]:
    tag = uuid.uuid4().hex[:8]
    mass = Campaign(
        id=f"mass-{tag}",
        audience=TRUE,
        channel="wechat.mass",
        variants=(Variant(name="A", content={"msgtype": "text", "text": {"content": "春季上新"}}),),
        address_namespace=APPID,
    )
    template = Campaign(
        id=f"tpl-{tag}",
        audience=TRUE,
        channel="wechat.template",
        variants=(
            Variant(
                name="A",
                content={"template_id": "TPL1", "data": {"first": {"value": "您好 {{ id }}"}}},
            ),
        ),
        address_namespace=APPID,
    )
    return mass, template


class _RestartClock:
    """The emulator's clock: real time, moved a minute on at every runner restart. A
    recovery resends a killed runner's batch with its ``clientmsgid``; the platform answers
    45066 to a retry within a minute of the previous attempt (the runner then waits it out,
    tested in test_campaign_guarantees.py), so here a restart takes a minute, as a real
    process supervisor's back-off would."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def restart(self) -> None:
        self.offset += 61.0


def _emulator(n: int, clock: _RestartClock | None = None) -> WeChatEmulator:
    emu = WeChatEmulator(seed=3, limits=(), clock=clock or time.time)
    acct = emu.add_account(APPID, "secret")
    acct.add_followers(f"o{i:05d}" for i in range(n))
    acct.add_template("TPL1")
    return emu


def _spawn(url: str, prefix: str, lease: float, base: str, *specs: str) -> subprocess.Popen[str]:
    args = [sys.executable, str(WORKER), url, prefix, str(lease), str(CONCURRENCY), base, APPID]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [*args, *specs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _received(emu: WeChatEmulator, kind: str) -> collections.Counter[str]:
    with emu.lock:
        return collections.Counter(r.openid for r in emu.receipts if r.kind == kind)


def _check(
    store: SqlStore, emu: WeChatEmulator, mass: Campaign, template: Campaign, n: int, kills: int
) -> None:
    """Counted on the emulator side: mass 0 duplicates, 0 lost; template 0 duplicates,
    in doubt ≤ kills × concurrency (all ``unknown``), everything else delivered."""
    assert emu.duplicates == 0
    got_mass = _received(emu, "mass")
    assert set(got_mass.values()) == {1}, "no follower got the mass message twice"
    assert len(got_mass) == n, "no follower lost"
    counts = store.status_counts(mass.id)
    assert counts["sent"] == n, counts
    got_tpl = _received(emu, "template")
    assert set(got_tpl.values()) <= {1}
    counts = store.status_counts(template.id)
    assert counts["planned"] == counts["sending"] == counts["failed"] == 0, counts
    assert counts["sent"] + counts["unknown"] == n
    assert counts["unknown"] <= kills * CONCURRENCY, counts
    for rec in store.deliveries(template.id):
        if rec.status is DeliveryStatus.SENT:
            assert got_tpl[rec.delivery.address] == 1
        else:
            assert rec.status is DeliveryStatus.UNKNOWN
            assert rec.reason
            assert rec.reason.startswith("in doubt")


def _calls(emu: WeChatEmulator) -> int:
    return emu.calls[MASS_API] + emu.calls[TEMPLATE_API]


def _kill_and_resume(url: str, prefix: str, n: int, kills_wanted: int, seed: int) -> None:
    store = SqlStore(url, table_prefix=prefix)
    try:
        mass, template = _campaigns()
        for c in (mass, template):
            prepare(store, c, _members(n), None, AS_OF)
        restart = _RestartClock()
        emu = _emulator(n, restart)
        rng = random.Random(seed)
        kills = 0
        with emu.serve() as server:
            base = server.url
            specs = (f"{mass.id},mass,40", f"{template.id},template,1")
            while kills < kills_wanted:
                target = _calls(emu) + rng.randint(2, 25)
                proc = _spawn(url, prefix, 0.0, base, *specs)
                deadline = time.monotonic() + 60
                while _calls(emu) < target and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.0005)
                if proc.poll() is not None:
                    proc.communicate()
                    break  # finished before we could kill it
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
                restart.restart()
            final = _spawn(url, prefix, 0.0, base, *specs)
            _out, err = final.communicate(timeout=180)
            assert final.returncode == 0, err
        assert kills == kills_wanted, f"the runner was interrupted {kills_wanted} times"
        _check(store, emu, mass, template, n, kills)
    finally:
        store.drop_tables()
        store.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.mark.slow
def test_sigkill_at_12_random_points_on_sqlite(sqlite_url: str) -> None:
    """Rule: killed at 12 random points and resumed on an SQLite ledger, a mass campaign
    reaches every follower exactly once and a template campaign never twice."""
    _kill_and_resume(sqlite_url, "mm_", 1200, 12, seed=20260310)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set")
def test_sigkill_at_12_random_points_on_postgres() -> None:
    """Rule: the same on a PostgreSQL ledger."""
    assert POSTGRES_URL
    _kill_and_resume(POSTGRES_URL, f"ck{uuid.uuid4().hex[:8]}_", 1200, 12, seed=20260311)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="MEMBERMKT_TEST_POSTGRES_URL not set")
def test_four_runner_processes_one_killed_on_postgres() -> None:
    """Rule: four runner processes share one PostgreSQL ledger; one is SIGKILLed mid-run;
    a later recovery run settles its batches: mass exactly once, template never twice."""
    assert POSTGRES_URL
    prefix = f"cf{uuid.uuid4().hex[:8]}_"
    store = SqlStore(POSTGRES_URL, table_prefix=prefix)
    try:
        n = 1600
        mass, template = _campaigns()
        for c in (mass, template):
            prepare(store, c, _members(n), None, AS_OF)
        restart = _RestartClock()
        emu = _emulator(n, restart)
        with emu.serve() as server:
            specs = (f"{mass.id},mass,40", f"{template.id},template,1")
            procs = [_spawn(POSTGRES_URL, prefix, 600.0, server.url, *specs) for _ in range(4)]
            deadline = time.monotonic() + 60
            while _calls(emu) < 150 and time.monotonic() < deadline:
                time.sleep(0.0005)
            procs[0].send_signal(signal.SIGKILL)
            outs = [p.communicate(timeout=240) for p in procs]
            for p, (_, err) in zip(procs[1:], outs[1:], strict=True):
                assert p.returncode == 0, err
            claimed = [json.loads(out)[1]["claimed"] for out, _ in outs[1:]]
            assert sum(1 for x in claimed if x > 0) >= 2, "the work was actually shared"
            restart.restart()
            final = _spawn(POSTGRES_URL, prefix, 0.0, server.url, *specs)
            _, err = final.communicate(timeout=180)
            assert final.returncode == 0, err
        _check(store, emu, mass, template, n, kills=1)
    finally:
        store.drop_tables()
        store.close()
