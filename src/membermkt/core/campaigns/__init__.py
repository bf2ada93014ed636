"""Campaigns: who gets which message, when, and who is skipped and why (pure).

A :class:`Campaign` names an audience (a segment), a channel, content per A/B variant (with
safe personalisation, :mod:`membermkt.core.templating`), an optional holdout, frequency caps,
quiet hours and a schedule. :func:`plan` turns it into a stream of :class:`Delivery` and
:class:`Skip` values — one per audience member, never both — without I/O and in memory
independent of the audience size; :func:`validate` finds what the platform would refuse
before anything runs.

Order of decisions per audience member (the first that applies wins)::

    schedule → consent → subscription/contact → address → quiet hours → frequency caps →
    platform quota / interaction window → holdout → variant → rendering → delivery

Holdout and variant come *after* eligibility, so the holdout group is comparable with the
members who were sent to (lift is measured among eligible members). Both are deterministic
keyed hashes of the member id (:func:`membermkt.core.segments.sample_bucket`) with
campaign-specific salts: re-planning gives the same split.
"""

from membermkt.core.campaigns._handoff import handoff_skip
from membermkt.core.campaigns._model import Campaign, PlanItem, Skip, SkipReason, delivery_key
from membermkt.core.campaigns._plan import plan
from membermkt.core.campaigns._summary import PlanSummary, PlanTally, summarize
from membermkt.core.campaigns._timing import QuietHours, Schedule
from membermkt.core.campaigns._validate import Problem, check, check_budget, plan_calls, validate
from membermkt.core.campaigns._variants import HOLDOUT, Variant, assign

__all__ = [
    "HOLDOUT",
    "Campaign",
    "PlanItem",
    "PlanSummary",
    "PlanTally",
    "Problem",
    "QuietHours",
    "Schedule",
    "Skip",
    "SkipReason",
    "Variant",
    "assign",
    "check",
    "check_budget",
    "delivery_key",
    "handoff_skip",
    "plan",
    "plan_calls",
    "summarize",
    "validate",
]
