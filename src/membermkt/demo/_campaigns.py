"""Chapter 4, the campaign: an A/B mass send with a 10 % holdout, simulated, written to the
delivery ledger, sent, and followed by the week of purchases that gives its lift."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.demo._base import (
    APPID,
    CAMPAIGN_ID,
    CONVERSION_RATES,
    CONVERSION_WINDOW,
    Echo,
    StoryClock,
    _hash_unit,
)
from membermkt.demo._segments import demo_segments
from membermkt.demo._world import _World


@attrs.frozen(kw_only=True)
class _CampaignOutcome:
    campaign: Any
    summary: Any
    report: Any
    simulation: dict[str, int]
    deliveries: dict[str, int]
    new_sends: int
    treatment: tuple[str, ...]
    lift: dict[str, tuple[float | None, float | None]]


def demo_campaign(audience: Any | None = None) -> Any:
    """The demo's campaign: an A/B mass send to subscribed buyers, 10 % held out."""
    from membermkt.core.campaigns import Campaign, Variant

    segment = audience if audience is not None else demo_segments()["subscribed buyers"]
    return Campaign(
        id=CAMPAIGN_ID,
        audience=segment,
        channel="wechat.mass",
        variants=(
            Variant(
                name="A",
                content={"msgtype": "text", "text": {"content": "夏季新品上市，会员九折。"}},
            ),
            Variant(
                name="B",
                content={"msgtype": "text", "text": {"content": "榴莲季到了！老客专享八五折。"}},
            ),
        ),
        holdout=0.1,
        address_namespace=APPID,
    )


def audience_of(store: Any, segment: Any, as_of: dt.datetime) -> list[tuple[Member, list[Event]]]:
    """``(member, events until as_of)`` of a segment's members, in id order, loaded in bulk:
    one batched member read and one pass over the event log (instead of two queries per
    member, as :func:`membermkt.engine.campaigns.members_of` does — that one streams, this
    one is for audiences that fit in memory)."""
    ids = sorted(store.select(segment, as_of))
    members = store.get_members(ids)
    wanted = set(ids)
    events: dict[str, list[Event]] = {mid: [] for mid in ids}
    for ev in store.iter_events():
        if ev.member_id in wanted and ev.at <= as_of:
            events[ev.member_id].append(ev)
    out = []
    for mid in ids:
        member = members.get(mid)
        if member is not None:
            evs = events[mid]
            evs.sort(key=lambda e: (e.at, e.key or ""))
            out.append((member, evs))
    return out


def _campaign(
    store: Any, world: _World, clock: StoryClock, as_of: dt.datetime, echo: Echo, progress: bool
) -> _CampaignOutcome:
    from membermkt.channels.wechat import WeChatMassChannel
    from membermkt.core.campaigns import HOLDOUT, check
    from membermkt.engine.campaigns import (
        CampaignReport,
        CampaignRunner,
        prepare,
        simulate,
        tqdm_progress,
    )

    async def no_sleep(seconds: float) -> None:
        return None

    campaign = demo_campaign()
    channel = WeChatMassChannel(world.client)
    check(campaign, capabilities=channel.capabilities)
    clock.set(as_of)
    audience = audience_of(store, campaign.audience, as_of)
    sim = simulate(campaign, audience, None, as_of, capabilities=channel.capabilities, keep=0)
    planned = dict(sim.summary.deliveries)
    planned[HOLDOUT] = sum(sim.summary.skipped.get(HOLDOUT, {}).values())
    echo(
        "      simulated: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(planned.items()))
        + f"; API calls {sum(c.get('api_calls', 0) for c in sim.quota_cost.values())}"
    )
    summary = prepare(store, campaign, audience, None, as_of)
    runner = CampaignRunner(
        store,
        channel,
        clock=clock,
        sleep=no_sleep,
        rate_per_second=None,
        concurrency=2,
        seed=1,
        progress=tqdm_progress(desc="mass send", leave=False) if progress else None,
    )
    # the Campaign, not its id: consent, subscription, quiet hours and the platform's
    # 4-per-month mass cap (from the ledger) are re-checked at every hand-off
    result = runner.run(campaign)
    deliveries = {k: v for k, v in store.status_counts(campaign.id).items() if v}
    echo(
        f"      sent this run: {result.sent:,}; ledger: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(deliveries.items()) if v)
    )
    # the week after the send: buyers respond (more often when they got a message)
    records = list(store.deliveries(campaign.id))
    reached = tuple(sorted(r.delivery.member_id for r in records if r.status.value == "sent"))
    variant_of = {r.delivery.member_id: r.delivery.variant for r in records}
    for mid in summary.holdout_ids:
        variant_of[mid] = HOLDOUT
    conversions: list[Event] = []
    for mid, group in sorted(variant_of.items()):
        u = _hash_unit(CAMPAIGN_ID, mid)
        if group != HOLDOUT and mid not in reached:
            continue
        if u < CONVERSION_RATES.get(group, 0.0):
            at = as_of + dt.timedelta(hours=1 + int(_hash_unit("at", mid) * 24 * 6))
            conversions.append(
                Event(
                    mid,
                    "purchase",
                    at,
                    {
                        "order_id": f"{mid}-c1",
                        "amount_fen": 100 * (60 + int(_hash_unit("amt", mid) * 240)),
                        "category": "durian",
                        "campaign": CAMPAIGN_ID,
                    },
                    key=f"demo:{CAMPAIGN_ID}:{mid}",
                )
            )
    store.append_events(conversions)
    report = CampaignReport.build(
        campaign, records, summary, conversions=conversions, window=CONVERSION_WINDOW
    )
    lift = {g.group: (g.rate, g.lift) for g in report.groups if g.group != "-"}
    return _CampaignOutcome(
        campaign=campaign,
        summary=summary,
        report=report,
        simulation=planned,
        deliveries=deliveries,
        new_sends=result.sent,
        treatment=reached,
        lift=lift,
    )
