"""WeCom errcodes → what to do (reference §3.10), as a row set for the shared decision table.

The decision machinery (:mod:`membermkt.wire.errcodes`) is platform-neutral; this module only
supplies WeCom's rows. Differences from the official account that matter: 40001 is an
*invalid secret* (a configuration error, never a token replay), token replays happen on
40014/42001 only, and the customer-contact codes (84061, 40096, 41051, …) are per recipient.
"""

from __future__ import annotations

from typing import Final

from membermkt.wire.errcodes import Action, ErrcodeTable, Rule, Scope

__all__ = ["WECOM_ERRCODES", "WELCOME_USED"]

_R, _T, _G, _F = Action.RETRY, Action.THROTTLE, Action.GIVE_UP, Action.REFRESH_TOKEN

WELCOME_USED: Final = 41051
"""``send_welcome_msg``: the welcome code is unusable (chat started / already used)."""

WECOM_ERRCODES: Final[ErrcodeTable] = {
    0: Rule(Action.OK),
    -1: Rule(_R, note="system busy: retry with backoff (≤ 3)"),
    40001: Rule(_G, Scope.TOKEN, note="invalid secret (config error)"),
    40013: Rule(_G, Scope.TOKEN, note="invalid corpid (config error)"),
    40014: Rule(_F, Scope.TOKEN, note="invalid access_token: refresh once, retry"),
    42001: Rule(_F, Scope.TOKEN, note="access_token expired: refresh once, retry"),
    # 45009: minute-level blocks last 60 s; hour/day-level ones longer (ref §3.10): no retry
    # inside one call can get past it, so the client surfaces the RateLimitError at once.
    45009: Rule(_T, retry_after=60.0, surface=True, note="API call frequency exceeded"),
    45033: Rule(_T, retry_after=1.0, note="concurrent call limit: back off, lower concurrency"),
    48002: Rule(_G, Scope.CONFIG, note="API forbidden (no permission)"),
    60020: Rule(_G, Scope.TOKEN, note="IP not in whitelist (config error)"),
    40096: Rule(_G, Scope.RECIPIENT, note="invalid external userid: drop that id"),
    84061: Rule(_G, Scope.RECIPIENT, note="not an external contact: drop pair / resync"),
    84074: Rule(_G, Scope.CONFIG, note="no external-contact permission"),
    40068: Rule(_G, Scope.CONFIG, note="invalid tag id: resync the tag cache"),
    40071: Rule(_G, Scope.CONFIG, note="tag name already exists: treat as exists / resync"),
    WELCOME_USED: Rule(_G, Scope.RECIPIENT, note="welcome code unusable: give up the welcome"),
    81017: Rule(_G, Scope.CONFIG, note="groupchat/list without owner_filter: add one"),
    # 41054 is listed by the reference as unconfirmed (not found in any source): no row.
}
"""WeCom customer-contact errcodes (reference §3.10). Unknown codes: give up."""
