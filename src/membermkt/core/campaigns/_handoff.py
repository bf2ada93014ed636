"""The hand-off check: does a planned delivery still qualify right before it is handed to
the channel? (pure; DESIGN §4.1 "policy is evaluated twice").

The plan decided with the facts of ``as_of``; by the time the runner reaches a delivery the
member may have opted out or unfollowed, quiet hours may have begun in the member's zone,
the schedule may have ended and other campaigns may have used the frequency caps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from membermkt.core.campaigns._model import Campaign, SkipReason
from membermkt.core.members import Member
from membermkt.core.quotas import PastSend
from membermkt.errors import UsageError


def handoff_skip(
    campaign: Campaign,
    member: Member | None,
    address: str,
    sends: Sequence[PastSend],
    now: dt.datetime,
) -> tuple[SkipReason, str | None] | None:
    """Why the delivery to ``member`` at ``address`` no longer qualifies at ``now`` (``None``:
    it still does).

    Checks, in order: the member still exists, the schedule has not ended, consent, the
    subscription / contact status the platform requires, the address is still the member's,
    quiet hours (member's zone), the campaign's frequency caps and the platform's receive
    caps over ``sends`` (every other send that was or may have been delivered — in-doubt
    ones included).

    Raises:
        UsageError: for a naive ``now``.
    """
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise UsageError(f"handoff_skip(now=...) must be timezone-aware, got {now!r}")
    if member is None:
        return SkipReason.NO_ADDRESS, "member no longer exists"
    channel = campaign.channel
    rules = campaign.platform_rules
    schedule = campaign.schedule
    if schedule is not None and schedule.end is not None and now >= schedule.end:
        return SkipReason.OUTSIDE_SCHEDULE, "schedule ended"
    if not member.consent.allows(channel):
        return SkipReason.NO_CONSENT, None
    if rules.requires == "subscribed" and member.state.subscribed is False:
        return SkipReason.UNSUBSCRIBED, None
    if rules.requires == "wecom_contact" and member.state.wecom_contact is False:
        return SkipReason.UNSUBSCRIBED, "not a contact"
    ident = member.identity(campaign.address_kind, campaign.address_namespace)
    if ident is None or ident.value != address:
        return SkipReason.NO_ADDRESS, "address changed"
    if campaign.quiet_hours is not None and campaign.quiet_hours.contains(now, member):
        return SkipReason.QUIET_HOURS, None
    refused = next((c for c in campaign.caps if not c.allows(sends, now, channel)), None)
    if refused is not None:
        return SkipReason.FREQUENCY_CAP, refused.label
    refused = next((c for c in rules.caps if not c.allows(sends, now, channel)), None)
    if refused is not None:
        return SkipReason.PLATFORM_QUOTA, refused.label
    return None
