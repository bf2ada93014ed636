"""Official-account API clients: :class:`OfficialAccount` (sync) and
:class:`AsyncOfficialAccount` (async).

Both are thin drivers over the same sans-I/O pieces — :mod:`~membermkt.channels.wechat.api`
(requests and models), :mod:`~membermkt.channels.wechat.flows` (token replay, chunking,
paging, tag sync) and :mod:`membermkt.wire` (errcode table, retry decision, call budgets) —
so they behave identically. Each method exists on both with the same name and arguments.
"""

from membermkt.channels.wechat.client._async import AsyncOfficialAccount
from membermkt.channels.wechat.client._base import DEFAULT_BUDGETS
from membermkt.channels.wechat.client._sync import OfficialAccount

__all__ = ["DEFAULT_BUDGETS", "AsyncOfficialAccount", "OfficialAccount"]
