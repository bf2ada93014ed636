"""An example membermkt channel plugin: SMS through an HTTP gateway."""

from membermkt_sms.channel import AsyncSmsChannel, SmsChannel
from membermkt_sms.gateway import SmsGateway

__all__ = ["AsyncSmsChannel", "SmsChannel", "SmsGateway"]
