"""Official-account channels (the ``Channel`` port): ``wechat.mass``, ``wechat.template``,
``wechat.custom`` — sync and async.

* ``wechat.mass`` — mass send by openid list. Deliveries of a batch with the same payload go
  out as one ``mass/send`` with a ``clientmsgid`` derived from their delivery keys, so
  re-sending the same batch is de-duplicated by the platform (45065 → sent, with the first
  ``msg_id``). A payload group of ONE delivery cannot use ``mass/send`` (40130); by default
  it falls back to a customer-service message (``single="custom"``: it reaches the member
  only inside the 48-hour window, otherwise it is a permanent 45015 failure, and an
  ambiguous failure of that fallback is reported ``unknown`` because custom sends have no
  idempotency key), or fails permanently (``single="fail"``).
* ``wechat.template`` / ``wechat.custom`` — one call per delivery, no idempotency key: an
  ambiguous transport failure is reported ``unknown``, never retried blindly.

Per-delivery outcomes come from the errcode table (:mod:`membermkt.wire.errcodes`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from membermkt.channels.wechat.api import messaging
from membermkt.channels.wechat.api._call import ApiCall
from membermkt.channels.wechat.client import AsyncOfficialAccount, OfficialAccount
from membermkt.channels.wechat.flows import chunks
from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.errors import (
    PlatformError,
    QuotaExceeded,
    RateLimitError,
    TransportError,
    UsageError,
)
from membermkt.wire.errcodes import OA_ERRCODES, ErrcodeTable, outcome_for

__all__ = [
    "AsyncWeChatCustomChannel",
    "AsyncWeChatMassChannel",
    "AsyncWeChatTemplateChannel",
    "WeChatCustomChannel",
    "WeChatMassChannel",
    "WeChatTemplateChannel",
    "classify_error",
]

MASS_RULES = (
    "mass: each follower receives at most 4 mass messages per calendar month",
    "mass/send: 2..10,000 openids per call; 100 calls/day, 60/minute",
    "clientmsgid de-duplicates the same batch for 24 hours (45065)",
)
WINDOW_RULES = (
    "custom: only inside the window opened by the follower's last interaction "
    "(message: 48 h; click/follow/scan: 1 min; 45015 outside, 45047 quota used)",
)
AMBIGUOUS_REASON = "transport:ambiguous"
"""The reason of a result whose request may have reached the platform."""
MASS_DEDUP_WINDOW = 24 * 3600.0
"""Seconds the platform remembers a ``clientmsgid`` (reference §1.4: the last 24 h)."""
TEMPLATE_RULES = ("template: the receiver must follow (43004); blocked users refuse (48002)",)


def classify_error(
    key: str, exc: BaseException, *, idempotent: bool, table: ErrcodeTable = OA_ERRCODES
) -> SendResult:
    """The :class:`SendResult` for a delivery whose call raised ``exc``.

    Transport failures are retryable when nothing can have reached the platform or the call
    carries an idempotency key, ``unknown`` otherwise; platform errors follow the errcode
    ``table`` (the official account's by default; WeCom passes its own); a client-side
    budget refusal is retryable after its window.

    Raises:
        BaseException: ``exc`` itself when it is not a membermkt send failure.
    """
    if isinstance(exc, TransportError):
        if not exc.ambiguous:
            return SendResult(key=key, outcome=SendOutcome.RETRYABLE, reason="transport")
        if idempotent:  # keyed: resending is safe, but the attempt may have taken effect
            return SendResult(key=key, outcome=SendOutcome.RETRYABLE, reason=AMBIGUOUS_REASON)
        return SendResult(key=key, outcome=SendOutcome.UNKNOWN, reason=AMBIGUOUS_REASON)
    if isinstance(exc, PlatformError):
        code = exc.errcode
        outcome = (
            outcome_for(code, table)
            if isinstance(code, int)
            else (SendOutcome.RETRYABLE if exc.retryable else SendOutcome.PERMANENT)
        )
        retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
        return SendResult(
            key=key, outcome=outcome, reason=f"errcode:{code}", retry_after=retry_after
        )
    if isinstance(exc, QuotaExceeded):
        return SendResult(
            key=key,
            outcome=SendOutcome.RETRYABLE,
            reason=f"quota:{exc.quota}",
            retry_after=getattr(exc, "retry_after", None),
        )
    if isinstance(exc, UsageError):
        return SendResult(key=key, outcome=SendOutcome.PERMANENT, reason=f"invalid:{exc}")
    raise exc


def _check_channel(batch: Sequence[Delivery], name: str) -> None:
    for d in batch:
        if d.channel != name:
            raise UsageError(f"delivery {d.key!r} is for channel {d.channel!r}, not {name!r}")


@attrs.frozen(slots=True)
class _Group:
    """Deliveries sharing a payload: one platform call (or a fallback for a single one)."""

    payload: Mapping[str, Any]
    deliveries: tuple[Delivery, ...]
    duplicates: tuple[Delivery, ...]


def _mass_groups(batch: Sequence[Delivery], max_size: int) -> list[_Group]:
    by_payload: dict[str, list[Delivery]] = {}
    for d in batch:
        by_payload.setdefault(_canonical(d.payload), []).append(d)
    groups: list[_Group] = []
    for ds in by_payload.values():
        payload = ds[0].payload
        seen: dict[str, Delivery] = {}
        dups: list[Delivery] = []
        for d in ds:
            if d.address in seen:
                dups.append(d)
            else:
                seen[d.address] = d
        for part in chunks(list(seen.values()), max_size):
            groups.append(_Group(payload, tuple(part), tuple(dups)))
            dups = []
    return groups


def _canonical(payload: Mapping[str, Any]) -> str:
    # Payloads hold nested JSON values (not hashable): group by their canonical JSON.
    return json.dumps(dict(payload), sort_keys=True, ensure_ascii=False, default=str)


def _mass_call(group: _Group, cid: str | None = None) -> ApiCall[messaging.MassSend]:
    cid = cid or messaging.clientmsgid_for(d.key for d in group.deliveries)
    openids = [d.address for d in group.deliveries]
    return messaging.send_mass(openids, group.payload, clientmsgid=cid)


def _sent(group: _Group, msg_id: str) -> list[SendResult]:
    out = [
        SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=msg_id)
        for d in group.deliveries
    ]
    out += [
        SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="duplicate_address")
        for d in group.duplicates
    ]
    return out


def _failed(group: _Group, exc: BaseException, *, idempotent: bool) -> list[SendResult]:
    out = [classify_error(d.key, exc, idempotent=idempotent) for d in group.deliveries]
    out += [
        SendResult(key=d.key, outcome=SendOutcome.PERMANENT, reason="duplicate_address")
        for d in group.duplicates
    ]
    return out


def _ordered(batch: Sequence[Delivery], results: list[SendResult]) -> list[SendResult]:
    by_key = {r.key: r for r in results}
    return [by_key[d.key] for d in batch]


def _template_call(d: Delivery) -> ApiCall[str]:
    p = d.payload
    tid, data = p.get("template_id"), p.get("data")
    if not isinstance(tid, str) or not isinstance(data, Mapping):
        raise UsageError("template payload needs 'template_id' (str) and 'data' (mapping)")
    return messaging.send_template(
        d.address, tid, data, url=p.get("url"), miniprogram=p.get("miniprogram")
    )


def _custom_call(d: Delivery) -> ApiCall[None]:
    return messaging.send_custom(d.address, d.payload, kf_account=d.payload.get("kf_account"))


_Builder: TypeAlias = Callable[[Delivery], ApiCall[Any]]
_ERRORS = (PlatformError, TransportError, QuotaExceeded, UsageError)


@attrs.frozen(slots=True)
class _Answer:
    """What the driver sends back into a channel flow: a call's result or its error."""

    value: Any = None
    error: BaseException | None = None


_SendFlow: TypeAlias = Generator[ApiCall[Any], _Answer, list[SendResult]]


def _single_flow(batch: Sequence[Delivery], name: str, build: _Builder) -> _SendFlow:
    # One call per delivery; no idempotency key, so an ambiguous failure is "unknown".
    _check_channel(batch, name)
    out: list[SendResult] = []
    for d in batch:
        try:
            call = build(d)
        except UsageError as exc:
            out.append(classify_error(d.key, exc, idempotent=False))
            continue
        answer = yield call
        if answer.error is not None:
            out.append(classify_error(d.key, answer.error, idempotent=False))
        else:
            pid = answer.value if isinstance(answer.value, str) else None
            out.append(SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=pid))
    return out


def _mass_flow(
    batch: Sequence[Delivery],
    name: str,
    single: str,
    max_size: int,
    request_key: str | None = None,
) -> _SendFlow:
    # Payload groups → one mass/send each (keyed); a group of one → the single-mode rule.
    # With a ledger ``request_key`` the clientmsgid derives from it and the group's payload
    # (not from the keys), so the ledger's batch row fixes the id before the call.
    _check_channel(batch, name)
    results: list[SendResult] = []
    groups = _mass_groups(batch, max_size)
    for index, group in enumerate(groups):
        if len(group.deliveries) == 1:
            if single == "fail":
                exc = PlatformError(
                    40130, "mass/send needs two openids", "/cgi-bin/message/mass/send"
                )
                results += _failed(group, exc, idempotent=True)
                continue
            try:
                call: ApiCall[Any] = _custom_call(group.deliveries[0])
            except UsageError as exc:
                results += _failed(group, exc, idempotent=False)
                continue
            answer = yield call
            if answer.error is not None:
                results += _failed(group, answer.error, idempotent=False)
            else:
                results += _sent(group, "custom")
            continue
        cid = None
        if request_key is not None:
            cid = (
                request_key[: messaging.CLIENTMSGID_MAX_BYTES]
                if len(groups) == 1
                else messaging.clientmsgid_for(
                    [request_key, _canonical(group.payload), str(index)], prefix="mb"
                )
            )
        try:
            call = _mass_call(group, cid)
        except UsageError as exc:
            results += _failed(group, exc, idempotent=True)
            continue
        answer = yield call
        if answer.error is not None:
            results += _failed(group, answer.error, idempotent=True)
        else:
            results += _sent(group, answer.value.msg_id)
    return _ordered(batch, results)


_JOB_SENT = frozenset({"SEND_SUCCESS", "SENDING", "DELETE"})
"""``mass/get`` statuses of a job the platform accepted (ref §1.4; ``DELETE``: sent, then its
article deleted)."""


def _lookup_flow(pairs: Sequence[tuple[Delivery, str]]) -> _SendFlow:
    # One mass/get per job id; a delivery of an accepted job is sent (the job's result
    # callback later says how many followers it reached), of a failed job failed.
    by_job: dict[str, list[Delivery]] = {}
    for d, msg_id in pairs:
        by_job.setdefault(msg_id, []).append(d)
    out: dict[str, SendResult] = {}
    for msg_id, ds in by_job.items():
        status = None
        if msg_id.isdigit():  # "custom" marks the single-recipient fallback: no job
            answer = yield messaging.mass_status(msg_id)
            status = None if answer.error is not None else answer.value.status
        for d in ds:
            if status in _JOB_SENT:
                out[d.key] = SendResult(key=d.key, outcome=SendOutcome.SENT, platform_id=msg_id)
            elif status == "SEND_FAIL":
                out[d.key] = SendResult(
                    key=d.key, outcome=SendOutcome.PERMANENT, reason="mass/get:SEND_FAIL"
                )
            else:
                out[d.key] = SendResult(
                    key=d.key, outcome=SendOutcome.UNKNOWN, reason=f"mass/get:{status}"
                )
    return [out[d.key] for d, _ in pairs]


def _drive(client: OfficialAccount, flow: _SendFlow) -> list[SendResult]:
    try:
        call = next(flow)
        while True:
            try:
                answer = _Answer(value=client.call(call))
            except _ERRORS as exc:
                answer = _Answer(error=exc)
            call = flow.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _adrive(client: AsyncOfficialAccount, flow: _SendFlow) -> list[SendResult]:
    try:
        call = next(flow)
        while True:
            try:
                answer = _Answer(value=await client.call(call))
            except _ERRORS as exc:
                answer = _Answer(error=exc)
            call = flow.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _capabilities(client: OfficialAccount | AsyncOfficialAccount, kind: str) -> ChannelCapabilities:
    if kind == "mass":
        return ChannelCapabilities(
            max_batch_size=messaging.MASS_OPENIDS_MAX,
            min_batch_size=1,
            idempotent=True,
            rate_per_second=1.0,
            address_namespace=client.appid,
            rules=MASS_RULES,
        )
    return ChannelCapabilities(
        max_batch_size=100,
        idempotent=False,
        rate_per_second=None,
        address_namespace=client.appid,
        rules=TEMPLATE_RULES if kind == "template" else WINDOW_RULES,
    )


def _check_single(single: str) -> str:
    if single not in ("custom", "fail"):
        raise UsageError(f"single must be 'custom' or 'fail', got {single!r}")
    return single


class WeChatTemplateChannel:
    """``wechat.template``: template messages (payload ``{"template_id", "data", "url"?,
    "miniprogram"?}``), one call per delivery.

    Args:
        client: the account's :class:`OfficialAccount`.
        name: the channel name.
    """

    _kind = "template"

    def __init__(self, client: OfficialAccount, *, name: str = "wechat.template") -> None:
        self.client = client
        self.name = name
        self.capabilities = _capabilities(client, self._kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.appid!r})"

    def _flow(self, batch: Sequence[Delivery]) -> _SendFlow:
        build = _template_call if self._kind == "template" else _custom_call
        return _single_flow(batch, self.name, build)

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Send each delivery; one result per delivery, in order (never raises for a
        per-delivery failure).

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        return _drive(self.client, self._flow(batch))


class WeChatCustomChannel(WeChatTemplateChannel):
    """``wechat.custom``: customer-service messages inside the 48-hour window (payload
    ``{"msgtype": "text", "text": {"content": …}}``), one call per delivery."""

    _kind = "custom"

    def __init__(self, client: OfficialAccount, *, name: str = "wechat.custom") -> None:
        super().__init__(client, name=name)


class WeChatMassChannel:
    """``wechat.mass``: mass send by openid list with a derived ``clientmsgid``.

    Args:
        client: the account's :class:`OfficialAccount`.
        single: what to do with a payload group of one delivery: ``"custom"`` (default)
            or ``"fail"`` (see the module docs).
        name: the channel name.

    Raises:
        UsageError: for an unknown ``single`` mode.
    """

    def __init__(
        self, client: OfficialAccount, *, single: str = "custom", name: str = "wechat.mass"
    ) -> None:
        self.client = client
        self.single = _check_single(single)
        self.name = name
        self.capabilities = _capabilities(client, "mass")
        self.dedup_window = MASS_DEDUP_WINDOW
        self.keyed_batch_min = 2  # a lone recipient goes out unkeyed (custom fallback)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.appid!r}, single={self.single!r})"

    def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """Send a batch; one result per delivery, in order.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        flow = _mass_flow(batch, self.name, self.single, self.capabilities.max_batch_size)
        return _drive(self.client, flow)

    def send_keyed(self, batch: Sequence[Delivery], request_key: str) -> Sequence[SendResult]:
        """Send a ledger batch whose ``clientmsgid`` derives from ``request_key`` (the
        runner's batch row): resending the same batch with the same key is de-duplicated
        by the platform for 24 hours (45065 → sent).

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        flow = _mass_flow(
            batch, self.name, self.single, self.capabilities.max_batch_size, request_key
        )
        return _drive(self.client, flow)

    def lookup(self, pairs: Sequence[tuple[Delivery, str]]) -> Sequence[SendResult]:
        """What the platform knows of deliveries whose mass job id (``msg_id``) is known:
        ``message/mass/get`` per job — accepted (``SEND_SUCCESS``, ``SENDING``, ``DELETE``)
        → sent, ``SEND_FAIL`` → permanent, no answer → unknown. The runner asks this
        instead of resending a batch past the 24-hour ``clientmsgid`` window."""
        return _drive(self.client, _lookup_flow(pairs))


class AsyncWeChatTemplateChannel:
    """The async twin of :class:`WeChatTemplateChannel`."""

    _kind = "template"

    def __init__(self, client: AsyncOfficialAccount, *, name: str = "wechat.template") -> None:
        self.client = client
        self.name = name
        self.capabilities = _capabilities(client, self._kind)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.appid!r})"

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """See :meth:`WeChatTemplateChannel.send`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        build = _template_call if self._kind == "template" else _custom_call
        return await _adrive(self.client, _single_flow(batch, self.name, build))


class AsyncWeChatCustomChannel(AsyncWeChatTemplateChannel):
    """The async twin of :class:`WeChatCustomChannel`."""

    _kind = "custom"

    def __init__(self, client: AsyncOfficialAccount, *, name: str = "wechat.custom") -> None:
        super().__init__(client, name=name)


class AsyncWeChatMassChannel:
    """The async twin of :class:`WeChatMassChannel`.

    Raises:
        UsageError: for an unknown ``single`` mode.
    """

    def __init__(
        self, client: AsyncOfficialAccount, *, single: str = "custom", name: str = "wechat.mass"
    ) -> None:
        self.client = client
        self.single = _check_single(single)
        self.name = name
        self.capabilities = _capabilities(client, "mass")
        self.dedup_window = MASS_DEDUP_WINDOW
        self.keyed_batch_min = 2  # a lone recipient goes out unkeyed (custom fallback)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client.appid!r}, single={self.single!r})"

    async def send(self, batch: Sequence[Delivery]) -> Sequence[SendResult]:
        """See :meth:`WeChatMassChannel.send`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        flow = _mass_flow(batch, self.name, self.single, self.capabilities.max_batch_size)
        return await _adrive(self.client, flow)

    async def send_keyed(self, batch: Sequence[Delivery], request_key: str) -> Sequence[SendResult]:
        """See :meth:`WeChatMassChannel.send_keyed`.

        Raises:
            UsageError: for a delivery addressed to another channel.
        """
        flow = _mass_flow(
            batch, self.name, self.single, self.capabilities.max_batch_size, request_key
        )
        return await _adrive(self.client, flow)

    async def lookup(self, pairs: Sequence[tuple[Delivery, str]]) -> Sequence[SendResult]:
        """See :meth:`WeChatMassChannel.lookup`."""
        return await _adrive(self.client, _lookup_flow(pairs))
