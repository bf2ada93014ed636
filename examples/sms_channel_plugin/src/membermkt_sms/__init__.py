"""An example membermkt channel plugin: SMS through an HTTP gateway."""

from membermkt_sms.channel import AsyncSmsChannel, SmsChannel
from membermkt_sms.gateway import SmsGateway
from membermkt_sms.numbers import Number, StoreNumbers

__all__ = ["AsyncSmsChannel", "Number", "SmsChannel", "SmsGateway", "StoreNumbers"]
