"""WeChat official account (service account) adapter: callbacks, API client, channels.

* Callbacks (sans-I/O): :class:`MessageCrypto`, :func:`parse_message`, the passive-reply
  builders in :mod:`~membermkt.channels.wechat.replies`, and the framework-agnostic
  :class:`CallbackHandler` (mount it with :mod:`membermkt.contrib`).
* API: :class:`OfficialAccount` / :class:`AsyncOfficialAccount`.
* Channels: ``wechat.mass``, ``wechat.template``, ``wechat.custom``.
"""

from membermkt.channels.wechat.channel import (
    AsyncWeChatCustomChannel,
    AsyncWeChatMassChannel,
    AsyncWeChatTemplateChannel,
    WeChatCustomChannel,
    WeChatMassChannel,
    WeChatTemplateChannel,
)
from membermkt.channels.wechat.client import AsyncOfficialAccount, OfficialAccount
from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.enrich import FollowerEnricher
from membermkt.channels.wechat.handler import CallbackHandler, Endpoint, Incoming, events_for
from membermkt.channels.wechat.messages import parse_message
from membermkt.channels.wechat.replies import Article, news_reply, text_reply
from membermkt.channels.wechat.sync import FollowerSyncReport, sync_followers

__all__ = [
    "Article",
    "AsyncOfficialAccount",
    "AsyncWeChatCustomChannel",
    "AsyncWeChatMassChannel",
    "AsyncWeChatTemplateChannel",
    "CallbackHandler",
    "Endpoint",
    "FollowerEnricher",
    "FollowerSyncReport",
    "Incoming",
    "MessageCrypto",
    "OfficialAccount",
    "WeChatCustomChannel",
    "WeChatMassChannel",
    "WeChatTemplateChannel",
    "events_for",
    "news_reply",
    "parse_message",
    "sync_followers",
    "text_reply",
]
