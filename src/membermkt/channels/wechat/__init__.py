"""WeChat official account (service account) adapter: callbacks, API client, channels."""

from membermkt.channels.wechat.crypto import MessageCrypto
from membermkt.channels.wechat.messages import parse_message

__all__ = ["MessageCrypto", "parse_message"]
