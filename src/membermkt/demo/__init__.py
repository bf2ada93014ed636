"""The whole member-marketing story on one machine: no accounts, no servers.

``membermkt demo`` (and :func:`run_demo`) plays it on an embedded SQLite database and the
in-process platform emulators:

1. **Set-up** — an official account, a WeChat Pay merchant and a WeCom corp are emulated; the
   account gets one scene QR code per acquisition channel (``parcel``, ``store``,
   ``platform``) and a menu.
2. **Acquisition** — synthetic buyers (:mod:`membermkt.testing.synthetic`) scan a scene QR
   code and follow: each follow and the first menu click arrive as signed, encrypted
   callbacks, go through :class:`~membermkt.channels.wechat.CallbackHandler` into the store,
   and new followers get a passive welcome reply. WeCom contacts arrive through channel
   codes (contact ways whose ``state`` names the channel). The rest of each buyer's history
   (page views, messages, orders) is imported in bulk, as a merchant back-fills from order
   exports.
3. **Red packets** — buyers who claim type their phone number and order id; the claim is
   verified against their orders and paid through the WeChat Pay emulator by
   :class:`~membermkt.engine.redpackets.RedPacketService` (budgets reserved atomically, bill
   numbers derived from the business key).
4. **Campaign** — an A/B mass send to subscribed buyers with a 10 % holdout: simulated
   first, then written to the delivery ledger and sent through the emulator by
   :class:`~membermkt.engine.campaigns.CampaignRunner`; purchases in the week after the
   send give conversions and lift against the holdout.
5. **Member programme** — the best-qualified buyers (explainable scores) are invited and
   join through the gift form (a trial bottle for their phone, with consent); a
   :class:`~membermkt.core.membership.TierProgram` assigns tiers; member durian buyers get
   a durian coupon through WeChat Pay's favor API (a stock of 25: the rest are refused, none
   twice); gold members get a birthday privilege; ``members.md`` (and
   ``tier-migrations.svg``) report members by tier, tier migrations, coupons and cohorts.
6. **Tags and segments** — rule tags (``vip``, ``new``, ``lapsed``), RFM group tags and a
   few named segments, as of a week after the campaign.
7. **Report** — the analytics bundle (funnel, attribution, RFM, paths, cohorts, …) plus the
   campaign and red-packet sections, as one self-contained HTML file.

Everything is deterministic for a given ``members``/``seed``, and every step is idempotent:
events are de-duplicated by key, claims and deliveries live in ledgers in the database. A
second run over the same working directory resumes: it skips the finished import, sends
nothing twice and pays nothing twice, and rewrites the report.
"""

from __future__ import annotations

from membermkt.demo._acquisition import _SEPARATE, LIVE_DAYS, _acquire  # noqa: F401
from membermkt.demo._base import (  # noqa: F401
    API_KEY,
    APPID,
    CAMPAIGN_ID,
    CHANNELS,
    CONVERSION_RATES,
    CONVERSION_WINDOW,
    CORPID,
    DB_FILE,
    DEFAULT_MEMBERS,
    DEFAULT_SEED,
    DEFAULT_WORKDIR,
    MCH_ID,
    PHONE_KEY_FILE,
    REPORT_FILE,
    RULE_ID,
    SECRET,
    STATE_FILE,
    WECOM_SECRET,
    Echo,
    StoryClock,
    _bar,
    _external_userid,
    _hash_unit,
    _openid,
    _parcel_order,
    _phone,
    _Stages,
)
from membermkt.demo._campaigns import _campaign, _CampaignOutcome, audience_of, demo_campaign  # noqa: F401
from membermkt.demo._driver import run_demo
from membermkt.demo._redpackets import _red_packets  # noqa: F401
from membermkt.demo._report import _analytics, _redpacket_table, _write_report  # noqa: F401
from membermkt.demo._result import DemoResult, _pct, format_summary  # noqa: F401
from membermkt.demo._segments import _tags_and_segments, demo_segments  # noqa: F401
from membermkt.demo._state import _load_state, _save_state, table_counts  # noqa: F401
from membermkt.demo._world import _World  # noqa: F401

__all__ = [
    "API_KEY",
    "APPID",
    "CAMPAIGN_ID",
    "CHANNELS",
    "CONVERSION_RATES",
    "CONVERSION_WINDOW",
    "CORPID",
    "DB_FILE",
    "DEFAULT_MEMBERS",
    "DEFAULT_SEED",
    "DEFAULT_WORKDIR",
    "LIVE_DAYS",
    "MCH_ID",
    "PHONE_KEY_FILE",
    "REPORT_FILE",
    "RULE_ID",
    "SECRET",
    "STATE_FILE",
    "WECOM_SECRET",
    "DemoResult",
    "Echo",
    "StoryClock",
    "audience_of",
    "demo_campaign",
    "demo_segments",
    "format_summary",
    "run_demo",
    "table_counts",
]
