"""An in-process emulator of the WeChat official-account API, with state.

Use it as an httpx transport (:meth:`WeChatEmulator.transport`) for the clients, or serve it
on a loopback port (:meth:`WeChatEmulator.serve`) for multi-process tests and benchmarks::

    emu = WeChatEmulator(seed=1)
    acct = emu.add_account("wx123", "secret")
    acct.add_followers(["o1", "o2"])
    client = OfficialAccount("wx123", "secret", transport=emu.transport())

It refuses what WeChat refuses, with WeChat's errcodes (reference §1): tokens expire and
rotate (stable: same token while valid, rotation ``token_overlap`` seconds before expiry;
classic: each fetch kills the previous token ``token_overlap`` seconds later); follower
lists page by 10,000; tags keep their limits (100 per account, 20 per user, 50 per batch,
reserved ids 0–2); mass sends need 2..10,000 openids, respect 4 mass messages per user per
calendar month (Beijing time) and de-duplicate ``clientmsgid`` for 24 hours (45065 with the
first ``msg_id``); template sends need a registered template and a follower; customer-service
messages need the 48-hour window opened by the follower's last message (5 messages) or the
1-minute window of a click/follow/scan (3 messages); API call limits answer 45009.

Faults (:attr:`WeChatEmulator.faults`, seeded, switchable at runtime): ``busy`` (-1),
``throttle`` (45009), ``token_invalidate`` (the presented token dies: 40001), ``http5xx``
(502), ``timeout`` (the call takes effect, the answer is lost), ``drop`` (the connection
drops before the call arrives).

What each follower received is recorded in :attr:`WeChatEmulator.receipts` (and counted per
(appid, openid, kind, content) so duplicates are found in O(1) per receipt).

Where the reference does not give an errcode, the emulator's choice is marked in comments.
"""

from membermkt.testing.emulator.wechat._emulator import WeChatEmulator
from membermkt.testing.emulator.wechat._messaging import (
    BEIJING,
    CLIENTMSGID_WINDOW,
    EVENT_WINDOW,
    EVENT_WINDOW_QUOTA,
    MASS_PER_USER_PER_MONTH,
    MSG_WINDOW,
    MSG_WINDOW_QUOTA,
)
from membermkt.testing.emulator.wechat._model import (
    EMULATOR_LIMITS,
    FAULTS,
    Account,
    Follower,
    Push,
    Receipt,
)

__all__ = [
    "BEIJING",
    "CLIENTMSGID_WINDOW",
    "EMULATOR_LIMITS",
    "EVENT_WINDOW",
    "EVENT_WINDOW_QUOTA",
    "FAULTS",
    "MASS_PER_USER_PER_MONTH",
    "MSG_WINDOW",
    "MSG_WINDOW_QUOTA",
    "Account",
    "Follower",
    "Push",
    "Receipt",
    "WeChatEmulator",
]
