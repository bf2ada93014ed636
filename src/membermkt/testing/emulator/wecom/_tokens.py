"""Access tokens: ``gettoken`` and the token check in front of every business call."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import (
    _Refuse,
)


class _TokensMixin(_EmulatorBase):
    """Tokens per (corpid, secret), with expiry and the ``token_invalidate`` fault."""

    def _gettoken(self, params: httpx.QueryParams) -> dict[str, Any]:
        corp = self.corps.get(params.get("corpid", ""))
        if corp is None:
            raise _Refuse(40013, "invalid corpid")
        secret = params.get("corpsecret", "")
        if secret not in corp.secrets:
            raise _Refuse(40001, "invalid secret")
        now = self.now()
        cur = corp.current.get(secret)
        if cur is not None and cur[0] in corp.valid_tokens and cur[1] > now:
            # Older docs: repeat fetches within validity return the same token.
            return {"access_token": cur[0], "expires_in": int(cur[1] - now)}
        token = "CT" + hashlib.sha1(f"{corp.corpid}{secret}{next(self._ids)}".encode()).hexdigest()
        dies = now + self.token_ttl
        corp.valid_tokens[token] = (secret, dies)
        corp.current[secret] = (token, dies)
        corp.token_fetches += 1
        self._token_owner[token] = corp.corpid
        return {"access_token": token, "expires_in": int(self.token_ttl)}

    def _authorize(self, token: str, fault: str | None) -> Corp:
        corpid = self._token_owner.get(token)
        corp = self.corps.get(corpid) if corpid else None
        if corp is None or token not in corp.valid_tokens:
            raise _Refuse(40014, "invalid access_token")
        if fault == "token_invalidate":
            secret = corp.valid_tokens.pop(token)[0]
            corp.current.pop(secret, None)
            raise _Refuse(40014, "invalid access_token")
        if self.now() >= corp.valid_tokens[token][1]:
            raise _Refuse(42001, "access_token expired")
        return corp
