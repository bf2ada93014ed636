"""Counting a plan: per-variant deliveries and skips by reason."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping

import attrs

from membermkt.core.campaigns._model import PlanItem, SkipReason
from membermkt.core.delivery import Delivery


@attrs.frozen(slots=True, kw_only=True)
class PlanSummary:
    """Counts of a plan, per variant.

    Attributes:
        campaign_id: the campaign.
        audience: audience members seen (deliveries + skips).
        deliveries: variant → planned deliveries.
        skipped: variant (``"-"`` before assignment, ``"holdout"``) → reason → count.
        holdout_ids: the holdout members' ids, when collected (for lift).
        as_of: the planning time, when known (start of the holdout's attribution window).
    """

    campaign_id: str
    audience: int
    deliveries: Mapping[str, int]
    skipped: Mapping[str, Mapping[str, int]]
    holdout_ids: frozenset[str] = frozenset()
    as_of: dt.datetime | None = None

    @property
    def total_deliveries(self) -> int:
        return sum(self.deliveries.values())

    def skipped_by_reason(self) -> dict[str, int]:
        """Skips per reason, over all variants."""
        out: Counter[str] = Counter()
        for per in self.skipped.values():
            out.update(per)
        return dict(out)


class PlanTally:
    """A running count of plan items (feed it while streaming; O(1) memory unless holdout ids
    are kept)."""

    def __init__(
        self,
        campaign_id: str,
        *,
        keep_holdout_ids: bool = False,
        as_of: dt.datetime | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        self.as_of = as_of
        self.audience = 0
        self.deliveries: Counter[str] = Counter()
        self.skipped: dict[str, Counter[str]] = {}
        self._keep = keep_holdout_ids
        self._holdout: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"<PlanTally {self.campaign_id!r} audience={self.audience} "
            f"deliveries={sum(self.deliveries.values())}>"
        )

    def add(self, item: PlanItem) -> PlanItem:
        """Count ``item`` and return it (so it can wrap a stream)."""
        self.audience += 1
        if isinstance(item, Delivery):
            self.deliveries[item.variant] += 1
        else:
            self.skipped.setdefault(item.variant or "-", Counter())[item.reason.value] += 1
            if self._keep and item.reason is SkipReason.HOLDOUT:
                self._holdout.add(item.member_id)
        return item

    def summary(self) -> PlanSummary:
        """The counts so far."""
        return PlanSummary(
            campaign_id=self.campaign_id,
            audience=self.audience,
            deliveries=dict(self.deliveries),
            skipped={k: dict(v) for k, v in self.skipped.items()},
            holdout_ids=frozenset(self._holdout),
            as_of=self.as_of,
        )


def summarize(
    campaign_id: str,
    items: Iterable[PlanItem],
    *,
    keep_holdout_ids: bool = False,
    as_of: dt.datetime | None = None,
) -> PlanSummary:
    """Consume a plan stream and count it."""
    tally = PlanTally(campaign_id, keep_holdout_ids=keep_holdout_ids, as_of=as_of)
    for item in items:
        tally.add(item)
    return tally.summary()
