"""``SmsChannel`` / ``AsyncSmsChannel``: membermkt channels for the Acme SMS gateway.

Both drivers share the request building and response parsing below (sans-I/O), so they
cannot drift. Nothing is done at import or construction: the HTTP client is created on the
first send.

A delivery's address is the member's phone identity (a keyed blind index). Given
``numbers=StoreNumbers(store, phones)`` (:mod:`membermkt_sms.numbers`), the channel texts
the real number, decrypted from the store at send time; a delivery without a usable number
is a permanent failure and is not sent. Without ``numbers`` the address is sent as given
(a gateway that maps its own recipient ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from membermkt.channels.base import ErrorTable, check_batch, results
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.errors import ConfigError, TransportError
from membermkt_sms.numbers import Number, NumberLookup

__all__ = ["ERRORS", "AsyncSmsChannel", "SmsChannel", "build_request", "parse_response"]

MAX_BATCH = 100
"""The gateway accepts at most 100 messages per request."""

ERRORS = ErrorTable(
    retryable={2001, 3001},
    permanent={1001, 1002},
    default=SendOutcome.PERMANENT,
)
"""Gateway codes → outcomes (see the README table)."""


def build_request(
    base_url: str,
    api_key: str,
    batch: Sequence[Delivery],
    to: Mapping[str, str] | None = None,
) -> httpx.Request:
    """The HTTP request for one batch (``to``: recipient per delivery key; default the
    delivery's address)."""
    body = {
        "messages": [
            {
                "id": d.key,
                "to": d.address if to is None else to[d.key],
                "text": str(d.payload.get("text", "")),
            }
            for d in batch
        ]
    }
    return httpx.Request(
        "POST",
        f"{base_url.rstrip('/')}/v1/messages",
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse_response(batch: Sequence[Delivery], response: httpx.Response) -> list[SendResult]:
    """One result per delivery, in order.

    Raises:
        ConfigError: for a rejected API key (nothing was sent).
        TransportError: for a 504 (the gateway may have processed the batch: ambiguous).
    """
    status = response.status_code
    if status == 401:
        raise ConfigError("Acme SMS refused the API key (HTTP 401)")
    if status == 429:
        return results(
            batch, SendOutcome.RETRYABLE, reason="http:429", retry_after=_retry_after(response)
        )
    if status == 503:
        return results(batch, SendOutcome.RETRYABLE, reason="http:503")
    if status == 504 or status >= 500:
        raise TransportError(f"Acme SMS answered HTTP {status}", api="/v1/messages", ambiguous=True)
    if status != 200:
        return results(batch, SendOutcome.PERMANENT, reason=f"http:{status}")
    data: dict[str, Any] = response.json()
    by_id = {r.get("id"): r for r in data.get("results", [])}
    out: list[SendResult] = []
    for d in batch:
        r = by_id.get(d.key)
        if r is None:
            out.append(
                SendResult(key=d.key, outcome=SendOutcome.UNKNOWN, reason="missing in answer")
            )
        elif r.get("status") == "accepted":
            out.append(
                SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=r.get("message_id"))
            )
        else:
            code = r.get("code")
            out.append(
                SendResult(
                    key=d.key,
                    outcome=ERRORS.outcome(code),
                    reason=f"code:{code}",
                    retry_after=r.get("retry_after"),
                )
            )
    return out


def _capabilities(idempotent: bool, max_batch_size: int) -> ChannelCapabilities:
    return ChannelCapabilities(
        max_batch_size=max_batch_size,
        idempotent=idempotent,
        address_kind="phone",
        rules=("gateway de-duplicates message ids" if idempotent else "no de-duplication",),
    )


class _Base:
    name = "sms.example"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str = "test-key",
        *,
        idempotent: bool = True,
        max_batch_size: int = MAX_BATCH,
        timeout: float = 10.0,
        name: str | None = None,
        numbers: NumberLookup | None = None,
    ) -> None:
        self.numbers = numbers
        if not 1 <= max_batch_size <= MAX_BATCH:
            raise ConfigError(f"max_batch_size must be within 1..{MAX_BATCH}")
        if name:
            self.name = name
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.capabilities = _capabilities(idempotent, max_batch_size)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.base_url!r}>"

    def _recipients(
        self, batch: Sequence[Delivery]
    ) -> tuple[list[Delivery], dict[str, str] | None, dict[str, SendResult]]:
        """(deliveries to send, their numbers, results of those that cannot be sent)."""
        if self.numbers is None:
            return list(batch), None, {}
        found: Mapping[str, Number] = self.numbers(batch)
        to: dict[str, str] = {}
        refused: dict[str, SendResult] = {}
        for d in batch:
            n = found.get(d.key)
            if n is not None and n.to:
                to[d.key] = n.to
            else:
                reason = n.reason if n is not None else "no phone number"
                refused[d.key] = SendResult(
                    key=d.key, outcome=SendOutcome.PERMANENT, reason=f"no number: {reason}"
                )
        return [d for d in batch if d.key in to], to, refused

    @staticmethod
    def _merge(
        batch: Sequence[Delivery], sent: list[SendResult], refused: dict[str, SendResult]
    ) -> list[SendResult]:
        by_key = {r.key: r for r in sent} | refused
        return [by_key[d.key] for d in batch]


class SmsChannel(_Base):
    """Sync SMS channel.

    Args:
        base_url: the gateway URL.
        api_key: the API key.
        idempotent: whether the gateway account de-duplicates message ids (declare what
            your account really does: the runner relies on it).
        max_batch_size: messages per request (≤ 100).
        timeout: seconds per request.
        transport: an httpx transport (e.g. ``SmsGateway().transport()``).
        name: override the channel name.
        numbers: how a delivery's phone identity becomes the real number
            (:class:`~membermkt_sms.numbers.StoreNumbers`); without it the address is sent.

    Raises:
        ConfigError: for a batch size above the gateway's limit.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str = "test-key",
        *,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key, **kwargs)
        self._transport = transport
        self._client: httpx.Client | None = None

    def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        """Send one batch; one result per delivery, in order.

        Raises:
            ConfigError: bad API key.
            TransportError: no usable answer (``ambiguous`` says whether it may have been sent).
            UsageError: a batch over ``max_batch_size`` or for another channel.
        """
        check_batch(self.capabilities, batch, self.name)
        if not batch:
            return []
        todo, to, refused = self._recipients(batch)
        if not todo:
            return self._merge(batch, [], refused)
        if self._client is None:
            self._client = httpx.Client(transport=self._transport, timeout=self.timeout)
        request = build_request(self.base_url, self.api_key, todo, to)
        try:
            response = self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportError(str(exc), api="/v1/messages", ambiguous=False) from exc
        except httpx.HTTPError as exc:
            raise TransportError(str(exc), api="/v1/messages", ambiguous=True) from exc
        return self._merge(batch, parse_response(todo, response), refused)

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncSmsChannel(_Base):
    """Async twin of :class:`SmsChannel` (same arguments; ``transport`` is an async one)."""

    name = "sms.example"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str = "test-key",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key, **kwargs)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        """Send one batch; one result per delivery, in order.

        Raises:
            ConfigError: bad API key.
            TransportError: no usable answer.
            UsageError: a batch over ``max_batch_size`` or for another channel.
        """
        check_batch(self.capabilities, batch, self.name)
        if not batch:
            return []
        todo, to, refused = self._recipients(batch)
        if not todo:
            return self._merge(batch, [], refused)
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, timeout=self.timeout)
        request = build_request(self.base_url, self.api_key, todo, to)
        try:
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportError(str(exc), api="/v1/messages", ambiguous=False) from exc
        except httpx.HTTPError as exc:
            raise TransportError(str(exc), api="/v1/messages", ambiguous=True) from exc
        return self._merge(batch, parse_response(todo, response), refused)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
