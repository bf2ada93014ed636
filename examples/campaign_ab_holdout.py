"""A campaign with an A/B test and a holdout, sent through the WeChat emulator.

Plan → simulate (who gets what, who is skipped and why, what it costs in platform quota) →
write the plan to the delivery ledger → send (resumable, exactly once) → measure
conversions and lift against the holdout. Run it::

    python examples/campaign_ab_holdout.py
"""

from __future__ import annotations

import datetime as dt
import hashlib

from membermkt import Event
from membermkt.channels.wechat import OfficialAccount, WeChatMassChannel
from membermkt.core.campaigns import Campaign, QuietHours, Variant, check
from membermkt.core.members import Member
from membermkt.engine.campaigns import CampaignReport, CampaignRunner, members_of, prepare, simulate
from membermkt.segments import attr, did
from membermkt.stores import InMemoryStore
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.synthetic import SyntheticConfig, generate

APPID, SECRET = "wxexample00000005", "example-secret"
cfg = SyntheticConfig(seed=3, appid=APPID)
AS_OF = cfg.as_of  # the population's "now"


class Clock:
    """The campaign's clock: the send happens at AS_OF (a real run uses the system clock)."""

    def now(self) -> dt.datetime:
        return AS_OF


async def no_sleep(seconds: float) -> None:
    """Rate limiting and backoff waits are skipped in the example."""


def openid(member: Member) -> str:
    return next(i.value for i in member.identities if i.kind == "openid")


def main() -> None:
    # 1. members and their history (synthetic here; imported from your systems in real life)
    store = InMemoryStore()
    population = list(generate(3000, config=cfg))
    store.upsert_members(m for m, _ in population)
    store.append_events(e for _, evs in population for e in evs)

    # 2. the platform (emulated): the account and its followers
    emulator = WeChatEmulator(seed=1, clock=lambda: AS_OF.timestamp(), limits=())
    account = emulator.add_account(APPID, SECRET)
    account.add_followers(openid(m) for m, _ in population)
    channel = WeChatMassChannel(
        OfficialAccount(APPID, SECRET, transport=emulator.transport(), clock=Clock(), budgets=())
    )

    # 3. the campaign: two variants, 10 % held out, no sends at night
    campaign = Campaign(
        id="mango-season",
        audience=(attr("subscribed") == True)  # noqa: E712
        & did("purchase", where={"category": "mango"}, within=dt.timedelta(days=180)),
        channel="wechat.mass",
        variants=(
            Variant(name="A", content={"msgtype": "text", "text": {"content": "芒果季，会员九折"}}),
            Variant(
                name="B", content={"msgtype": "text", "text": {"content": "芒果到店，先到先得"}}
            ),
        ),
        holdout=0.1,
        quiet_hours=QuietHours(start=dt.time(22), end=dt.time(8)),
        address_namespace=APPID,
    )
    check(campaign, capabilities=channel.capabilities)  # what the platform would refuse

    sim = simulate(campaign, members_of(store, campaign, AS_OF), None, AS_OF, keep=5)
    print(sim)
    print("quota cost:", {k: dict(v) for k, v in sim.quota_cost.items()})

    summary = prepare(store, campaign, members_of(store, campaign, AS_OF), None, AS_OF)
    runner = CampaignRunner(store, channel, clock=Clock(), sleep=no_sleep, rate_per_second=None)
    result = runner.run(campaign)  # the campaign: its consent, quiet hours, caps re-checked
    print(f"sent {result.sent}, failed {result.failed}, unknown {result.unknown}")
    assert result.sent == summary.total_deliveries > 0
    assert runner.run(campaign).claimed == 0  # a second run has nothing left to send
    assert emulator.duplicates == 0

    # 4. the week after: purchases (a stand-in for your order feed), then the report
    def bought(mid: str, percent: int) -> bool:
        return int(hashlib.sha256(mid.encode()).hexdigest(), 16) % 100 < percent

    def order(mid: str, days: int) -> Event:
        props = {"order_id": f"{mid}-x", "amount_fen": 8800, "category": "mango"}
        return Event(mid, "purchase", AS_OF + dt.timedelta(days=days), props, key=f"{mid}-x")

    reached = [r.delivery.member_id for r in store.deliveries(campaign.id)]
    conversions = [order(mid, 2) for mid in reached if bought(mid, 15)]
    conversions += [order(mid, 3) for mid in sorted(summary.holdout_ids) if bought(mid, 6)]
    store.append_events(conversions)
    report = CampaignReport.build(
        campaign, store.deliveries(campaign.id), summary, conversions=conversions
    )
    for g in report.groups:
        lift = "" if g.lift is None else f"  lift {g.lift:+.1%}"
        rate = "-" if g.rate is None else f"{g.rate:.1%}"
        print(f"{g.group:8} members {g.members:5}  sent {g.sent:5}  converted {rate}{lift}")
    assert report.group("holdout").exposed == len(summary.holdout_ids) > 0


if __name__ == "__main__":
    main()
