"""An in-process emulator of WeCom customer contact (企业微信 客户联系), with state.

Same style as :mod:`membermkt.testing.emulator.wechat`: an httpx transport
(:meth:`WeComEmulator.transport`) or a loopback server (:meth:`WeComEmulator.serve`), seeded
fault injection (:attr:`WeComEmulator.faults`), call and errcode counters::

    emu = WeComEmulator(seed=1)
    corp = emu.add_corp("ww123", "contact-secret")
    corp.add_staff("clerk1")
    way = corp.add_way(users=["clerk1"], state="store-12")   # or via the API
    push = corp.scan(way.config_id, "wmCustomer1")          # the add_external_contact push
    client = WeCom("ww123", "contact-secret", transport=emu.transport())

It refuses what WeCom refuses (reference §3): tokens per (corpid, secret) expire
(``token_ttl``); ≤ 3000 corp tags; contact-way ``state`` ≤ 30 characters and type 1 takes one
user; ``add_msg_template`` ≤ 10,000 customers, ≤ 9 attachments, text ≤ 4000 bytes; a mass
message sends nothing until each sender confirms (:meth:`Corp.confirm_mass`), and then each
customer's **receive cap** decides (status 3 when used up; the cap is configurable because
the reference lists a conflict — default the current doc's days-in-month per month). Group
mass messages (``chat_type=group``) need a ``sender`` and take ≤ 2000 ``chat_id_list``
groups, go to the sender (the groups' owner) for confirmation, and count the same receive
cap per customer group (:meth:`Corp.add_chat` sets groups up); the
welcome code is **single-use and valid for 20 s** (41051 afterwards, after the customer
started chatting, or on a second call); ``remind_groupmsg_send`` ≤ 3 per message per 24 h.

Faults: ``busy`` (-1), ``throttle`` (45009), ``concurrency`` (45033), ``token_invalidate``
(the presented token dies: 40014), ``http5xx`` (502), ``timeout`` (takes effect, answer
lost), ``drop`` (never arrives).

Where the reference gives no errcode, the emulator's choice is marked "emulator choice".
Callback pushes (:class:`~membermkt.testing.emulator.wechat.Push`) are encrypted with the
corp's callback credentials, receive id = corpid (reference §2.5).
"""

from __future__ import annotations

from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._emulator import WeComEmulator
from membermkt.testing.emulator.wecom._models import (
    EC,  # noqa: F401  (importable from here as before the split)
    FAULTS,
    MAX_CORP_TAGS,  # noqa: F401
    REMINDS_PER_DAY,  # noqa: F401
    WELCOME_WINDOW,
    Customer,
    GroupMassReceipt,
    MassReceipt,
    Relation,
    WelcomeReceipt,
)

__all__ = [
    "FAULTS",
    "WELCOME_WINDOW",
    "Corp",
    "Customer",
    "GroupMassReceipt",
    "MassReceipt",
    "Relation",
    "WeComEmulator",
    "WelcomeReceipt",
]
