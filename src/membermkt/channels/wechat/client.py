"""Official-account API clients: :class:`OfficialAccount` (sync) and
:class:`AsyncOfficialAccount` (async).

Both are thin drivers over the same sans-I/O pieces — :mod:`~membermkt.channels.wechat.api`
(requests and models), :mod:`~membermkt.channels.wechat.flows` (token replay, chunking,
paging, tag sync) and :mod:`membermkt.wire` (errcode table, retry decision, call budgets) —
so they behave identically. Each method exists on both with the same name and arguments.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

import httpx
import tenacity

from membermkt.channels.wechat import flows
from membermkt.channels.wechat.api import menu, messaging, qrcode, tags, users
from membermkt.channels.wechat.api._call import HOST, ApiCall
from membermkt.channels.wechat.api.messaging import MassSend, MassStatus
from membermkt.channels.wechat.api.qrcode import QrCode
from membermkt.channels.wechat.api.tags import Tag
from membermkt.channels.wechat.api.users import FollowerPage, UserInfo
from membermkt.channels.wechat.tagsync import TagSyncPlan
from membermkt.channels.wechat.token import AsyncTokenProvider, TokenPolicy, TokenProvider
from membermkt.core.ports import AsyncTokenCache, Clock, TokenCache
from membermkt.errors import ConfigError, TransportError, UsageError
from membermkt.tokens._async import ThreadedAsyncTokenCache
from membermkt.tokens.memory import AsyncMemoryTokenCache, MemoryTokenCache
from membermkt.wire.budget import CallBudget, CallBudgets
from membermkt.wire.http import Flow, GetToken, HttpRequest, HttpResponse, RefreshToken, Send
from membermkt.wire.retry import RetryPolicy, should_retry, wait_seconds

__all__ = ["DEFAULT_BUDGETS", "AsyncOfficialAccount", "OfficialAccount"]

T = TypeVar("T")

_MASS_APIS = ("/cgi-bin/message/mass/send", "/cgi-bin/message/mass/sendall")

DEFAULT_BUDGETS: tuple[CallBudget, ...] = (
    CallBudget("/cgi-bin/token", per_day=2000),
    CallBudget("/cgi-bin/stable_token", per_day=500_000, per_minute=10_000),
    CallBudget("/cgi-bin/user/get", per_day=500),
    # user/info: 5,000,000/day in the doc, 500,000 in some consoles (conflict): the lower.
    CallBudget("/cgi-bin/user/info", per_day=500_000),
    CallBudget("/cgi-bin/user/info/updateremark", per_day=10_000),
    CallBudget("mass", per_day=100, per_minute=60, apis=_MASS_APIS),
    CallBudget("/cgi-bin/message/custom/send", per_day=500_000),
    CallBudget("/cgi-bin/qrcode/create", per_day=100_000),
    CallBudget("/cgi-bin/menu/create", per_day=1000),
    CallBudget("/cgi-bin/menu/delete", per_day=1000),
    CallBudget("/cgi-bin/menu/get", per_day=10_000),
)
"""Client-side budgets from the reference (§5) for a service account. Template sends have
no budget: their daily cap is not confirmed."""


class _SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def _transport_error(exc: httpx.HTTPError, api: str) -> TransportError:
    # A connection that never opened cannot have reached the platform.
    ambiguous = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    kind = type(exc).__name__
    return TransportError(f"{api}: {kind}: {exc}", api=api, ambiguous=ambiguous)


def _to_httpx(request: HttpRequest) -> tuple[str, str, dict[str, Any]]:
    kwargs: dict[str, Any] = {"params": list(request.params)}
    if request.body is not None:
        kwargs["content"] = request.body
    if request.headers:
        kwargs["headers"] = dict(request.headers)
    return request.method, request.path, kwargs


def _from_httpx(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        status=response.status_code,
        content=response.content,
        headers=tuple(response.headers.items()),
    )


class _Base:
    """Configuration shared by both drivers (no I/O here)."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        token_mode: str,
        base_url: str,
        retry: RetryPolicy,
        budgets: Iterable[CallBudget] | None,
        clock: Clock | None,
        timeout: float,
        rng: random.Random | None,
        max_token_replays: int,
    ) -> None:
        if not isinstance(appid, str) or not appid:
            raise ConfigError("an official account needs a non-empty appid")
        self.appid = appid
        self.policy = TokenPolicy(appid=appid, secret=secret, mode=token_mode)
        self.base_url = base_url
        self.retry = retry
        self.budgets = CallBudgets(DEFAULT_BUDGETS if budgets is None else budgets)
        self.clock: Clock = clock or _SystemClock()
        self.timeout = timeout
        self._rng = rng or random.Random()
        self._max_replays = max_token_replays
        if max_token_replays < 0:
            raise UsageError("max_token_replays must be >= 0")

    def _now(self) -> dt.datetime:
        return self.clock.now()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return wait_seconds(exc, state.attempt_number, self.retry, self._rng)

    def _retry_if(self, call: ApiCall[Any]) -> tenacity.retry_base:
        return tenacity.retry_if_exception(
            lambda e: should_retry(e, idempotent=call.idempotent, policy=self.retry)
        )

    def _flow(self, call: ApiCall[T]) -> Flow[T]:
        return flows.authorized(call, max_replays=self._max_replays)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(appid={self.appid!r}, token_mode={self.policy.mode!r})"


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

    Raises:
        ConfigError: for a missing appid/secret or both ``http_client`` and ``transport``.
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

    # ----------------------------------------------------------------- driver

    def _client(self) -> httpx.Client:
        if self._http is None:
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

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
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
