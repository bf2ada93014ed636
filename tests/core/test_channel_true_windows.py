"""Only what the platform counts opens the official account's customer-service window."""

from __future__ import annotations

import datetime as dt

from membermkt.core.events import Event
from membermkt.core.quotas import OA_CUSTOM_WINDOW, OA_CUSTOM_WINDOW_2021

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _open(*events: Event) -> bool:
    return OA_CUSTOM_WINDOW.check(events, [], T0 + dt.timedelta(hours=1)) is None


def test_imported_marketplace_orders_do_not_open_the_window() -> None:
    tmall = Event("m", "purchase", T0, {"amount_fen": 100, "channel": "tmall"})
    plain = Event("m", "purchase", T0, {"amount_fen": 100})
    paid = Event("m", "purchase", T0, {"amount_fen": 100, "channel": "wechatpay"})
    assert not _open(tmall)
    assert not _open(plain)
    assert _open(paid)
    assert OA_CUSTOM_WINDOW_2021.check([tmall], [], T0 + dt.timedelta(hours=1)) is not None


def test_staff_messages_and_wecom_conversations_do_not_open_it() -> None:
    staff = Event("m", "message", T0, {"channel": "wecom", "staff": "s", "direction": "out"})
    customer_on_wecom = Event("m", "message", T0, {"channel": "wecom", "direction": "in"})
    follower = Event("m", "message", T0, {"msgtype": "text"})
    assert not _open(staff)
    assert not _open(customer_on_wecom)
    assert _open(follower)
