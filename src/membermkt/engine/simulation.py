"""Simulation: the plan run over real data with no side effects — who would get what, who is
skipped and why, what it costs in API calls and quota, and what the platform (or the day's
API budget) would refuse. Import from :mod:`membermkt.engine.campaigns`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.campaigns import (
    Campaign,
    PlanSummary,
    PlanTally,
    Problem,
    Skip,
    check_budget,
    plan,
    validate,
)
from membermkt.core.delivery import ChannelCapabilities, Delivery
from membermkt.core.events import Event
from membermkt.core.members import Member
from membermkt.core.quotas import HistoryLike, balanced_batches
from membermkt.engine._html import html_table
from membermkt.engine._pandas import pandas

__all__ = ["Simulation", "simulate"]


@attrs.frozen(slots=True, kw_only=True)
class Simulation:
    """Who would get what, who is skipped and why, and what it costs — with no side effects.

    Attributes:
        campaign_id: the campaign.
        summary: counts per variant and skip reason.
        deliveries: the deliveries that would be made (up to ``keep``).
        skips: the skips (up to ``keep``).
        quota_cost: variant → {``"api_calls"``: platform calls, cap label: quota units}.
        batches: variant → the batch sizes the runner will hand to the channel (balanced:
            never a lone remainder), one platform call each on a batch channel.
        truncated: whether ``deliveries``/``skips`` were cut at ``keep``.
        problems: what the platform would refuse (:func:`~membermkt.core.campaigns.validate`)
            and, when a daily budget was given, a plan that needs more API calls than are
            left today (path ``"budget"``).
    """

    campaign_id: str
    summary: PlanSummary
    deliveries: tuple[Delivery, ...]
    skips: tuple[Skip, ...]
    quota_cost: Mapping[str, Mapping[str, int]]
    batches: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)
    truncated: bool = False
    problems: tuple[Problem, ...] = ()

    @property
    def api_calls(self) -> int:
        """Platform calls the runner will make for the whole plan."""
        return sum(per.get("api_calls", 0) for per in self.quota_cost.values())

    def rows(self) -> list[dict[str, Any]]:
        """One dict per audience member: member_id, variant, action, reason, detail, address."""
        out: list[dict[str, Any]] = [
            {
                "member_id": d.member_id,
                "variant": d.variant,
                "action": "deliver",
                "reason": None,
                "detail": None,
                "address": d.address,
            }
            for d in self.deliveries
        ]
        out.extend(
            {
                "member_id": s.member_id,
                "variant": s.variant,
                "action": "skip",
                "reason": s.reason.value,
                "detail": s.detail,
                "address": None,
            }
            for s in self.skips
        )
        return out

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (``pip install membermkt[pandas]``).

        Raises:
            UsageError: when pandas is not installed.
        """
        pd = pandas()
        return pd.DataFrame(
            self.rows(), columns=["member_id", "variant", "action", "reason", "detail", "address"]
        )

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<Simulation {self.campaign_id!r} audience={s.audience} "
            f"deliveries={dict(s.deliveries)} skipped={s.skipped_by_reason()}>"
        )

    def _repr_html_(self) -> str:
        s = self.summary
        variants = sorted(set(s.deliveries) | set(self.quota_cost))
        rows = [
            (
                v,
                s.deliveries.get(v, 0),
                ", ".join(f"{k}: {n}" for k, n in sorted(self.quota_cost.get(v, {}).items())),
            )
            for v in variants
        ]
        skipped = sorted(s.skipped_by_reason().items())
        return html_table(
            ["variant", "deliveries", "quota cost"], rows, f"Simulation of {self.campaign_id}"
        ) + html_table(["reason", "skipped"], skipped, "Skipped")


def simulate(
    campaign: Campaign,
    members: Iterable[Member | tuple[Member, Sequence[Event]]],
    history: HistoryLike,
    as_of: dt.datetime,
    *,
    capabilities: ChannelCapabilities | None = None,
    keep: int | None = None,
    calls_per_day: int | None = None,
    used_today: int = 0,
) -> Simulation:
    """Run the plan over real data without sending or writing anything.

    Args:
        campaign / members / history / as_of: as for :func:`~membermkt.core.campaigns.plan`.
        capabilities: the channel's batch limits, for the API-call cost and the batch
            sizes the runner hands off (default: the platform rules' batch size, else one
            call per delivery).
        keep: keep at most this many deliveries and skips each (``None``: all).
        calls_per_day: the daily budget of the API the channel calls (e.g. 100 for
            ``wechat.mass``; :func:`membermkt.engine.budget.daily_budget` reads it from a
            channel's client); a plan over it is reported in ``problems``.
        used_today: calls already made today against that budget.

    Raises:
        UsageError: for a negative ``used_today`` or a budget below 1.
    """
    tally = PlanTally(campaign.id, keep_holdout_ids=False, as_of=as_of)
    deliveries: list[Delivery] = []
    skips: list[Skip] = []
    truncated = False
    for item in plan(campaign, members, history, as_of):
        tally.add(item)
        target: list[Any] = deliveries if isinstance(item, Delivery) else skips
        if keep is None or len(target) < keep:
            target.append(item)
        else:
            truncated = True
    summary = tally.summary()
    rules = campaign.platform_rules
    max_batch = capabilities.max_batch_size if capabilities is not None else None
    if rules.max_batch_size is not None:
        max_batch = min(max_batch or rules.max_batch_size, rules.max_batch_size)
    cost: dict[str, dict[str, int]] = {}
    batches: dict[str, tuple[int, ...]] = {}
    per_delivery = rules.max_batch_size is None and capabilities is not None
    if per_delivery and capabilities is not None and not capabilities.idempotent:
        max_batch = 1  # the runner hands a non-idempotent per-delivery channel one at a time
    for variant, n in summary.deliveries.items():
        sizes = tuple(balanced_batches(n, max_batch or rules.max_batch_size or 1))
        batches[variant] = sizes
        # a batch API makes one call per batch; a per-delivery API one call per delivery
        per = {"api_calls": n if per_delivery else len(sizes)}
        for cap in rules.caps:
            per[cap.label] = n
        if rules.window is not None:
            per[rules.window.name] = n
        cost[variant] = per
    problems = validate(campaign, capabilities=capabilities) + check_budget(
        summary,
        rules,
        calls_per_day=calls_per_day,
        used_today=used_today,
        max_batch_size=capabilities.max_batch_size if capabilities is not None else None,
    )
    return Simulation(
        problems=problems,
        campaign_id=campaign.id,
        summary=summary,
        deliveries=tuple(deliveries),
        skips=tuple(skips),
        quota_cost=cost,
        batches=batches,
        truncated=truncated,
    )
