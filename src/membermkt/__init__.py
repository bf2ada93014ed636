"""membermkt — member marketing for the WeChat ecosystem, as a library.

The public face re-exports the core vocabulary::

    from membermkt import Member, Profile, Event, Identity
    from membermkt.segments import attr, tag, did

Adapters live in subpackages (``membermkt.stores``, ``membermkt.channels.wechat``,
``membermkt.channels.wecom``, ``membermkt.payouts.wechatpay``), use cases in
``membermkt.engine``, and the test kit (emulators, strategies) in ``membermkt.testing``.
"""

from membermkt._version import __version__
from membermkt.core.events import Event, apply, fold
from membermkt.core.identity import Identity, IdentityKind, phone_digest
from membermkt.core.members import Consent, Member, MemberState, Profile, PurchaseStats
from membermkt.core.segments import Segment
from membermkt.core.tags import Tag, TagRule

__all__ = [
    "Consent",
    "Event",
    "Identity",
    "IdentityKind",
    "Member",
    "MemberState",
    "Profile",
    "PurchaseStats",
    "Segment",
    "Tag",
    "TagRule",
    "__version__",
    "apply",
    "fold",
    "phone_digest",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _name != "__version__":
        _obj.__module__ = "membermkt"
del _name, _obj
