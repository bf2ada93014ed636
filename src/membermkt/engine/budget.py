"""Whether a plan fits the day's API budget of the channel's client, reported before sending.

The client's call budgets (e.g. :data:`membermkt.channels.wechat.client.DEFAULT_BUDGETS`:
100 mass calls a day) are read from ``channel.client.budgets``; the calls a plan needs are
counted as the runner makes them (:func:`~membermkt.core.campaigns.plan_calls`). A plan over
budget is not refused — the runner defers the rest to the next day (the platform's daily
reset) — so the problem means "this campaign spans days": split it, or accept that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from membermkt.core.campaigns import Campaign, PlanSummary, Problem, check_budget

__all__ = ["CHANNEL_APIS", "budget_problems", "daily_budget"]

CHANNEL_APIS: Mapping[str, str] = {
    "wechat.mass": "/cgi-bin/message/mass/send",
    "wechat.template": "/cgi-bin/message/template/send",
    "wechat.custom": "/cgi-bin/message/custom/send",
    "wecom.mass": "/cgi-bin/externalcontact/add_msg_template",
}
"""The API each built-in channel calls (a channel may name its own with an ``api``
attribute)."""


def daily_budget(channel: Any, now: dt.datetime) -> tuple[int | None, int]:
    """``(calls per day, calls used today)`` of the API ``channel`` calls, from its client's
    budgets (``channel.client.budgets``, a :class:`~membermkt.wire.budget.CallBudgets`);
    ``(None, 0)`` when no daily budget is known (a template send has none: its daily cap is
    not confirmed). "Used" counts this process's calls only."""
    api = getattr(channel, "api", None) or CHANNEL_APIS.get(str(getattr(channel, "name", "")))
    budgets = getattr(getattr(channel, "client", None), "budgets", None)
    if not isinstance(api, str) or budgets is None or not hasattr(budgets, "budgets"):
        return None, 0
    budget = budgets.budgets.get(api)
    if budget is None or budget.per_day is None:
        return None, 0
    used, _ = budgets.used(api, now.timestamp())
    return int(budget.per_day), int(used)


def budget_problems(
    campaign: Campaign, summary: PlanSummary, channel: Any, *, now: dt.datetime
) -> tuple[Problem, ...]:
    """The plan against the day's budget of ``channel``'s API (``()`` when it fits or no
    budget is known).

    Raises:
        UsageError: for a naive ``now``.
    """
    per_day, used = daily_budget(channel, now)
    caps = getattr(channel, "capabilities", None)
    return check_budget(
        summary,
        campaign.platform_rules,
        calls_per_day=per_day,
        used_today=used,
        max_batch_size=getattr(caps, "max_batch_size", None),
    )
