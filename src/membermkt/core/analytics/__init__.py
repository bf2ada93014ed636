"""Analytics over members and their behaviour — pure computations (stdlib + attrs).

Every function reads a :data:`History` (``(member, events)`` pairs) or plain events, takes
``as_of`` explicitly and returns a frozen result with a :class:`Table` face and a
``_repr_html_``. Store-backed runners that push the work into SQL, and the notebook bridge
(``to_pandas()``, ``plot()``), live in :mod:`membermkt.analytics`.

==================  =============================================================
RFM                 :func:`rfm`, :func:`score_rfm`, :class:`RFMGroup`
activity classes    :func:`activity` (a segment), :func:`activity_counts`
funnels             :class:`Funnel`, :func:`step`, :func:`funnel`
paths               :func:`paths`, :class:`PathConfig`
attribution         :func:`attribution`, :func:`campaign_lift`
cohorts             :func:`cohorts`
staff (WeCom)       :func:`staff_metrics`
next offers         :class:`OfferRule`, :func:`recommend`
==================  =============================================================
"""

from membermkt.core.analytics._common import UNKNOWN, History, Table
from membermkt.core.analytics.activity import (
    ACTIVITY_CLASSES,
    ActivityResult,
    ActivityWindows,
    activity,
    activity_class,
    activity_counts,
)
from membermkt.core.analytics.attribution import (
    ArmStats,
    AttributionResult,
    AttributionRow,
    LiftResult,
    attribution,
    campaign_lift,
    lift_from_conversions,
)
from membermkt.core.analytics.cohorts import CohortResult, CohortRow, cohorts, period_start
from membermkt.core.analytics.funnels import (
    ACQUISITION_FUNNEL,
    Funnel,
    FunnelResult,
    FunnelStep,
    funnel,
    funnel_times,
    step,
)
from membermkt.core.analytics.offers import (
    OfferResult,
    OfferRule,
    affinity_offer,
    category_affinity,
    membership_offer,
    offers_from_selections,
    recommend,
    trial_offer,
)
from membermkt.core.analytics.paths import (
    DwellStats,
    PathConfig,
    PathResult,
    dwell_stats,
    page_node,
    paths,
)
from membermkt.core.analytics.rfm import (
    DEFAULT_RFM_GROUPS,
    RFMGroup,
    RFMInput,
    RFMResult,
    RFMScore,
    rfm,
    rfm_input,
    rfm_inputs,
    score_rfm,
    tag_names,
)
from membermkt.core.analytics.staff import StaffResult, StaffRow, staff_metrics

__all__ = [
    "ACQUISITION_FUNNEL",
    "ACTIVITY_CLASSES",
    "DEFAULT_RFM_GROUPS",
    "UNKNOWN",
    "ActivityResult",
    "ActivityWindows",
    "ArmStats",
    "AttributionResult",
    "AttributionRow",
    "CohortResult",
    "CohortRow",
    "DwellStats",
    "Funnel",
    "FunnelResult",
    "FunnelStep",
    "History",
    "LiftResult",
    "OfferResult",
    "OfferRule",
    "PathConfig",
    "PathResult",
    "RFMGroup",
    "RFMInput",
    "RFMResult",
    "RFMScore",
    "StaffResult",
    "StaffRow",
    "Table",
    "activity",
    "activity_class",
    "activity_counts",
    "affinity_offer",
    "attribution",
    "campaign_lift",
    "category_affinity",
    "cohorts",
    "dwell_stats",
    "funnel",
    "funnel_times",
    "lift_from_conversions",
    "membership_offer",
    "offers_from_selections",
    "page_node",
    "paths",
    "period_start",
    "recommend",
    "rfm",
    "rfm_input",
    "rfm_inputs",
    "score_rfm",
    "staff_metrics",
    "step",
    "tag_names",
    "trial_offer",
]
