"""Access tokens: the stable and classic token endpoints and token checks on every call."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from membermkt.testing.emulator.wechat._base import _Base
from membermkt.testing.emulator.wechat._model import Account, _Refuse

FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_INTERVAL = 30.0


class _TokensMixin(_Base):
    """Issues, rotates and checks access tokens."""

    def _account_for(self, appid: Any, secret: Any) -> Account:
        acct = self.accounts.get(appid) if isinstance(appid, str) else None
        if acct is None:
            raise _Refuse(40013, "invalid appid")
        if secret != acct.secret:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        return acct

    def _issue(self, acct: Account, now: float) -> str:
        token = (
            f"ET{acct.appid[-6:]}{next(self._ids)}"
            + hashlib.sha1(f"{acct.appid}{now}{next(self._ids)}".encode()).hexdigest()
        )
        acct.valid_tokens[token] = now + self.token_ttl
        self._token_owner[token] = acct.appid
        acct.token_fetches += 1
        return token

    def _stable_token(self, api: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            raise _Refuse(40002, "invalid grant_type")
        acct = self._account_for(body.get("appid"), body.get("secret"))
        self._limit(acct, api)
        now = self.now()
        cur = acct.stable
        if body.get("force_refresh"):
            # rule: oa.force_refresh -- stable_token force_refresh: 20 a day, 30 s apart
            # (reference §5); the refusal code is unconfirmed (45009, the API-limit code)
            day = [t for t in acct.force_refreshes if now - t < 86_400]
            if len(day) >= FORCE_REFRESH_PER_DAY or (
                day and now - day[-1] < FORCE_REFRESH_INTERVAL
            ):
                raise _Refuse(45009, "reach max api daily quota limit (force_refresh)")
            acct.force_refreshes = [*day, now]
            if cur is not None:
                acct.valid_tokens.pop(cur[0], None)
            cur = None
        if cur is not None and cur[0] in acct.valid_tokens and cur[1] - now > self.token_overlap:
            acct.token_repeats += 1
            return {"access_token": cur[0], "expires_in": int(cur[1] - now)}
        token = self._issue(acct, now)
        acct.stable = (token, now + self.token_ttl)
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _classic_token(self, api: str, params: Mapping[str, str]) -> dict[str, Any]:
        if params.get("grant_type") != "client_credential":
            raise _Refuse(40002, "invalid grant_type")
        acct = self._account_for(params.get("appid"), params.get("secret"))
        self._limit(acct, api)
        now = self.now()
        stable = acct.stable[0] if acct.stable else None
        for tok, dies in list(acct.valid_tokens.items()):
            if tok != stable:  # the two endpoints' tokens are independent
                acct.valid_tokens[tok] = min(dies, now + self.token_overlap)
                acct.replaced.add(tok)
        token = self._issue(acct, now)
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _authorize(self, token: str, fault: str | None) -> Account:
        if not token:
            raise _Refuse(41001, "access_token missing")
        appid = self._token_owner.get(token)
        acct = self.accounts.get(appid) if appid else None
        if acct is None:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        dies = acct.valid_tokens.get(token)
        if fault == "token_invalidate":
            acct.valid_tokens.pop(token, None)
            if acct.stable and acct.stable[0] == token:
                acct.stable = None
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        if dies is None:
            raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
        if self.now() >= dies:
            # rule: oa.replaced_token -- a classic token replaced by a newer one is "not
            # latest" (40001) once its 5-minute overlap is over; only a token that simply
            # outlived its 7,200 s is 42001 (reference §1.1)
            if token in acct.replaced:
                raise _Refuse(40001, "invalid credential, access_token is invalid or not latest")
            raise _Refuse(42001, "access_token expired")
        return acct
