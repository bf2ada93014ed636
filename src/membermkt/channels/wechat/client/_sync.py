"""The synchronous driver: :class:`OfficialAccount` (httpx.Client)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import tenacity

from membermkt.channels.wechat import flows
from membermkt.channels.wechat.api import jssdk, menu, messaging, oauth, qrcode, tags, users
from membermkt.channels.wechat.api._call import HOST, ApiCall
from membermkt.channels.wechat.api.messaging import MassSend, MassStatus
from membermkt.channels.wechat.api.qrcode import QrCode
from membermkt.channels.wechat.api.tags import Tag
from membermkt.channels.wechat.api.users import FollowerPage, UserInfo
from membermkt.channels.wechat.client._base import (
    T,
    _Base,
    _from_httpx,
    _to_httpx,
    _transport_error,
)
from membermkt.channels.wechat.tagsync import TagSyncPlan
from membermkt.channels.wechat.token import TokenPolicy, TokenProvider
from membermkt.core.accounts import WEB_AUTHORIZATION_REFUSED, AccountType
from membermkt.core.ports import Clock, TokenCache
from membermkt.errors import ConfigError, UsageError
from membermkt.security.redact import install_redaction
from membermkt.tokens.memory import MemoryTokenCache
from membermkt.wire.budget import CallBudget
from membermkt.wire.http import Flow, GetToken, HttpRequest, HttpResponse, RefreshToken, Send
from membermkt.wire.retry import RetryPolicy


class OfficialAccount(_Base):
    """A synchronous official-account API client.

    Args:
        appid: the account's appid.
        secret: its AppSecret.
        token_cache: a ``TokenCache`` shared by every process of the account (default: an
            in-process :class:`~membermkt.tokens.MemoryTokenCache`).
        token_mode: ``"stable"`` (default) or ``"classic"``.
        http_client: your own ``httpx.Client`` (you close it); exclusive with ``transport``.
        transport: an httpx transport, e.g. the emulator's.
        base_url: the API host.
        retry: a :class:`~membermkt.wire.retry.RetryPolicy`.
        budgets: client-side call budgets (default :data:`DEFAULT_BUDGETS`; ``()`` for none).
        clock: a ``Clock`` (token expiry and budgets).
        sleep: the sleep used between retries (inject a no-op in tests).
        timeout: HTTP timeout in seconds (WeChat's callback replies need < 5 s in total).
        rng: randomness for retry jitter.
        max_token_replays: replays after a token error (default 1).
        account_type: ``"service"`` (default) or ``"subscription"``
            (:mod:`membermkt.core.accounts`); :meth:`channel_rules` gives the rules that
            follow from it.

    Raises:
        ConfigError: for a missing appid/secret or both ``http_client`` and ``transport``.
        UsageError: for an unknown account type.
    """

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        token_cache: TokenCache | None = None,
        token_mode: str = "stable",
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        base_url: str = HOST,
        retry: RetryPolicy = RetryPolicy(),
        budgets: Iterable[CallBudget] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        rng: random.Random | None = None,
        max_token_replays: int = 1,
        account_type: AccountType | str = AccountType.SERVICE,
    ) -> None:
        super().__init__(
            appid,
            secret,
            token_mode=token_mode,
            base_url=base_url,
            retry=retry,
            budgets=budgets,
            clock=clock,
            timeout=timeout,
            rng=rng,
            max_token_replays=max_token_replays,
            account_type=account_type,
        )
        if http_client is not None and transport is not None:
            raise ConfigError("pass http_client= or transport=, not both")
        self._http = http_client
        self._own_http = http_client is None
        self._transport = transport
        self._sleep = sleep
        self.tokens = TokenProvider(
            self.policy, token_cache or MemoryTokenCache(), self.call, self._now
        )
        self._tickets: TokenProvider | None = None

    # ----------------------------------------------------------------- driver

    def _client(self) -> httpx.Client:
        if self._http is None:
            install_redaction()  # no token/secret in httpx's URL logs
            self._http = httpx.Client(
                base_url=self.base_url, transport=self._transport, timeout=self.timeout
            )
        return self._http

    def _send(self, request: HttpRequest) -> HttpResponse:
        self.budgets.take(request.api, self._now().timestamp())
        method, path, kwargs = _to_httpx(request)
        try:
            return _from_httpx(self._client().request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, request.api) from exc

    def _run(self, flow: Flow[T]) -> T:
        step = next(flow)
        while True:
            if isinstance(step, Send):
                result: Any = self._send(step.request)
            elif isinstance(step, GetToken):
                result = self.tokens.get()
            elif isinstance(step, RefreshToken):
                result = self.tokens.refresh(step.failed)
            else:  # pragma: no cover - flows only yield the three steps
                raise UsageError(f"unknown flow step {step!r}")
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    def call(self, call: ApiCall[T]) -> T:
        """Run one API call: budget check, token, retries per the errcode table.

        Raises:
            PlatformError: the platform's refusal (see :mod:`membermkt.wire.errcodes`).
            TransportError: no usable answer after the retries.
            QuotaExceeded: a client-side call budget is used up.
        """
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            retry=self._retry_if(call),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(lambda: self._run(self._flow(call)))

    def run(self, op: flows.Op[T]) -> T:
        """Run an operation flow (a generator of :class:`ApiCall`)."""
        try:
            call = next(op)
            while True:
                call = op.send(self.call(call))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._http is not None and self._own_http:
            self._http.close()
            self._http = None

    def __enter__(self) -> OfficialAccount:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- followers

    def followers(self, next_openid: str | None = None) -> FollowerPage:
        """One page (≤ 10,000) of follower openids."""
        return self.call(users.followers_page(next_openid))

    def iter_followers(self) -> Iterator[str]:
        """Every follower openid, page by page."""
        cursor: str | None = None
        while True:
            page = self.followers(cursor)
            yield from page.openids
            if not page.next_openid or not page.openids:
                return
            cursor = page.next_openid

    def user_info(self, openid: str, *, lang: str = "zh_CN") -> UserInfo:
        """One user's info."""
        return self.call(users.user_info(openid, lang=lang))

    def user_infos(self, openids: Sequence[str], *, lang: str = "zh_CN") -> list[UserInfo]:
        """Info for any number of users (100 per call)."""
        return self.run(flows.user_infos(openids, lang=lang))

    # ----------------------------------------------------------------- tags

    def create_tag(self, name: str) -> Tag:
        return self.call(tags.create_tag(name))

    def list_tags(self) -> tuple[Tag, ...]:
        return self.call(tags.list_tags())

    def update_tag(self, tag_id: int, name: str) -> None:
        self.call(tags.update_tag(tag_id, name))

    def delete_tag(self, tag_id: int) -> None:
        self.call(tags.delete_tag(tag_id))

    def tag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        """Tag any number of users (50 per call); returns the number of calls."""
        return self.run(flows.tag_users(tag_id, openids))

    def untag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        """Untag any number of users (50 per call); returns the number of calls."""
        return self.run(flows.untag_users(tag_id, openids))

    def tag_fans(self, tag_id: int) -> list[str]:
        """Every fan of a tag."""
        return self.run(flows.follower_pages_of_tag(tag_id))

    def user_tags(self, openid: str) -> tuple[int, ...]:
        return self.call(tags.tags_of_user(openid))

    def sync_tags(
        self, desired: Mapping[str, Iterable[str]], *, managed: Iterable[str] | None = None
    ) -> TagSyncPlan:
        """Make WeChat's tags match ``desired`` for those openids (see
        :func:`membermkt.channels.wechat.flows.sync_tags`); returns the executed plan."""
        return self.run(flows.sync_tags(desired, managed=managed))

    # ----------------------------------------------------------------- messages

    def send_mass(
        self, openids: Sequence[str], message: Mapping[str, Any], *, clientmsgid: str | None = None
    ) -> list[MassSend]:
        """Mass-send to ≥ 2 openids (chunked by 10,000, one clientmsgid per chunk)."""
        return self.run(flows.send_mass(openids, message, clientmsgid=clientmsgid))

    def send_mass_to_tag(
        self,
        message: Mapping[str, Any],
        *,
        tag_id: int | None = None,
        clientmsgid: str | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassSend:
        """Mass-send to a tag's fans (or all followers with ``tag_id=None``)."""
        return self.call(
            messaging.send_mass_to_tag(
                message,
                tag_id=tag_id,
                clientmsgid=clientmsgid,
                send_ignore_reprint=send_ignore_reprint,
            )
        )

    def preview_mass(
        self, message: Mapping[str, Any], *, openid: str | None = None, wxname: str | None = None
    ) -> None:
        self.call(messaging.preview_mass(message, openid=openid, wxname=wxname))

    def mass_status(self, msg_id: str | int) -> MassStatus:
        return self.call(messaging.mass_status(msg_id))

    def delete_mass(self, msg_id: str | int, *, article_idx: int = 0) -> None:
        self.call(messaging.delete_mass(msg_id, article_idx=article_idx))

    def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> str:
        """Send a template message; returns its ``msgid``."""
        return self.call(
            messaging.send_template(openid, template_id, data, url=url, miniprogram=miniprogram)
        )

    def send_subscribe(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        page: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> None:
        self.call(
            messaging.send_subscribe(openid, template_id, data, page=page, miniprogram=miniprogram)
        )

    def send_custom(
        self, openid: str, message: Mapping[str, Any], *, kf_account: str | None = None
    ) -> None:
        """Send a customer-service message (inside the 48-hour window)."""
        self.call(messaging.send_custom(openid, message, kf_account=kf_account))

    # ----------------------------------------------------------------- qr & menus

    def create_qrcode(
        self,
        scene: int | str,
        *,
        permanent: bool = False,
        expire_seconds: int = qrcode.MAX_EXPIRE_SECONDS,
    ) -> QrCode:
        return self.call(
            qrcode.create_qrcode(scene, permanent=permanent, expire_seconds=expire_seconds)
        )

    def create_menu(self, buttons: Sequence[menu.Button | Mapping[str, Any]]) -> None:
        self.call(menu.create_menu(buttons))

    def get_menu(self) -> Mapping[str, Any]:
        return self.call(menu.get_menu())

    def delete_menu(self) -> None:
        self.call(menu.delete_menu())

    # ----------------------------------------------------------------- web pages

    def oauth_url(
        self,
        redirect_uri: str,
        *,
        state: str,
        scope: str = "snsapi_base",
        host: str = oauth.AUTHORIZE_HOST,
    ) -> str:
        """The web-authorization URL (see :func:`.oauth.authorize_url`).

        Raises:
            UsageError: on a subscription account (verified service accounts only,
                :data:`~membermkt.core.accounts.WEB_AUTHORIZATION_REFUSED`).
        """
        if self.account_type is AccountType.SUBSCRIPTION:
            raise UsageError(WEB_AUTHORIZATION_REFUSED)
        return oauth.authorize_url(self.appid, redirect_uri, state=state, scope=scope, host=host)

    def exchange_code(self, code: str) -> oauth.OAuthToken:
        """Turn an OAuth ``code`` into the visitor's openid (and per-user token).

        Raises:
            PlatformError: 40029 (invalid or expired code), 40163 (code already used).
        """
        return self.call(oauth.exchange_code(self.appid, self.policy.secret, code))

    def oauth_user_info(self, token: oauth.OAuthToken, *, lang: str = "zh_CN") -> oauth.SnsUserInfo:
        """The visitor's profile and unionid (``snsapi_userinfo`` tokens only)."""
        return self.call(oauth.user_info(token, lang=lang))

    def jsapi_ticket(self) -> str:
        """The JS-SDK ticket, cached in this account's ``TokenCache`` (single-flight)."""
        if self._tickets is None:
            policy: TokenPolicy = jssdk.JsapiTicketPolicy(
                appid=self.appid, secret=self.policy.secret, mode=self.policy.mode
            )
            self._tickets = TokenProvider(policy, self.tokens.cache, self.call, self._now)
        return self._tickets.get()

    def js_config(self, url: str, *, nonce: str, js_api_list: Sequence[str] = ()) -> jssdk.JsConfig:
        """The ``wx.config`` values for the page at ``url`` (timestamp from the clock).

        Args:
            url: the page URL as the browser shows it (the fragment is dropped).
            nonce: a fresh random string (e.g. ``secrets.token_hex(8)``).
            js_api_list: the JS APIs the page will call.
        """
        ts = int(self._now().timestamp())
        ticket = self.jsapi_ticket()
        return jssdk.JsConfig(
            app_id=self.appid,
            timestamp=ts,
            nonce_str=nonce,
            signature=jssdk.js_signature(ticket, nonce, ts, url),
            js_api_list=tuple(js_api_list),
        )
