"""Platform error codes → what to do (a pure decision table).

The drivers' tenacity loops, the token flow and the channels all ask this table instead of
hard-coding codes. The table is data: WeCom reuses the neutral machinery with its own rows.
Facts come from the platform reference (§1.10 for official accounts).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from membermkt.core.delivery import SendOutcome
from membermkt.errors import (
    PermanentDeliveryError,
    PlatformError,
    RateLimitError,
    TokenError,
)

__all__ = [
    "OA_ERRCODES",
    "TOKEN_ERRCODES",
    "Action",
    "ErrcodeTable",
    "Rule",
    "Scope",
    "decide",
    "error_for",
    "outcome_for",
    "rid_of",
]


class Action(enum.StrEnum):
    """What the caller should do about an errcode."""

    OK = "ok"
    """Success (0), or a code that means "already done" (mass send 45065)."""
    RETRY = "retry"
    """Transient: retry the same request with backoff."""
    THROTTLE = "throttle"
    """A frequency/quota limit: wait longer (``retry_after``) before the same request."""
    REFRESH_TOKEN = "refresh_token"
    """The access token is stale: expire it (compare-then-expire), fetch, replay once."""
    GIVE_UP = "give_up"
    """Permanent: retrying the same request cannot succeed."""


class Scope(enum.StrEnum):
    """Who the error is about (used to classify per-delivery outcomes)."""

    CALL = "call"
    """The call as a whole (busy, throttled)."""
    RECIPIENT = "recipient"
    """This recipient only (unfollowed, blocked, outside the window)."""
    CONFIG = "config"
    """Account configuration or a bug (wrong secret, IP whitelist, bad template id)."""
    TOKEN = "token"
    """The access token."""


@attrs.frozen(slots=True)
class Rule:
    """One row of the decision table."""

    action: Action
    scope: Scope = Scope.CALL
    retry_after: float | None = None
    note: str = ""
    surface: bool = False
    """A throttle whose wait no retry inside one call can bridge (a daily quota, the 60 s of
    a too-fast ``clientmsgid``): the client raises it at once for its caller (the campaign
    runner defers or waits) instead of retrying after a few seconds and burning calls."""


ErrcodeTable = Mapping[int, Rule]

_R, _T, _G, _F = Action.RETRY, Action.THROTTLE, Action.GIVE_UP, Action.REFRESH_TOKEN

OA_ERRCODES: Final[ErrcodeTable] = {
    0: Rule(Action.OK),
    -1: Rule(_R, note="system busy: retry with backoff (≤ 3)"),
    40001: Rule(_F, Scope.TOKEN, note="invalid credential / not the latest token"),
    40014: Rule(_F, Scope.TOKEN, note="invalid access_token"),
    42001: Rule(_F, Scope.TOKEN, note="access_token expired"),
    41001: Rule(_G, Scope.CONFIG, note="access_token missing (a bug)"),
    40164: Rule(_G, Scope.CONFIG, note="caller IP not in the API IP whitelist"),
    40125: Rule(_G, Scope.CONFIG, note="invalid appsecret"),
    # 45009: "stop calling this API; retry next day or clear_quota" (ref §1.10): surfaced.
    45009: Rule(
        _T, retry_after=60.0, surface=True, note="API daily quota / frequency limit reached"
    ),
    45011: Rule(_T, retry_after=10.0, note="API called too frequently"),
    40003: Rule(_G, Scope.RECIPIENT, note="invalid openid (not following / other appid)"),
    49003: Rule(_G, Scope.RECIPIENT, note="openid does not belong to this appid"),
    40130: Rule(_G, Scope.CALL, note="mass/send needs at least two openids"),
    40032: Rule(_G, Scope.CALL, note="invalid openid list size: re-chunk"),
    43004: Rule(_G, Scope.RECIPIENT, note="receiver must follow"),
    50005: Rule(_G, Scope.RECIPIENT, note="user not following"),
    48001: Rule(_G, Scope.CONFIG, note="API unauthorized for this account"),
    48002: Rule(_G, Scope.RECIPIENT, note="user turned off messages from the account"),
    48004: Rule(_G, Scope.CONFIG, note="API banned: alert the operator"),
    45015: Rule(_G, Scope.RECIPIENT, note="outside the customer-service window / unfollowed"),
    45047: Rule(_G, Scope.RECIPIENT, note="customer-service quota of this window used up"),
    43101: Rule(_G, Scope.RECIPIENT, note="user refused the subscribe message / quota used"),
    45028: Rule(_G, Scope.CALL, note="no mass-send quota left this period"),
    45065: Rule(Action.OK, note="same clientmsgid already sent (body has msg_id)"),
    # 45066: "retry the same clientmsgid after >= 60 s" (ref §1.4, §1.10): surfaced.
    45066: Rule(_T, retry_after=60.0, surface=True, note="same clientmsgid retried too fast"),
    45067: Rule(_G, Scope.CONFIG, note="clientmsgid longer than 64 bytes"),
    40037: Rule(_G, Scope.CONFIG, note="invalid template_id"),
    47003: Rule(_G, Scope.CONFIG, note="template argument invalid"),
    45056: Rule(_G, Scope.CONFIG, note="too many tags"),
    45057: Rule(_G, Scope.CONFIG, note="tag has more than 100,000 fans"),
    45058: Rule(_G, Scope.CONFIG, note="system tag cannot be modified"),
    45059: Rule(_G, Scope.RECIPIENT, note="user has too many tags"),
    45157: Rule(_G, Scope.CONFIG, note="invalid or duplicate tag name"),
    45158: Rule(_G, Scope.CONFIG, note="tag name too long"),
    # Community reports a transient 45159 right after tag creation (unconfirmed): one retry.
    45159: Rule(_R, Scope.CONFIG, note="invalid tag id (transient right after create?)"),
    40059: Rule(_G, Scope.CONFIG, note="invalid msg id"),
    48006: Rule(_G, Scope.CONFIG, note="clear_quota limit reached"),
}
"""Official-account errcodes (reference §1.10). Unknown codes: give up."""

TOKEN_ERRCODES: Final = frozenset(c for c, r in OA_ERRCODES.items() if r.action is _F)
"""Codes that trigger compare-then-expire and one replay: 40001, 40014, 42001."""

_UNKNOWN = Rule(_G, Scope.CALL, note="unknown errcode")


def decide(errcode: int, table: ErrcodeTable = OA_ERRCODES) -> Rule:
    """The rule for ``errcode`` (unknown codes give up: never retry what we do not know)."""
    return table.get(errcode, _UNKNOWN)


def rid_of(errmsg: str) -> str | None:
    """The ``rid: …`` request id newer errmsgs carry, if any."""
    i = errmsg.rfind("rid:")
    if i < 0:
        return None
    return errmsg[i + 4 :].strip() or None


def error_for(
    errcode: int,
    errmsg: str,
    api: str,
    *,
    payload: Any = None,
    table: ErrcodeTable = OA_ERRCODES,
) -> PlatformError:
    """The :class:`~membermkt.errors.PlatformError` subclass for a platform error answer."""
    rule = decide(errcode, table)
    kwargs: dict[str, Any] = {"request_id": rid_of(errmsg), "payload": payload}
    if (
        rule.action is Action.REFRESH_TOKEN
        or rule.scope is Scope.TOKEN
        or (rule.scope is Scope.CONFIG and errcode in (40164, 40125, 41001))
    ):
        return TokenError(errcode, errmsg, api, **kwargs)
    if rule.action is Action.THROTTLE:
        return RateLimitError(
            errcode,
            errmsg,
            api,
            retry_after=rule.retry_after,
            retryable=True,
            surface=rule.surface,
            **kwargs,
        )
    if errcode == 45028:
        return RateLimitError(errcode, errmsg, api, retry_after=None, **kwargs)
    if rule.action is Action.GIVE_UP and rule.scope is Scope.RECIPIENT:
        return PermanentDeliveryError(errcode, errmsg, api, **kwargs)
    return PlatformError(errcode, errmsg, api, retryable=rule.action is Action.RETRY, **kwargs)


def outcome_for(errcode: int, table: ErrcodeTable = OA_ERRCODES) -> SendOutcome:
    """How a channel classifies a delivery that got ``errcode``: retryable for transient
    and throttling codes (and a token that survived its replay), permanent otherwise."""
    rule = decide(errcode, table)
    if rule.action is Action.OK:
        return SendOutcome.SENT
    if rule.action in (Action.RETRY, Action.THROTTLE, Action.REFRESH_TOKEN):
        return SendOutcome.RETRYABLE
    return SendOutcome.PERMANENT
