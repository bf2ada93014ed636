"""Chapter 2, acquisition: buyers follow through scene QR codes and WeCom channel codes as
signed, encrypted callbacks (new followers get a welcome); the rest of their history is
imported in bulk."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

from membermkt.core.events import Event
from membermkt.core.members import Member, MemberState
from membermkt.demo._base import (
    APPID,
    CHANNELS,
    Echo,
    StoryClock,
    _bar,
    _external_userid,
    _openid,
    _parcel_order,
)
from membermkt.demo._wecom import _wecom_callbacks
from membermkt.demo._world import _World
from membermkt.errors import UsageError

LIVE_DAYS = 30
_SEPARATE = frozenset({"redpacket_claim"})


def _acquire(
    store: Any,
    world: _World,
    population: Sequence[tuple[Member, list[Event]]],
    clock: StoryClock,
    echo: Echo,
    progress: bool,
) -> tuple[int, int]:
    from membermkt.channels.wechat import CallbackHandler, Endpoint, Incoming

    account = world.account
    welcomed = [0]

    def on_message(incoming: Incoming) -> str | None:
        if any(e.type == "follow" for e in incoming.events):
            welcomed[0] += 1
            return incoming.reply_text("欢迎关注！回复手机号和订单号领取包裹红包。")
        return None

    corp = world.corp
    sender, wecom_handler = _wecom_callbacks(store, world.wecom_client, corp, clock)
    handler = CallbackHandler(
        Endpoint(
            appid=APPID,
            token=account.token,
            encoding_aes_key=account.encoding_aes_key,
            scene_channels=CHANNELS,
        ),
        store=store,
        on_message=on_message,
        clock=clock.timestamp,
    )
    # profiles first (the e-commerce platforms' buyer records), with an empty state: the
    # store folds the state from the events
    store.upsert_members(
        attrs.evolve(m, state=MemberState(), tags=frozenset()) for m, _ in population
    )
    bulk: list[Event] = []
    pushes = 0
    # every follow arrives live; so do first menu clicks of the last LIVE_DAYS days
    as_of = clock.now()
    live_since = as_of - dt.timedelta(days=LIVE_DAYS)
    bar = _bar(progress, len(population), "callbacks")
    try:
        for member, events in population:
            openid = _openid(member)
            clicked = False
            for ev in events:
                if ev.type == "follow":
                    clock.set(ev.at)
                    push = account.follow(openid, scene=str(ev.properties["scene"]))
                elif ev.type == "menu_click" and not clicked and ev.at >= live_since:
                    clicked = True
                    clock.set(ev.at)
                    push = account.event_push(openid, "CLICK", EventKey=str(ev.properties["key"]))
                elif ev.type == "contact_added":
                    clock.set(ev.at)
                    way = world.ways[(str(ev.properties["source"]), str(ev.properties["staff"]))]
                    push = corp.scan(way, _external_userid(member))
                    status, _, body = wecom_handler.handle(push.method, push.query, push.body)
                    if status != 200:
                        raise UsageError(f"WeCom callback for {member.id}: {status} {body!r}")
                    pushes += 1
                    continue
                else:
                    if ev.type not in _SEPARATE:
                        bulk.append(ev)
                    continue
                status, _, body = handler.handle(push.method, push.query, push.body)
                if status != 200:
                    raise UsageError(f"callback for {member.id} answered {status}: {body!r}")
                pushes += 1
            order = _parcel_order(member, events)
            if order is not None:
                bulk.append(order)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        handler.close()
        clock.set(as_of)
    store.append_events(bulk)
    welcomes = Counter(o.status.value for o in sender.outcomes)
    echo(
        f"      {pushes:,} callbacks handled; {welcomed[0]:,} followers welcomed on the official "
        f"account, {welcomes.get('sent', 0):,} WeCom contacts welcomed; "
        f"{len(bulk):,} history events imported"
    )
    return pushes, welcomed[0] + welcomes.get("sent", 0)
