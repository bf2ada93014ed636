"""The journey of the crash test (shared by the test and its worker processes)."""

from __future__ import annotations

from membermkt.core.journeys import EventTrigger, Goal, Journey, Send, Wait


def crash_journey() -> Journey:
    """welcome → wait 3 days → coupon, unless the member purchased (the goal)."""
    return Journey(
        id="crash-welcome",
        version=1,
        trigger=EventTrigger("follow"),
        steps=[
            Send("welcome", "sms.example", {"default": {"text": "welcome"}}, next="wait"),
            Wait("wait", 3 * 86400, next="coupon"),
            Send("coupon", "sms.example", {"default": {"text": "coupon 10 off"}}),
        ],
        goal=Goal("purchase"),
    )
