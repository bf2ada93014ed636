"""Capture what a campaign sends, without a platform.

* :func:`capture_sends` — a context manager that records every delivery a channel is asked
  to send (and its result) into a list, structlog-``capture_logs`` style::

      with capture_sends(channel) as sent:
          CampaignRunner(store, channel).run("spring")
      assert {s.delivery.address for s in sent} == {...}

* :class:`RecordingChannel` — a working in-memory channel for tests and notebooks: it
  "delivers" to a record, can be idempotent (re-sends of a key are acknowledged but not
  delivered twice), and lets a test script failures per delivery.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from membermkt.core.delivery import ChannelCapabilities, Delivery, SendOutcome, SendResult
from membermkt.errors import UsageError

__all__ = ["CapturedSend", "RecordingChannel", "capture_sends"]


@attrs.frozen(slots=True, kw_only=True)
class CapturedSend:
    """One delivery handed to a channel, and what the channel answered (``None`` if it
    raised)."""

    delivery: Delivery
    result: SendResult | None


@contextlib.contextmanager
def capture_sends(channel: Any) -> Iterator[list[CapturedSend]]:
    """Record every delivery ``channel.send`` receives while the block runs.

    Works for sync and async channels; the channel still sends. The instance's ``send`` is
    wrapped for the duration of the block and restored afterwards.

    Raises:
        UsageError: when ``channel`` has no ``send``.
    """
    original = getattr(channel, "send", None)
    if not callable(original):
        raise UsageError(f"{channel!r} has no send() to capture")
    own = "send" in getattr(channel, "__dict__", {})
    captured: list[CapturedSend] = []
    lock = threading.Lock()

    def record(batch: Sequence[Delivery], res: Sequence[SendResult] | None) -> None:
        by_key = {r.key: r for r in res or ()}
        with lock:
            captured.extend(CapturedSend(delivery=d, result=by_key.get(d.key)) for d in batch)

    if inspect.iscoroutinefunction(original):

        async def asend(batch: Sequence[Delivery]) -> Sequence[SendResult]:
            try:
                res: Sequence[SendResult] = await original(batch)
            except BaseException:
                record(batch, None)
                raise
            record(batch, res)
            return res

        channel.send = asend
    else:

        def send(batch: Sequence[Delivery]) -> Sequence[SendResult]:
            try:
                res: Sequence[SendResult] = original(batch)
            except BaseException:
                record(batch, None)
                raise
            record(batch, res)
            return res

        channel.send = send
    try:
        yield captured
    finally:
        if own:
            channel.send = original
        else:
            del channel.send  # the class's method shows again


Script = Callable[[Delivery, int], "SendOutcome | SendResult | None"]
"""``script(delivery, attempt) -> outcome``: what the channel answers for a delivery on its
``attempt``-th send (1-based); ``None`` means "sent"."""


class RecordingChannel:
    """An in-memory channel: records deliveries, optionally idempotent, scriptable failures.

    Args:
        name: the channel name.
        capabilities: the declared capabilities (default: batches of 100, not idempotent).
        script: per-delivery answers (:data:`Script`); by default everything is sent.

    Attributes:
        received: key → how many times the "platform" delivered it (the duplicate counter).
        attempts: key → how many times it was handed to ``send``.
        batches: sizes of every ``send`` call.
    """

    def __init__(
        self,
        name: str = "test.recording",
        *,
        capabilities: ChannelCapabilities | None = None,
        script: Script | None = None,
    ) -> None:
        self.name = name
        self.capabilities = capabilities or ChannelCapabilities(max_batch_size=100)
        self.script = script
        self.received: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.batches: list[int] = []
        self.payloads: dict[str, Delivery] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<RecordingChannel {self.name!r} received={sum(self.received.values())} "
            f"calls={len(self.batches)}>"
        )

    def send(self, batch: Sequence[Delivery]) -> list[SendResult]:
        """Deliver ``batch`` to the record (see the class docstring).

        Raises:
            UsageError: for a batch larger than ``capabilities.max_batch_size``.
        """
        if len(batch) > self.capabilities.max_batch_size:
            raise UsageError(
                f"{self.name}: batch of {len(batch)} > max {self.capabilities.max_batch_size}"
            )
        out: list[SendResult] = []
        with self._lock:
            self.batches.append(len(batch))
            for d in batch:
                self.attempts[d.key] += 1
                answer = self.script(d, self.attempts[d.key]) if self.script else None
                if isinstance(answer, SendResult):
                    result = answer
                else:
                    outcome = SendOutcome.SENT if answer is None else SendOutcome(answer)
                    result = SendResult(
                        key=d.key,
                        outcome=outcome,
                        reason=None if outcome is SendOutcome.SENT else f"scripted:{outcome}",
                        platform_id=f"p-{d.key[:12]}" if outcome is SendOutcome.SENT else None,
                    )
                # "unknown" means: the platform did deliver, but the answer was lost
                delivered = result.outcome in (
                    SendOutcome.SENT,
                    SendOutcome.PENDING,
                    SendOutcome.UNKNOWN,
                )
                if delivered and not (self.capabilities.idempotent and self.received[d.key]):
                    self.received[d.key] += 1
                    self.payloads[d.key] = d
                out.append(result)
        return out

    @property
    def duplicates(self) -> int:
        """Deliveries the platform received more than once."""
        return sum(1 for n in self.received.values() if n > 1)
