"""Official-account API: one module per family, each a set of pure ``build → ApiCall``
functions and frozen response models. The clients run them (``client.call(api.…)``)."""

from membermkt.channels.wechat.api import menu, messaging, qrcode, tags, token, users
from membermkt.channels.wechat.api._call import ApiCall, decode_response

__all__ = ["ApiCall", "decode_response", "menu", "messaging", "qrcode", "tags", "token", "users"]
