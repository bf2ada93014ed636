"""An example journey (SOP): day 0 welcome, day 3 a reminder to the owner staff, day 7 a
coupon if the customer has not purchased — run end to end on an in-memory store.

    python examples/journey_welcome.py

It prints the journey's JSON form, runs a week of emulated time for three customers (one buys
on day 2) and prints what each received and the journey report.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from membermkt import Identity, Member
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.core.events import Event
from membermkt.core.journeys import (
    EventTrigger,
    Goal,
    Grant,
    Journey,
    Reentry,
    Send,
    StaffTask,
    Tag,
    Wait,
)
from membermkt.engine.journeys import InMemoryJourneyProgress, JourneyEngine
from membermkt.stores.memory import InMemoryStore

CORPID = "ww-example"
DAY = 86400

JOURNEY = Journey(
    id="new-customer-sop",
    version=1,
    name="New WeCom customer: welcome, check-in, coupon",
    trigger=EventTrigger("contact_added"),
    steps=[
        Send(
            "welcome",
            "example.wecom",
            {"default": {"text": "欢迎！回复 1 了解本周鲜果"}},
            next="wait3",
        ),
        Wait("wait3", 3 * DAY, next="checkin"),
        StaffTask(
            "checkin",
            "Day-3 check-in",
            "您好，我是您的专属顾问，最近有什么想吃的水果吗？",
            channel="example.staff",
            next="wait4",
        ),
        Wait("wait4", 4 * DAY, next="coupon"),
        Grant("coupon", "stock-welcome-10", channel="example.coupon", next="tag"),
        Tag("tag", "sop-completed"),
    ],
    goal=Goal("purchase"),
    reentry=Reentry("never"),
    holdout_percent=10,
)


class PrintChannel:
    """A stand-in channel that prints what it would send (use the real ones in production:
    ``WeComMassChannel`` for staff tasks, ``CouponChannel`` for coupons)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.capabilities = ChannelCapabilities(
            max_batch_size=100, address_kind="external_userid", address_namespace=CORPID
        )
        self.sent: list[tuple[str, str]] = []

    def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        for d in batch:
            self.sent.append((d.member_id, d.key))
        return [SendResult(key=d.key, outcome=SendOutcome.SENT) for d in batch]


class Clock:
    def __init__(self, t: dt.datetime) -> None:
        self.t = t

    def now(self) -> dt.datetime:
        return self.t


def main() -> None:
    JOURNEY.validate()
    print(json.dumps(JOURNEY.to_json(), ensure_ascii=False, indent=1)[:400], "...")
    store = InMemoryStore()
    t0 = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
    channels = [PrintChannel(n) for n in ("example.wecom", "example.staff", "example.coupon")]
    engine = JourneyEngine(store, InMemoryJourneyProgress(), [JOURNEY], channels=channels)
    for i in range(3):
        store.upsert_members(
            [Member(f"c{i}", identities=[Identity("external_userid", f"wm{i}", CORPID)])]
        )
    adds = [Event(f"c{i}", "contact_added", t0, {"staff": "clerk1"}, key=f"a{i}") for i in range(3)]
    store.append_events(adds)
    store.append_events([Event("c1", "purchase", t0 + dt.timedelta(days=2), {"amount_fen": 8800})])
    engine.observe(adds, now=t0)
    for day in range(8):
        now = t0 + dt.timedelta(days=day, minutes=5)
        engine.run_due(now=now)
        engine.dispatch(clock=Clock(now))
    for c in channels:
        print(c.name, sorted(c.sent))
    print(json.dumps(engine.report("new-customer-sop").to_dict(), indent=1))


if __name__ == "__main__":
    main()
