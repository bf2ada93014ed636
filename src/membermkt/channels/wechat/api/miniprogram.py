"""Mini-program identity: ``jscode2session`` and the phone-number exchange (pure).

* ``GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code`` turns the
  ``wx.login()`` code (single-use, 5 minutes) into the user's mini-program ``openid``, a
  ``session_key`` (keep it server-side; never send it to the client) and the ``unionid``
  when the mini program is bound to an Open Platform account. Invalid code 40029, used code
  40163, high-risk user 40226 (codes from the official doc as recalled: **unconfirmed**).
* ``POST /wxa/business/getuserphonenumber`` ``{code}`` (with the mini program's access
  token) turns the ``getPhoneNumber`` button's code into ``phone_info`` — a number WeChat
  has verified, so it may join members (``Evidence.VERIFIED_PHONE``).

A mini program has its own appid and secret and the same token endpoints: run these calls
through an :class:`~membermkt.channels.wechat.OfficialAccount` built with the mini
program's appid and secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.channels.wechat.api._call import ApiCall, need
from membermkt.errors import UsageError
from membermkt.wire.http import HttpRequest

__all__ = ["MiniProgramSession", "PhoneInfo", "code_to_session", "phone_number"]

JSCODE_PATH = "/sns/jscode2session"
PHONE_PATH = "/wxa/business/getuserphonenumber"


@attrs.frozen(slots=True, kw_only=True)
class MiniProgramSession:
    """``jscode2session``'s answer (``session_key`` is kept out of ``repr``)."""

    openid: str
    session_key: str = attrs.field(repr=False)
    unionid: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> MiniProgramSession:
        unionid = d.get("unionid")
        return cls(
            openid=str(need(d, "openid", JSCODE_PATH)),
            session_key=str(need(d, "session_key", JSCODE_PATH)),
            unionid=str(unionid) if unionid else None,
        )


@attrs.frozen(slots=True, kw_only=True)
class PhoneInfo:
    """The verified phone number (``purePhoneNumber`` without the country code)."""

    phone_number: str = attrs.field(repr=False)
    pure_phone_number: str = attrs.field(repr=False)
    country_code: str
    appid: str | None = None

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> PhoneInfo:
        info = need(d, "phone_info", PHONE_PATH)
        if not isinstance(info, Mapping):
            raise UsageError("phone_info is not an object")
        mark = info.get("watermark") or {}
        return cls(
            phone_number=str(info.get("phoneNumber", "")),
            pure_phone_number=str(info.get("purePhoneNumber", "")),
            country_code=str(info.get("countryCode", "")),
            appid=mark.get("appid"),
        )


def code_to_session(appid: str, secret: str, js_code: str) -> ApiCall[MiniProgramSession]:
    """``GET /sns/jscode2session`` (no access token; never retried: the code is single-use).

    Raises:
        UsageError: for an empty code.
    """
    if not js_code:
        raise UsageError("jscode2session needs the wx.login() code")
    params = {
        "appid": appid,
        "secret": secret,
        "js_code": js_code,
        "grant_type": "authorization_code",
    }
    return ApiCall(
        request=HttpRequest.get(JSCODE_PATH, params),
        parse=MiniProgramSession.from_api,
        needs_token=False,
    )


def phone_number(code: str) -> ApiCall[PhoneInfo]:
    """``POST /wxa/business/getuserphonenumber`` ``{code}`` (single-use code).

    Raises:
        UsageError: for an empty code.
    """
    if not code:
        raise UsageError("getuserphonenumber needs the getPhoneNumber code")
    return ApiCall(
        request=HttpRequest.post_json(PHONE_PATH, {"code": code}), parse=PhoneInfo.from_api
    )
