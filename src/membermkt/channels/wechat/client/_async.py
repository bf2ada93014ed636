"""The asynchronous driver: :class:`AsyncOfficialAccount` (httpx.AsyncClient)."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
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
from membermkt.channels.wechat.token import AsyncTokenProvider, TokenPolicy
from membermkt.core.accounts import WEB_AUTHORIZATION_REFUSED, AccountType
from membermkt.core.ports import AsyncTokenCache, Clock, TokenCache
from membermkt.errors import ConfigError, UsageError
from membermkt.security.redact import install_redaction
from membermkt.tokens._async import ThreadedAsyncTokenCache
from membermkt.tokens.memory import AsyncMemoryTokenCache
from membermkt.wire.budget import CallBudget
from membermkt.wire.http import Flow, GetToken, HttpRequest, HttpResponse, RefreshToken, Send
from membermkt.wire.retry import RetryPolicy


class AsyncOfficialAccount(_Base):
    """The async twin of :class:`OfficialAccount`: the same arguments and methods, awaited
    (``async with`` / :meth:`aclose` instead of ``with`` / ``close``).

    ``token_cache`` may be an ``AsyncTokenCache`` or a sync ``TokenCache`` (run in worker
    threads).

    Raises:
        ConfigError: for a missing appid/secret or both ``http_client`` and ``transport``.
    """

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        token_cache: AsyncTokenCache | TokenCache | None = None,
        token_mode: str = "stable",
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str = HOST,
        retry: RetryPolicy = RetryPolicy(),
        budgets: Iterable[CallBudget] | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        cache: AsyncTokenCache
        if token_cache is None:
            cache = AsyncMemoryTokenCache()
        elif not inspect.iscoroutinefunction(token_cache.get):
            cache = ThreadedAsyncTokenCache(token_cache)  # type: ignore[arg-type]
        else:
            cache = token_cache  # type: ignore[assignment]
        self.tokens = AsyncTokenProvider(self.policy, cache, self.call, self._now)
        self._tickets: AsyncTokenProvider | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            install_redaction()  # no token/secret in httpx's URL logs
            self._http = httpx.AsyncClient(
                base_url=self.base_url, transport=self._transport, timeout=self.timeout
            )
        return self._http

    async def _send(self, request: HttpRequest) -> HttpResponse:
        self.budgets.take(request.api, self._now().timestamp())
        method, path, kwargs = _to_httpx(request)
        try:
            return _from_httpx(await self._client().request(method, path, **kwargs))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, request.api) from exc

    async def _run(self, flow: Flow[T]) -> T:
        step = next(flow)
        while True:
            if isinstance(step, Send):
                result: Any = await self._send(step.request)
            elif isinstance(step, GetToken):
                result = await self.tokens.get()
            elif isinstance(step, RefreshToken):
                result = await self.tokens.refresh(step.failed)
            else:  # pragma: no cover
                raise UsageError(f"unknown flow step {step!r}")
            try:
                step = flow.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

    async def call(self, call: ApiCall[T]) -> T:
        """Run one API call (see :meth:`OfficialAccount.call`).

        Raises:
            PlatformError: the platform's refusal.
            TransportError: no usable answer after the retries.
            QuotaExceeded: a client-side call budget is used up.
        """
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            retry=self._retry_if(call),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )

        async def attempt() -> T:
            return await self._run(self._flow(call))

        return await retrying(attempt)

    async def run(self, op: flows.Op[T]) -> T:
        """Run an operation flow (a generator of :class:`ApiCall`)."""
        try:
            call = next(op)
            while True:
                call = op.send(await self.call(call))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> AsyncOfficialAccount:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def followers(self, next_openid: str | None = None) -> FollowerPage:
        return await self.call(users.followers_page(next_openid))

    async def iter_followers(self) -> AsyncIterator[str]:
        cursor: str | None = None
        while True:
            page = await self.followers(cursor)
            for openid in page.openids:
                yield openid
            if not page.next_openid or not page.openids:
                return
            cursor = page.next_openid

    async def user_info(self, openid: str, *, lang: str = "zh_CN") -> UserInfo:
        return await self.call(users.user_info(openid, lang=lang))

    async def user_infos(self, openids: Sequence[str], *, lang: str = "zh_CN") -> list[UserInfo]:
        return await self.run(flows.user_infos(openids, lang=lang))

    async def create_tag(self, name: str) -> Tag:
        return await self.call(tags.create_tag(name))

    async def list_tags(self) -> tuple[Tag, ...]:
        return await self.call(tags.list_tags())

    async def update_tag(self, tag_id: int, name: str) -> None:
        await self.call(tags.update_tag(tag_id, name))

    async def delete_tag(self, tag_id: int) -> None:
        await self.call(tags.delete_tag(tag_id))

    async def tag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        return await self.run(flows.tag_users(tag_id, openids))

    async def untag_users(self, tag_id: int, openids: Iterable[str]) -> int:
        return await self.run(flows.untag_users(tag_id, openids))

    async def tag_fans(self, tag_id: int) -> list[str]:
        return await self.run(flows.follower_pages_of_tag(tag_id))

    async def user_tags(self, openid: str) -> tuple[int, ...]:
        return await self.call(tags.tags_of_user(openid))

    async def sync_tags(
        self, desired: Mapping[str, Iterable[str]], *, managed: Iterable[str] | None = None
    ) -> TagSyncPlan:
        return await self.run(flows.sync_tags(desired, managed=managed))

    async def send_mass(
        self, openids: Sequence[str], message: Mapping[str, Any], *, clientmsgid: str | None = None
    ) -> list[MassSend]:
        return await self.run(flows.send_mass(openids, message, clientmsgid=clientmsgid))

    async def send_mass_to_tag(
        self,
        message: Mapping[str, Any],
        *,
        tag_id: int | None = None,
        clientmsgid: str | None = None,
        send_ignore_reprint: bool = False,
    ) -> MassSend:
        return await self.call(
            messaging.send_mass_to_tag(
                message,
                tag_id=tag_id,
                clientmsgid=clientmsgid,
                send_ignore_reprint=send_ignore_reprint,
            )
        )

    async def preview_mass(
        self, message: Mapping[str, Any], *, openid: str | None = None, wxname: str | None = None
    ) -> None:
        await self.call(messaging.preview_mass(message, openid=openid, wxname=wxname))

    async def mass_status(self, msg_id: str | int) -> MassStatus:
        return await self.call(messaging.mass_status(msg_id))

    async def delete_mass(self, msg_id: str | int, *, article_idx: int = 0) -> None:
        await self.call(messaging.delete_mass(msg_id, article_idx=article_idx))

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> str:
        return await self.call(
            messaging.send_template(openid, template_id, data, url=url, miniprogram=miniprogram)
        )

    async def send_subscribe(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, Any],
        *,
        page: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
    ) -> None:
        await self.call(
            messaging.send_subscribe(openid, template_id, data, page=page, miniprogram=miniprogram)
        )

    async def send_custom(
        self, openid: str, message: Mapping[str, Any], *, kf_account: str | None = None
    ) -> None:
        await self.call(messaging.send_custom(openid, message, kf_account=kf_account))

    async def create_qrcode(
        self,
        scene: int | str,
        *,
        permanent: bool = False,
        expire_seconds: int = qrcode.MAX_EXPIRE_SECONDS,
    ) -> QrCode:
        return await self.call(
            qrcode.create_qrcode(scene, permanent=permanent, expire_seconds=expire_seconds)
        )

    async def create_menu(self, buttons: Sequence[menu.Button | Mapping[str, Any]]) -> None:
        await self.call(menu.create_menu(buttons))

    async def get_menu(self) -> Mapping[str, Any]:
        return await self.call(menu.get_menu())

    async def delete_menu(self) -> None:
        await self.call(menu.delete_menu())

    # ----------------------------------------------------------------- web pages

    def oauth_url(
        self,
        redirect_uri: str,
        *,
        state: str,
        scope: str = "snsapi_base",
        host: str = oauth.AUTHORIZE_HOST,
    ) -> str:
        """See :meth:`OfficialAccount.oauth_url`.

        Raises:
            UsageError: on a subscription account.
        """
        if self.account_type is AccountType.SUBSCRIPTION:
            raise UsageError(WEB_AUTHORIZATION_REFUSED)
        return oauth.authorize_url(self.appid, redirect_uri, state=state, scope=scope, host=host)

    async def exchange_code(self, code: str) -> oauth.OAuthToken:
        """See :meth:`OfficialAccount.exchange_code`."""
        return await self.call(oauth.exchange_code(self.appid, self.policy.secret, code))

    async def oauth_user_info(
        self, token: oauth.OAuthToken, *, lang: str = "zh_CN"
    ) -> oauth.SnsUserInfo:
        """See :meth:`OfficialAccount.oauth_user_info`."""
        return await self.call(oauth.user_info(token, lang=lang))

    async def jsapi_ticket(self) -> str:
        """See :meth:`OfficialAccount.jsapi_ticket`."""
        if self._tickets is None:
            policy: TokenPolicy = jssdk.JsapiTicketPolicy(
                appid=self.appid, secret=self.policy.secret, mode=self.policy.mode
            )
            self._tickets = AsyncTokenProvider(policy, self.tokens.cache, self.call, self._now)
        return await self._tickets.get()

    async def js_config(
        self, url: str, *, nonce: str, js_api_list: Sequence[str] = ()
    ) -> jssdk.JsConfig:
        """See :meth:`OfficialAccount.js_config`."""
        ts = int(self._now().timestamp())
        ticket = await self.jsapi_ticket()
        return jssdk.JsConfig(
            app_id=self.appid,
            timestamp=ts,
            nonce_str=nonce,
            signature=jssdk.js_signature(ticket, nonce, ts, url),
            js_api_list=tuple(js_api_list),
        )
