"""Chapter 6, tags and segments: rule tags (synced to the official account's user tags),
RFM group tags and the named segments the demo counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from membermkt.demo._base import Echo, _openid
from membermkt.demo._world import _World


def demo_segments() -> dict[str, Any]:
    """The named segments the demo counts (and the CLI's examples show)."""
    from membermkt.segments import ago, attr, did, tag

    return {
        "subscribed buyers": (attr("subscribed") == True) & (attr("orders_count") >= 1),  # noqa: E712
        "female, Shanghai or Hangzhou, 25-40": (attr("gender") == "female")
        & attr("city").isin(["Shanghai", "Hangzhou"])
        & attr("age").between(25, 40),
        "VIP or 3+ orders in 90 days": tag("vip")
        | did("purchase", at_least=3, within=dt.timedelta(days=90)),
        "clicked menu A in 30 days": did(
            "menu_click", where={"key": "A"}, within=dt.timedelta(days=30)
        ),
        "parcel QR, active 30 days": (attr("source") == "parcel")
        & (attr("last_active_at") >= ago(days=30)),
    }


def _tags_and_segments(
    store: Any, world: _World, as_of: dt.datetime, echo: Echo
) -> tuple[dict[str, int], dict[str, int]]:
    from membermkt import analytics
    from membermkt.segments import ago, attr, tag

    rules = {
        "vip": attr("orders_total_fen") >= 50_000,
        "new": (attr("subscribed") == True) & (attr("followed_at") >= ago(days=14)),  # noqa: E712
        "lapsed": (attr("orders_count") >= 1) & (attr("last_order_at") < ago(days=90)),
    }
    counts: dict[str, int] = {}
    tagged: dict[str, set[str]] = {}
    for name, segment in rules.items():
        ids = set(store.select(segment, as_of))
        store.tag(ids, name)
        store.untag(set(store.select(tag(name), as_of)) - ids, name)
        counts[name] = len(ids)
        tagged[name] = ids
    # the rule tags also go to the official account's own user tags (mass sends by tag,
    # the account's admin console); sync_tags keeps to the platform's tag limits
    members = store.get_members(set().union(*tagged.values()))
    desired: dict[str, set[str]] = {}
    for name, ids in tagged.items():
        for mid in ids:
            member = members.get(mid)
            if member is not None and member.state.subscribed:
                desired.setdefault(_openid(member), set()).add(name)
    plan = world.client.sync_tags(desired, managed=list(rules))
    echo(
        "      WeChat user tags synced: "
        + ", ".join(f"{k} +{len(v):,}" for k, v in sorted(plan.add.items()))
    )
    rfm = analytics.rfm(store, as_of=as_of)
    analytics.tag_rfm_groups(store, rfm)
    for group, n in sorted(rfm.group_counts().items()):
        counts[f"rfm:{group}"] = n
    segments = {name: store.count(seg, as_of) for name, seg in demo_segments().items()}
    return counts, segments
