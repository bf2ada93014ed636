"""Official-account types — service account (服务号) and subscription account (订阅号) — and
the platform rules each one gets (pure).

The account type is part of an account's configuration
(``OfficialAccount(..., account_type=...)``, ``Campaign(account_type=...)``, the emulator's
``add_account(..., account_type=...)``). Only rules with a source are modelled:

Service account (the default; every rule in :data:`~membermkt.core.quotas.DEFAULT_RULES`):

* each follower receives at most 4 mass messages per calendar month; ``is_to_all`` at most
  1 a day and 4 a month; the mass API 100 calls a day (reference §1.4, §5);
* ``mass/send`` to openid lists and template messages are available.

Subscription account:

* ``mass/sendall`` succeeds **once a day** (to all, or to one tag; reference §1.4, §5);
* ``mass/send`` (openid lists) is for service accounts only (reference §1.4), so the
  ``wechat.mass`` channel (which sends openid lists) is unavailable; the platform answers
  48001 (api unauthorized, reference §1.10);
* **template messages are for service accounts only** (official "Template Messages" page:
  "Template messages are only used for Service Account … only authenticated service
  numbers can request and obtain permission"), so ``wechat.template`` is unavailable (48001);
* **no web authorization** (OAuth ``snsapi_base`` / ``snsapi_userinfo``): the official
  web-authorization page (open platform "网页应用授权登录", 适用账号) says it supports only
  verified service accounts — verified government and media accounts excepted — and
  official community answers say the same. A verified government or media subscription
  account should be configured as ``"service"`` for this reason.

**Not modelled (unconfirmed):** the customer-service window's counts for a subscription
account, whether the per-follower 4-a-month cap applies to subscription accounts (the
reference states it for service accounts), and unverified service accounts (the library
assumes a verified one) — the reference and the searched sources do not say.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from membermkt.core.quotas import DEFAULT_RULES, Cap, ChannelRules
from membermkt.errors import UsageError

__all__ = [
    "SERVICE_ONLY_APIS",
    "SUBSCRIPTION_MASS_DAILY",
    "SUBSCRIPTION_SENDALL_PER_DAY",
    "WEB_AUTHORIZATION_REFUSED",
    "AccountType",
    "account_rules",
    "account_type",
    "channel_rules",
]


class AccountType(enum.StrEnum):
    """The kind of official account."""

    SERVICE = "service"
    """服务号 (service account): the library's default."""
    SUBSCRIPTION = "subscription"
    """订阅号 (subscription account)."""


def account_type(value: Any) -> AccountType:
    """``value`` as an :class:`AccountType` (``"service"`` or ``"subscription"``).

    Raises:
        UsageError: for anything else.
    """
    try:
        return AccountType(value)
    except ValueError:
        kinds = ", ".join(repr(k.value) for k in AccountType)
        raise UsageError(f"unknown account type {value!r} (expected one of: {kinds})") from None


SUBSCRIPTION_SENDALL_PER_DAY: Final = 1
"""Successful ``mass/sendall`` calls a subscription account gets per day (ref §1.4, §5)."""

# rule: oa.account_type -- subscription: no mass/send, no template messages, sendall 1/day
SERVICE_ONLY_APIS: Final[Mapping[str, str]] = {
    "/cgi-bin/message/mass/send": (
        "mass/send to openid lists is for service accounts only (reference §1.4); a "
        "subscription account mass-sends with mass/sendall to all or one tag, once a day"
    ),
    "/cgi-bin/message/template/send": (
        "template messages are for service accounts only (official 'Template Messages' page)"
    ),
}
"""APIs a subscription account may not call (the platform answers 48001), with why."""

# rule: oa.account_type -- web authorization: verified service accounts only
WEB_AUTHORIZATION_REFUSED: Final = (
    "web authorization (OAuth snsapi_base / snsapi_userinfo) is for verified service accounts "
    "only (official web-authorization page; verified government and media accounts excepted: "
    "configure those as 'service')"
)
"""Why a subscription account cannot send members through OAuth web authorization."""

SUBSCRIPTION_MASS_DAILY: Final = Cap(
    limit=1,
    period="day",
    channels=frozenset({"wechat.mass"}),
    name="subscription mass 1/day",
    # ref §1.4: a subscription account's sendall succeeds once a day, so no follower can
    # receive more than one mass message a day
    source="wechat-platform.md §1.4, §5",
)

_UNAVAILABLE: Final = {
    "wechat.mass": SERVICE_ONLY_APIS["/cgi-bin/message/mass/send"],
    "wechat.template": SERVICE_ONLY_APIS["/cgi-bin/message/template/send"],
}


def _subscription_rules() -> dict[str, ChannelRules]:
    out = dict(DEFAULT_RULES)
    out["wechat.mass"] = attrs.evolve(
        DEFAULT_RULES["wechat.mass"],
        caps=(SUBSCRIPTION_MASS_DAILY,),
        unavailable=_UNAVAILABLE["wechat.mass"],
        source="wechat-platform.md §1.4, §5",
    )
    out["wechat.template"] = attrs.evolve(
        DEFAULT_RULES["wechat.template"], unavailable=_UNAVAILABLE["wechat.template"]
    )
    return out


_RULES: Final[Mapping[AccountType, Mapping[str, ChannelRules]]] = {
    AccountType.SERVICE: DEFAULT_RULES,
    AccountType.SUBSCRIPTION: _subscription_rules(),
}


def account_rules(kind: AccountType | str = AccountType.SERVICE) -> Mapping[str, ChannelRules]:
    """The built-in channels' rules for an account type (service: ``DEFAULT_RULES``).

    Raises:
        UsageError: for an unknown account type.
    """
    return _RULES[account_type(kind)]


def channel_rules(channel: str, kind: AccountType | str = AccountType.SERVICE) -> ChannelRules:
    """The rules of ``channel`` on an account of this type (no rules for a channel that is
    not built in).

    Raises:
        UsageError: for an unknown account type.
    """
    return account_rules(kind).get(channel) or ChannelRules(channel=channel)
