"""What both drivers share: default call budgets, httpx conversions and the
configuration base class (no I/O here)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from typing import Any, TypeVar

import httpx
import tenacity

from membermkt.channels.wechat import flows
from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.token import TokenPolicy
from membermkt.core.accounts import AccountType, channel_rules
from membermkt.core.accounts import account_type as to_account_type
from membermkt.core.ports import Clock
from membermkt.core.quotas import ChannelRules
from membermkt.errors import ConfigError, TransportError, UsageError
from membermkt.security.redact import redact
from membermkt.wire.budget import CallBudget, CallBudgets
from membermkt.wire.http import Flow, HttpRequest, HttpResponse
from membermkt.wire.retry import RetryPolicy, should_retry, wait_seconds

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
    CallBudget("/cgi-bin/menu/addconditional", per_day=2000),
    CallBudget("/cgi-bin/menu/delconditional", per_day=2000),
    CallBudget("/cgi-bin/menu/trymatch", per_day=20_000),
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
    # (redacted: an httpx error may quote the request URL, access_token and all)
    return TransportError(f"{api}: {kind}: {redact(str(exc))}", api=api, ambiguous=ambiguous)


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
        account_type: AccountType | str = AccountType.SERVICE,
    ) -> None:
        if not isinstance(appid, str) or not appid:
            raise ConfigError("an official account needs a non-empty appid")
        self.appid = appid
        self.account_type = to_account_type(account_type)
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

    def channel_rules(self, channel: str) -> ChannelRules:
        """The platform rules of a built-in channel on this account's type (for
        ``Campaign(rules=...)``, :func:`~membermkt.core.campaigns.validate`)."""
        return channel_rules(channel, self.account_type)

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
