"""The WeCom side of the story: the emulated corp with one channel code (contact way) per
acquisition channel and clerk, and the callback handler that welcomes new contacts (set-up
and acquisition chapters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from membermkt.demo._base import CHANNELS, CORPID, WECOM_SECRET, StoryClock


def _setup_wecom(
    clock: StoryClock, population: Sequence[Any]
) -> tuple[Any, Any, Any, dict[tuple[str, str], str]]:
    """``(emulator, corp, client, ways)``: ``ways`` maps ``(channel state, clerk)`` to the
    contact way's ``config_id``."""
    # WeCom: one channel code (contact way) per acquisition channel and clerk; its
    # ``state`` names the channel and comes back in the add-contact callback
    from membermkt.channels.wecom import WeCom, encode_state
    from membermkt.testing.emulator.wecom import WeComEmulator

    wecom = WeComEmulator(seed=1, clock=clock.timestamp)
    corp = wecom.add_corp(CORPID, WECOM_SECRET)
    staff = sorted(
        {
            str(e.properties["staff"])
            for _, evs in population
            for e in evs
            if e.type == "contact_added"
        }
    )
    corp.add_staff(*staff)
    wecom_client = WeCom(
        CORPID, WECOM_SECRET, transport=wecom.transport(), clock=clock, sleep=lambda s: None
    )
    ways = {}
    for channel in CHANNELS:
        for userid in staff:
            way = wecom_client.add_contact_way(
                type=1, scene=2, users=[userid], state=encode_state(f"wecom-{channel}")
            )
            ways[(f"wecom-{channel}", userid)] = way.config_id
    return wecom, corp, wecom_client, ways


def _wecom_callbacks(
    store: Any, wecom_client: Any, corp: Any, clock: StoryClock
) -> tuple[Any, Any]:
    """``(welcome sender, callback handler)`` for the corp's add-contact callbacks: new
    contacts get a welcome message, chosen by the channel code they came through."""
    from membermkt.channels.wecom import (
        WeComCallbackHandler,
        WeComEndpoint,
        WelcomeConfig,
        WelcomeMessage,
        WelcomeSender,
    )

    sender = WelcomeSender(
        wecom_client,
        WelcomeConfig(
            default=WelcomeMessage(text="你好，我是店员 {{ staff }}，有问题随时找我。"),
            by_channel={
                "wecom-parcel": WelcomeMessage(text="感谢购买！我是 {{ staff }}，售后找我。"),
            },
        ),
        store=store,
        clock=clock.timestamp,
        background=False,
    )
    wecom_handler = WeComCallbackHandler(
        WeComEndpoint(corpid=CORPID, token=corp.token, encoding_aes_key=corp.encoding_aes_key),
        store=store,
        welcome=sender,
        clock=clock.timestamp,
    )
    return sender, wecom_handler
