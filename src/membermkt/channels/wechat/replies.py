"""Passive replies: the XML a callback may answer with (pure builders).

A passive reply goes back in the HTTP response to a push, within WeChat's 5 s. Its
``ToUserName`` is the follower and its ``FromUserName`` the account. In safe mode wrap it
with :meth:`~membermkt.channels.wechat.crypto.MessageCrypto.encrypt`.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from membermkt.channels.wechat.messages import BaseMessage
from membermkt.errors import UsageError

__all__ = ["SUCCESS", "Article", "news_reply", "text_reply"]

SUCCESS = "success"
"""The body that tells WeChat "received, no reply" (an empty body works too)."""

MAX_NEWS_ARTICLES = 8
"""Most articles accepted in one passive news reply. The reference does not state the current
platform limit (older platform docs allowed 8); one article is always safe."""


def cdata(value: str) -> str:
    """``value`` as a CDATA section (``]]>`` inside is split safely)."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@attrs.frozen(slots=True, kw_only=True)
class Article:
    """One article of a news reply."""

    title: str
    description: str = ""
    picurl: str = ""
    url: str = ""


def _head(to: BaseMessage, create_time: int, msg_type: str) -> str:
    if not isinstance(create_time, int) or create_time < 0:
        raise UsageError(f"create_time must be a non-negative int (unix s), got {create_time!r}")
    return (
        f"<ToUserName>{cdata(to.openid)}</ToUserName>"
        f"<FromUserName>{cdata(to.to_user)}</FromUserName>"
        f"<CreateTime>{create_time}</CreateTime>"
        f"<MsgType>{cdata(msg_type)}</MsgType>"
    )


def text_reply(to: BaseMessage, content: str, *, create_time: int) -> str:
    """A passive text reply to the push ``to``.

    Args:
        to: the message/event being answered.
        content: the text.
        create_time: the reply's ``CreateTime`` (unix seconds; pass your clock's value).

    Raises:
        UsageError: on an empty content or a bad ``create_time``.
    """
    if not isinstance(content, str) or not content:
        raise UsageError("text_reply: content must be a non-empty str")
    return f"<xml>{_head(to, create_time, 'text')}<Content>{cdata(content)}</Content></xml>"


def news_reply(to: BaseMessage, articles: Sequence[Article], *, create_time: int) -> str:
    """A passive news (articles) reply.

    Raises:
        UsageError: when there are no articles or more than :data:`MAX_NEWS_ARTICLES`.
    """
    if not 1 <= len(articles) <= MAX_NEWS_ARTICLES:
        raise UsageError(f"news_reply needs 1..{MAX_NEWS_ARTICLES} articles, got {len(articles)}")
    items = "".join(
        f"<item><Title>{cdata(a.title)}</Title><Description>{cdata(a.description)}</Description>"
        f"<PicUrl>{cdata(a.picurl)}</PicUrl><Url>{cdata(a.url)}</Url></item>"
        for a in articles
    )
    return (
        f"<xml>{_head(to, create_time, 'news')}<ArticleCount>{len(articles)}</ArticleCount>"
        f"<Articles>{items}</Articles></xml>"
    )
