"""Platform quotas and frequency caps as data, so a plan never asks the platform for what it
will refuse (pure).

Every number below comes from ``/work/shared/reference/wechat-platform.md`` (cited per rule as
"ref §x.y"). Tencent changes quotas over time, and the reference records conflicts between
document versions; each such rule is a value you can replace (``ChannelRules`` is frozen:
``attrs.evolve(rules, caps=...)``), with the current document as the default and the older
rule offered as a named constant.

Vocabulary:

* :class:`Cap` — at most ``limit`` messages received per member per period (a calendar
  day/week/month in a time zone, or a rolling ``timedelta``), counted over some channels.
  Campaign frequency caps and platform receive caps are the same thing.
* :class:`InteractionWindow` — the customer-service window: sending is allowed only within a
  window opened by the member's own action, with a message budget per trigger.
* :class:`ChannelRules` — everything the platform enforces for one channel: caps, window,
  batch limits, content limits, who can receive.
* :class:`PastSend` — one message a member received (or may have: unknown counts too), the
  history that caps are evaluated against.
"""

from __future__ import annotations

from membermkt.core.quotas._batches import balanced_batch, balanced_batches, next_daily_reset
from membermkt.core.quotas._model import (
    DEFAULT_TZ,
    Cap,
    ChannelRules,
    HistoryLike,
    InteractionWindow,
    PastSend,
    WindowTrigger,
    history_lookup,
    zone,
)
from membermkt.core.quotas._platform import (
    DEFAULT_RULES,
    OA_CUSTOM_WINDOW,
    OA_CUSTOM_WINDOW_2021,
    OA_MASS_MONTHLY,
    WECOM_GROUP_DAILY,
    WECOM_GROUP_DAYS_IN_MONTH,
    WECOM_GROUP_LEGACY_MONTHLY,
    WECOM_GROUP_WEEKLY,
    WECOM_MASS_DAILY,
    WECOM_MASS_DAYS_IN_MONTH,
    WECOM_MASS_LEGACY_MONTHLY,
    WECOM_MASS_WEEKLY,
)

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_TZ",
    "OA_CUSTOM_WINDOW",
    "OA_CUSTOM_WINDOW_2021",
    "OA_MASS_MONTHLY",
    "WECOM_GROUP_DAILY",
    "WECOM_GROUP_DAYS_IN_MONTH",
    "WECOM_GROUP_LEGACY_MONTHLY",
    "WECOM_GROUP_WEEKLY",
    "WECOM_MASS_DAILY",
    "WECOM_MASS_DAYS_IN_MONTH",
    "WECOM_MASS_LEGACY_MONTHLY",
    "WECOM_MASS_WEEKLY",
    "Cap",
    "ChannelRules",
    "HistoryLike",
    "InteractionWindow",
    "PastSend",
    "WindowTrigger",
    "balanced_batch",
    "balanced_batches",
    "history_lookup",
    "next_daily_reset",
    "zone",
]
