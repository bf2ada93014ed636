"""Platform emulators: in-process fakes of the WeChat official-account API, WeCom customer
contact and WeChat Pay, exposed as httpx transports (and servable on a loopback port).

They enforce the platforms' rules with the platforms' error codes, keep a record of what was
sent or paid (so tests can count duplicates on the platform side), and inject faults from a
seed. Import the one you need::

    from membermkt.testing.emulator import WeChatEmulator, WeComEmulator, WeChatPayEmulator
"""

from membermkt.testing.emulator._base import CallCounter, FaultPlan, serve
from membermkt.testing.emulator.wechat import WeChatEmulator
from membermkt.testing.emulator.wechatpay import Fault, WeChatPayEmulator, make_test_credentials
from membermkt.testing.emulator.wecom import WeComEmulator

__all__ = [
    "CallCounter",
    "Fault",
    "FaultPlan",
    "WeChatEmulator",
    "WeChatPayEmulator",
    "WeComEmulator",
    "make_test_credentials",
    "serve",
]
