"""Corp access token (reference §3.1): one token per (corpid, secret)."""

from __future__ import annotations

import hashlib

import attrs

from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.api.token import AccessToken
from membermkt.channels.wechat.token import TokenPolicy
from membermkt.channels.wecom.api._call import get
from membermkt.errors import ConfigError

__all__ = ["GETTOKEN_PATH", "CorpTokenPolicy", "gettoken"]

GETTOKEN_PATH = "/cgi-bin/gettoken"


def gettoken(corpid: str, secret: str) -> ApiCall[AccessToken]:
    """``GET /cgi-bin/gettoken?corpid&corpsecret`` → ``access_token``, ``expires_in``.

    Each secret (app) has its own token. Older docs say repeat fetches within validity
    return the same token; the newest page no longer says so, so fetches are single-flight
    through the ``TokenCache`` either way.
    """
    call = get(
        GETTOKEN_PATH,
        {"corpid": corpid, "corpsecret": secret},
        lambda d: AccessToken.from_api(d, GETTOKEN_PATH),
    )
    return attrs.evolve(call, needs_token=False)


@attrs.frozen(slots=True, kw_only=True)
class CorpTokenPolicy(TokenPolicy):
    """The official account's token policy, specialised for a WeCom corp app.

    ``appid`` holds the corpid. The cache key is per (corpid, secret) — the secret enters
    only as a digest — so the customer-contact secret and a self-built app's secret never
    share a token. Fetches go to ``/cgi-bin/gettoken``; everything else (expiry margin,
    single-flight refresh, compare-then-expire) is the shared machinery.
    """

    mode: str = "corp"

    def __attrs_post_init__(self) -> None:
        if not self.appid or not self.secret:
            raise ConfigError("a WeCom client needs a corpid and a secret")

    @property
    def corpid(self) -> str:
        return self.appid

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.secret.encode("utf-8")).hexdigest()[:16]
        return f"wecom:{self.appid}:{digest}"

    def fetch_call(self) -> ApiCall[AccessToken]:
        return gettoken(self.appid, self.secret)
