"""The hand-off policy of a campaign: re-check each delivery against the member's current
state, the clock and the ledger's history right before it is handed to the channel.

Use it through :meth:`membermkt.engine.runner.CampaignRunner.for_campaign`, or pass
``policy=CampaignPolicy(campaign, store)`` to :class:`~membermkt.engine.runner.CampaignRunner`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from membermkt.core.campaigns import Campaign, handoff_skip
from membermkt.core.delivery import DeliveryRecord
from membermkt.core.ports import LedgerHistory, MemberStore
from membermkt.core.quotas import HistoryLike, PastSend, history_lookup
from membermkt.errors import UsageError

__all__ = ["CampaignPolicy", "ledger_history"]

LOOKBACK = dt.timedelta(days=400)
"""How far back the ledger is read for caps (the longest calendar period is a month; a
rolling cap longer than this needs an explicit ``history``)."""


def ledger_history(
    ledger: LedgerHistory,
    member_ids: Sequence[str],
    at: dt.datetime,
    *,
    exclude_campaign: str | None = None,
    include_planned: bool = False,
) -> Mapping[str, Sequence[PastSend]]:
    """Past sends of these members from every campaign in the ledger (one query per batch),
    in-doubt ones counted.

    Raises:
        UsageError: for a naive ``at``.
        StoreError: when the ledger fails.
    """
    return ledger.past_sends(
        member_ids,
        since=at - LOOKBACK,
        exclude_campaign=exclude_campaign,
        include_planned=include_planned,
    )


class CampaignPolicy:
    """:class:`~membermkt.engine.runner.HandOffPolicy` of one campaign.

    Args:
        campaign: the campaign.
        members: where members are read (one ``get_members`` per batch).
        history: past sends for the caps; default: the ledger (``members`` when it offers
            ``past_sends``), every campaign counted, in-doubt deliveries included.

    Raises:
        UsageError: when ``members`` cannot read members, or no history source exists while
            the campaign has caps.
    """

    def __init__(
        self, campaign: Campaign, members: MemberStore, *, history: HistoryLike = None
    ) -> None:
        if not hasattr(members, "get_members"):
            raise UsageError(f"{members!r} cannot read members (needs get_members)")
        self.campaign = campaign
        self.members = members
        self._history = history
        self._ledger = members if history is None and isinstance(members, LedgerHistory) else None
        if (
            self._ledger is None
            and history is None
            and (campaign.caps or campaign.platform_rules.caps)
        ):
            raise UsageError(
                f"campaign {campaign.id!r} has caps but {members!r} keeps no history; pass history="
            )

    def __repr__(self) -> str:
        return f"CampaignPolicy({self.campaign.id!r})"

    def check(self, records: Sequence[DeliveryRecord], now: dt.datetime) -> dict[str, str]:
        """Skip reasons (``"quiet_hours"``, ``"no_consent"``, ``"frequency_cap:<cap>"``, ...)
        by delivery key, for the deliveries that no longer qualify at ``now``."""
        ids = list(dict.fromkeys(r.delivery.member_id for r in records))
        found = self.members.get_members(ids)
        if self._ledger is not None:
            sends: Mapping[str, Sequence[PastSend]] = ledger_history(
                self._ledger, ids, now, exclude_campaign=self.campaign.id
            )
            lookup = history_lookup(sends)
        else:
            lookup = history_lookup(self._history)
        out: dict[str, str] = {}
        for r in records:
            d = r.delivery
            why = handoff_skip(
                self.campaign, found.get(d.member_id), d.address, lookup(d.member_id), now
            )
            if why is not None:
                reason, detail = why
                out[r.key] = f"{reason.value}:{detail}" if detail else reason.value
        return out
