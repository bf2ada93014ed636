"""WeCom web authorization: ``/cgi-bin/auth/getuserinfo`` and the codes it reads.

A code is issued with :meth:`_WebAuthMixin.issue_web_code` (what the authorize page does
for the visitor); it is single-use, dies after 5 minutes and belongs to its corp — any
other use answers 40029 ``invalid code`` (WeCom doc path/98176; that a used code also gives
40029 is unconfirmed).
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from membermkt.errors import UsageError
from membermkt.testing.emulator.wecom._base import _EmulatorBase
from membermkt.testing.emulator.wecom._corp import Corp
from membermkt.testing.emulator.wecom._models import _Refuse

WEB_CODE_TTL = 300.0


@attrs.define
class _WebCode:
    corpid: str
    issued_at: float
    answer: dict[str, str]
    used: bool = False


class _WebAuthMixin(_EmulatorBase):
    """``auth/getuserinfo``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.web_codes: dict[str, _WebCode] = {}

    def issue_web_code(
        self,
        corpid: str,
        *,
        userid: str | None = None,
        openid: str | None = None,
        external_userid: str | None = None,
    ) -> str:
        """A code for a staff member (``userid``) or an outsider (``openid``, with the
        ``external_userid`` when they are a customer of the corp).

        Raises:
            UsageError: unless exactly one of userid/openid is given, or for an unknown
                corp, staff member, or an external_userid without a relation.
        """
        if (userid is None) == (openid is None):
            raise UsageError("issue_web_code needs exactly one of userid= or openid=")
        with self.lock:
            corp = self.corps.get(corpid)
            if corp is None:
                raise UsageError(f"unknown corp {corpid!r}")
            if userid is not None:
                if userid not in corp.staff:
                    raise UsageError(f"{userid!r} is not staff of {corpid!r}")
                answer = {"userid": userid}
            else:
                answer = {"openid": str(openid)}
                if external_userid is not None:
                    if not any(ext == external_userid for _, ext in corp.relations):
                        raise UsageError(f"{external_userid!r} is not a customer of {corpid!r}")
                    answer["external_userid"] = external_userid
            code = hashlib.sha1(f"{corpid}{answer}{next(self._ids)}".encode()).hexdigest()
            self.web_codes[code] = _WebCode(corpid, self.now(), answer)
            return code

    def _getuserinfo(self, corp: Corp, params: Any, body: Any) -> dict[str, Any]:
        code = self.web_codes.get(str(params.get("code", "")))
        if code is None or code.corpid != corp.corpid or code.used:
            raise _Refuse(40029, "invalid code")
        if self.now() - code.issued_at > WEB_CODE_TTL:
            raise _Refuse(40029, "invalid code")
        code.used = True
        return dict(code.answer)
