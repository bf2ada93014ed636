"""What every channel adapter shares: capability and result records, and small helpers.

A channel is any object with ``name``, ``capabilities`` and ``send(batch)`` (or ``async def
send``) — see :class:`membermkt.core.ports.Channel`. Nothing here must be inherited; these
are helpers an adapter *calls*, so bookkeeping does not drift between adapters:

* :func:`check_batch` — refuse a batch the channel did not declare it can take;
* :func:`chunks` — split deliveries into batches of a size;
* :class:`ErrorTable` — a platform error code → :class:`SendOutcome` table, the one place an
  adapter classifies failures as retryable or permanent;
* :func:`results` — one :class:`SendResult` per delivery, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.core.ports import AsyncChannel, Channel
from membermkt.errors import PluginError, UsageError

__all__ = [
    "AsyncChannel",
    "Channel",
    "ChannelCapabilities",
    "Delivery",
    "ErrorTable",
    "SendOutcome",
    "SendResult",
    "check_batch",
    "check_channel",
    "chunks",
    "results",
]


def check_batch(capabilities: ChannelCapabilities, batch: Sequence[Delivery], name: str) -> None:
    """Refuse a batch larger than declared or mixing channels.

    Raises:
        UsageError: naming the channel and the limit.
    """
    if len(batch) > capabilities.max_batch_size:
        raise UsageError(
            f"channel {name!r} takes at most {capabilities.max_batch_size} deliveries per send, "
            f"got {len(batch)}"
        )
    for d in batch:
        if d.channel != name:
            raise UsageError(f"delivery {d.key!r} is for channel {d.channel!r}, not {name!r}")


def chunks(deliveries: Iterable[Delivery], size: int) -> Iterator[list[Delivery]]:
    """Consecutive batches of at most ``size`` deliveries.

    Raises:
        UsageError: for a size below 1.
    """
    if size < 1:
        raise UsageError(f"batch size must be >= 1, got {size}")
    buf: list[Delivery] = []
    for d in deliveries:
        buf.append(d)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def results(
    batch: Sequence[Delivery],
    outcome: SendOutcome,
    *,
    reason: str | None = None,
    retry_after: float | None = None,
) -> list[SendResult]:
    """The same outcome for every delivery of ``batch``, in order."""
    return [
        SendResult(key=d.key, outcome=outcome, reason=reason, retry_after=retry_after)
        for d in batch
    ]


def _codes(value: Iterable[Any]) -> frozenset[Any]:
    return frozenset(value)


@attrs.frozen(slots=True, kw_only=True)
class ErrorTable:
    """Platform error codes → outcome (retryable / permanent / unknown), with a default.

    Example::

        table = ErrorTable(retryable={-1, 45011}, permanent={43004, 48002}, default="permanent")
        table.outcome(43004)   # SendOutcome.PERMANENT
    """

    retryable: frozenset[Any] = attrs.field(default=frozenset(), converter=_codes)
    permanent: frozenset[Any] = attrs.field(default=frozenset(), converter=_codes)
    unknown: frozenset[Any] = attrs.field(default=frozenset(), converter=_codes)
    default: SendOutcome = attrs.field(default=SendOutcome.PERMANENT, converter=SendOutcome)

    def __attrs_post_init__(self) -> None:
        overlap = (self.retryable & self.permanent) | (self.retryable & self.unknown)
        overlap |= self.permanent & self.unknown
        if overlap:
            raise UsageError(f"error codes {sorted(map(str, overlap))} are in two classes")

    def outcome(self, code: Any) -> SendOutcome:
        """The outcome of error ``code``."""
        if code in self.retryable:
            return SendOutcome.RETRYABLE
        if code in self.permanent:
            return SendOutcome.PERMANENT
        if code in self.unknown:
            return SendOutcome.UNKNOWN
        return self.default

    def as_mapping(self) -> Mapping[Any, SendOutcome]:
        """Every listed code with its outcome."""
        out: dict[Any, SendOutcome] = dict.fromkeys(self.retryable, SendOutcome.RETRYABLE)
        out.update(dict.fromkeys(self.permanent, SendOutcome.PERMANENT))
        out.update(dict.fromkeys(self.unknown, SendOutcome.UNKNOWN))
        return out


def check_channel(obj: object, *, name: str = "", distribution: str | None = None) -> None:
    """Check that ``obj`` honours the channel protocol's shape.

    Raises:
        PluginError: naming what is missing.
    """
    label = name or getattr(obj, "name", None) or type(obj).__name__
    where = f" (from distribution {distribution!r})" if distribution else ""
    chan_name = getattr(obj, "name", None)
    if not isinstance(chan_name, str) or not chan_name:
        raise PluginError(
            f"channel {label!r}{where} needs a non-empty str `name`",
            name=str(label),
            distribution=distribution,
        )
    if not isinstance(getattr(obj, "capabilities", None), ChannelCapabilities):
        raise PluginError(
            f"channel {label!r}{where} needs `capabilities: ChannelCapabilities`",
            name=str(label),
            distribution=distribution,
        )
    if not callable(getattr(obj, "send", None)):
        raise PluginError(
            f"channel {label!r}{where} needs a `send(batch)` method",
            name=str(label),
            distribution=distribution,
        )
