"""SOP staff tasks: a journey step becomes an ``add_msg_template`` task for the staff who owns
the customer's WeCom relation (WeCom emulator); completion comes back from the platform's
results into the ledger; per-staff SOP completion counts it."""

from __future__ import annotations

import datetime as dt

from membermkt import Identity, Member
from membermkt.channels.wecom import WeCom, WeComMassChannel, pull_mass_results
from membermkt.core.events import Event
from membermkt.core.journeys import EventTrigger, Journey, StaffTask, Wait
from membermkt.engine.journeys import (
    InMemoryJourneyProgress,
    JourneyEngine,
    campaign_id_for,
    sop_completion,
)
from membermkt.stores.memory import InMemoryStore
from membermkt.testing.emulator.wecom import WeComEmulator
from membermkt.wire.retry import RetryPolicy

CORPID, SECRET = "ww0000000000000019", "contact-secret"


class Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def __call__(self) -> float:
        return self.t

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t, dt.UTC)


def test_staff_task_goes_to_the_owner_and_completes_from_results() -> None:
    clock = Clock()
    emu = WeComEmulator(seed=19, clock=clock)
    corp = emu.add_corp(CORPID, SECRET, "app-secret")
    corp.add_staff("clerk1", "clerk2")
    client = WeCom(
        CORPID, SECRET, transport=emu.transport(), clock=clock, retry=RetryPolicy(attempts=2)
    )
    store = InMemoryStore()
    t0 = clock.now()
    owners = {"wm1": "clerk1", "wm2": "clerk1", "wm3": "clerk2"}
    for ext, staff in owners.items():
        corp.add_customer(staff, ext)
    store.upsert_members(
        Member(f"m-{ext}", identities=[Identity("external_userid", ext, CORPID)]) for ext in owners
    )
    adds = [
        Event(f"m-{ext}", "contact_added", t0, {"staff": staff}, key=f"a-{ext}")
        for ext, staff in owners.items()
    ]
    store.append_events(adds)
    j = Journey(
        id="sop",
        version=1,
        trigger=EventTrigger("contact_added"),
        steps=[
            Wait("d3", 3 * 86400, next="call"),
            StaffTask("call", "Day-3 check-in", "您好，上次的榴莲还满意吗？"),
        ],
    )
    engine = JourneyEngine(
        store, InMemoryJourneyProgress(), [j], channels=[WeComMassChannel(client)]
    )
    engine.observe(adds, now=t0)
    engine.run_due(now=t0)
    assert sop_completion(store, "sop") == {}
    clock.t += 3 * 86400 + 60
    now = clock.now()
    r = engine.run_due(now=now)
    assert r.planned == 3
    engine.dispatch(clock=clock)
    # one add_msg_template per owner staff, each listing only their customers
    masses = list(corp.masses.values())
    assert sorted(
        (staff, tuple(sorted(ext))) for m in masses for staff, ext in m.targets.items()
    ) == [("clerk1", ("wm1", "wm2")), ("clerk2", ("wm3",))]
    assert all(m.text == "您好，上次的榴莲还满意吗？" for m in masses)
    assert sop_completion(store, "sop") == {
        "clerk1": {"tasks": 2, "completed": 0, "pending": 2, "failed": 0, "unknown": 0},
        "clerk2": {"tasks": 1, "completed": 0, "pending": 1, "failed": 0, "unknown": 0},
    }
    clerk1 = next(m for m in masses if "clerk1" in m.targets)
    corp.confirm_mass(clerk1.msgid, "clerk1")
    clock.t += 60
    pull_mass_results(client, store, campaign_id_for("sop"), now=clock.now())
    done = sop_completion(store, "sop")
    assert done["clerk1"]["completed"] == 2
    assert done["clerk2"]["pending"] == 1
