"""Durable journey execution (see :mod:`membermkt.engine.journeys._engine` for the model),
simulation and reports."""

from __future__ import annotations

from membermkt.engine.journeys._channels import MEMBER_ADDRESS, CouponChannel, TagChannel
from membermkt.engine.journeys._engine import (
    JourneyEngine,
    TickResult,
    campaign_id_for,
    owner_staff,
    replay_epochs,
    sop_completion,
)
from membermkt.engine.journeys._policy import JourneyPolicy, journey_send_rules
from membermkt.engine.journeys._progress import (
    EntryRow,
    Epoch,
    InMemoryJourneyProgress,
    JourneyProgress,
    MemberProgress,
)
from membermkt.engine.journeys._sql import SqlJourneyProgress

__all__ = [
    "MEMBER_ADDRESS",
    "CouponChannel",
    "EntryRow",
    "Epoch",
    "InMemoryJourneyProgress",
    "JourneyEngine",
    "JourneyPolicy",
    "JourneyProgress",
    "MemberProgress",
    "SqlJourneyProgress",
    "TagChannel",
    "TickResult",
    "campaign_id_for",
    "journey_send_rules",
    "owner_staff",
    "replay_epochs",
    "sop_completion",
]
