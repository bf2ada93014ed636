"""The channel contract suite: prove a channel adapter honours the ``Channel`` protocol.

In your plugin's tests, subclass :class:`ChannelContract` and answer a few fixtures::

    import pytest
    from membermkt.testing.contract import ChannelContract, Requirements

    class MyRequirements(Requirements):
        idempotency_keys = True          # resending a key never sends twice
        max_batch_size = 100
        oversize = "refuse"              # or "split"
        error_codes = {1001: "permanent", 3001: "retryable"}
        entry_point = "sms.acme"

    class TestAcmeSms(ChannelContract):
        @pytest.fixture
        def requirements(self):
            return MyRequirements()

        @pytest.fixture
        def platform(self):             # your emulator or sandbox
            return AcmeEmulator()

        @pytest.fixture
        def channel_factory(self, platform):
            return lambda: AcmeChannel(transport=platform.transport())

        @pytest.fixture
        def make_deliveries(self, platform):   # deliveries the platform will accept
            ...

        @pytest.fixture
        def received(self, platform):          # key -> times the platform delivered it
            return lambda key: platform.received[key]

        @pytest.fixture
        def inject_error(self, platform):      # make the next send answer this code
            return lambda code: platform.fail_next_with(code)

Every test is named after the rule it enforces. Tests that need a capability are skipped,
with the reason, when :class:`Requirements` declares it closed; a capability declared open
but failing is a failure. Unknown requirement names are an error (a typo must not silently
skip tests).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from membermkt.channels import registry
from membermkt.core.delivery import (
    ChannelCapabilities,
    Delivery,
    DeliveryStatus,
    SendOutcome,
    SendResult,
)
from membermkt.core.ports import AsyncChannel, Channel
from membermkt.errors import PluginError, UsageError

__all__ = ["ChannelContract", "Requirements", "make_delivery"]

_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Requirements:
    """Capability answers the suite asks about (class attributes; subclass to answer).

    Attributes:
        idempotency_keys: resending a delivery with the same key never sends it twice.
        partial_batch_failure: one bad delivery in a batch fails alone (needs the
            ``make_invalid_delivery`` fixture).
        max_batch_size: the batch limit the channel must declare (``None``: not checked).
        oversize: what the channel does with a batch above its limit: ``"refuse"`` (raises
            ``UsageError``) or ``"split"`` (sends it in several calls).
        error_codes: platform error code → expected outcome (``"retryable"``,
            ``"permanent"``, ``"unknown"``), checked through the ``inject_error`` fixture.
        transient_error: an error code that is retryable (used by the stateful test).
        async_variant: the plugin also offers an async channel (``async_channel_factory``).
        entry_point: the name registered under the ``membermkt.channels`` entry-point group.
        stateful_examples: examples of the stateful crash/resume test.
    """

    idempotency_keys: ClassVar[bool] = False
    partial_batch_failure: ClassVar[bool] = False
    max_batch_size: ClassVar[int | None] = None
    oversize: ClassVar[str] = "refuse"
    error_codes: ClassVar[Mapping[Any, str]] = {}
    transient_error: ClassVar[Any] = None
    async_variant: ClassVar[bool] = False
    entry_point: ClassVar[str | None] = None
    stateful_examples: ClassVar[int] = 25

    _known: ClassVar[frozenset[str]] = frozenset(
        {
            "idempotency_keys",
            "partial_batch_failure",
            "max_batch_size",
            "oversize",
            "error_codes",
            "transient_error",
            "async_variant",
            "entry_point",
            "stateful_examples",
        }
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = {
            n for n in vars(cls) if not n.startswith("_") and not callable(getattr(cls, n))
        } - cls._known
        if unknown:
            raise PluginError(
                f"{cls.__name__}: unknown requirement(s) {sorted(unknown)}; known: "
                f"{sorted(cls._known)}"
            )
        if cls.oversize not in ("refuse", "split"):
            raise PluginError(f"{cls.__name__}.oversize must be 'refuse' or 'split'")
        for code, outcome in cls.error_codes.items():
            if outcome not in ("retryable", "permanent", "unknown"):
                raise PluginError(f"{cls.__name__}.error_codes[{code!r}]: bad outcome {outcome!r}")


def make_delivery(
    channel: str, address: str, *, key: str | None = None, **payload: Any
) -> Delivery:
    """A delivery for contract tests (unique key unless given)."""
    return Delivery(
        key=key or uuid.uuid4().hex,
        campaign_id="contract",
        member_id=f"member-{address}",
        channel=channel,
        address=address,
        variant="A",
        payload=payload,
    )


def _run(channel: Any, batch: Sequence[Delivery]) -> Sequence[SendResult]:
    if inspect.iscoroutinefunction(channel.send):
        result: Sequence[SendResult] = asyncio.run(channel.send(batch))
        return result
    sync_result: Sequence[SendResult] = channel.send(batch)
    return sync_result


class ChannelContract:
    """Behaviour every channel must have. Subclasses provide the fixtures listed in the
    module docstring; ``channel`` defaults to ``channel_factory()``."""

    # ------------------------------------------------------------------ fixtures to provide

    @pytest.fixture
    def requirements(self) -> Requirements:
        return Requirements()

    @pytest.fixture
    def channel_factory(self) -> Callable[[], Any]:
        raise pytest.UsageError("ChannelContract subclasses must define `channel_factory`")

    @pytest.fixture
    def make_deliveries(self) -> Callable[[int], list[Delivery]]:
        raise pytest.UsageError("ChannelContract subclasses must define `make_deliveries`")

    @pytest.fixture
    def received(self) -> Callable[[str], int]:
        raise pytest.UsageError("ChannelContract subclasses must define `received`")

    @pytest.fixture
    def inject_error(self) -> Callable[[Any], None] | None:
        return None

    @pytest.fixture
    def make_invalid_delivery(self) -> Callable[[], Delivery] | None:
        return None

    @pytest.fixture
    def async_channel_factory(self) -> Callable[[], Any] | None:
        return None

    @pytest.fixture
    def pass_time(self) -> Callable[[float], None] | None:
        """Move the platform's clock on by this many seconds (``None``: it cannot be
        moved). The suite lets a minute pass before re-sending a key: a platform may refuse
        a key retried sooner (WeChat 45066, "retry the same clientmsgid after >= 60 s")."""
        return None

    @pytest.fixture
    def channel(self, channel_factory: Callable[[], Any]) -> Any:
        return channel_factory()

    # ------------------------------------------------------------------ shape

    def test_name_and_capabilities_are_well_formed(
        self, channel: Any, requirements: Requirements
    ) -> None:
        """Rule: a non-empty name, ChannelCapabilities, a send; declared answers match."""
        assert isinstance(channel.name, str)
        assert channel.name
        assert isinstance(channel.capabilities, ChannelCapabilities)
        assert isinstance(channel, Channel | AsyncChannel)
        caps = channel.capabilities
        if requirements.max_batch_size is not None:
            assert caps.max_batch_size == requirements.max_batch_size
        assert caps.idempotent == requirements.idempotency_keys, (
            "capabilities.idempotent must equal Requirements.idempotency_keys"
        )

    def test_one_result_per_delivery_in_order(
        self, channel: Any, make_deliveries: Callable[[int], list[Delivery]]
    ) -> None:
        """Rule: send(batch) returns exactly one classified result per delivery, in order."""
        caps = channel.capabilities
        n = max(caps.min_batch_size, min(caps.max_batch_size, 5))
        batch = make_deliveries(n)
        res = _run(channel, batch)
        assert [r.key for r in res] == [d.key for d in batch]
        assert all(isinstance(r, SendResult) for r in res)
        assert all(r.outcome in SendOutcome for r in res)
        assert {r.outcome for r in res} <= {SendOutcome.SENT, SendOutcome.PENDING}

    def test_full_batch_is_accepted(
        self, channel: Any, make_deliveries: Callable[[int], list[Delivery]]
    ) -> None:
        """Rule: a batch of exactly max_batch_size is accepted."""
        batch = make_deliveries(channel.capabilities.max_batch_size)
        assert len(_run(channel, batch)) == len(batch)

    def test_oversized_batch_is_refused_or_split(
        self,
        channel: Any,
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
        received: Callable[[str], int],
    ) -> None:
        """Rule: a batch over the declared maximum is refused (nothing sent) or split."""
        batch = make_deliveries(channel.capabilities.max_batch_size + 1)
        if requirements.oversize == "refuse":
            with pytest.raises(UsageError):
                _run(channel, batch)
            assert all(received(d.key) == 0 for d in batch)
        else:
            res = _run(channel, batch)
            assert [r.key for r in res] == [d.key for d in batch]

    def test_resending_a_key_never_sends_twice(
        self,
        channel: Any,
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
        received: Callable[[str], int],
        pass_time: Callable[[float], None] | None,
    ) -> None:
        """Rule: with idempotency keys, a re-send (a minute later) is acknowledged but not
        delivered again."""
        if not requirements.idempotency_keys:
            pytest.skip("requirements.idempotency_keys is closed: the channel is not idempotent")
        batch = make_deliveries(max(2, channel.capabilities.min_batch_size))
        first = _run(channel, batch)
        if pass_time is not None:
            pass_time(61.0)
        second = _run(channel, batch)
        assert {r.outcome for r in first} <= {SendOutcome.SENT, SendOutcome.PENDING}
        assert {r.outcome for r in second} <= {SendOutcome.SENT, SendOutcome.PENDING}
        assert all(received(d.key) == 1 for d in batch)

    def test_error_codes_map_to_their_class(
        self,
        channel_factory: Callable[[], Any],
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
        inject_error: Callable[[Any], None] | None,
    ) -> None:
        """Rule: each platform error code is classified retryable / permanent / unknown."""
        if not requirements.error_codes:
            pytest.skip("requirements.error_codes is empty: no error classification declared")
        if inject_error is None:
            pytest.fail("requirements.error_codes needs the `inject_error` fixture")
        for code, expected in requirements.error_codes.items():
            channel = channel_factory()
            batch = make_deliveries(channel.capabilities.min_batch_size)
            inject_error(code)
            res = _run(channel, batch)
            assert {r.outcome.value for r in res} == {expected}, f"error code {code!r}"

    def test_partial_batch_failure_is_per_delivery(
        self,
        channel: Any,
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
        make_invalid_delivery: Callable[[], Delivery] | None,
        received: Callable[[str], int],
    ) -> None:
        """Rule: one refused delivery fails alone; the rest of the batch is sent."""
        if not requirements.partial_batch_failure:
            pytest.skip("requirements.partial_batch_failure is closed")
        if make_invalid_delivery is None:
            pytest.fail("partial_batch_failure needs the `make_invalid_delivery` fixture")
        good = make_deliveries(max(2, channel.capabilities.min_batch_size))
        bad = make_invalid_delivery()
        res = {r.key: r for r in _run(channel, [*good, bad])}
        assert res[bad.key].outcome is SendOutcome.PERMANENT
        assert res[bad.key].reason
        assert all(res[d.key].outcome is SendOutcome.SENT for d in good)
        assert received(bad.key) == 0

    def test_no_io_at_import_or_construction(
        self, channel_factory: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Rule: importing the adapter's module (in a fresh interpreter) and constructing the
        channel open no network connection."""
        module = type(channel_factory()).__module__
        probe = (
            "import socket, sys\n"
            "def refuse(*a, **k):\n"
            "    raise SystemExit('network connection at import')\n"
            "socket.socket.connect = refuse\n"
            "socket.create_connection = refuse\n"
            f"import {module}\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr or done.stdout

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the channel opened a network connection in its constructor")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        channel_factory()

    def test_sync_and_async_variants_agree(
        self,
        channel_factory: Callable[[], Any],
        async_channel_factory: Callable[[], Any] | None,
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
    ) -> None:
        """Rule: the sync and async channels give the same results for the same script."""
        if not requirements.async_variant:
            pytest.skip("requirements.async_variant is closed: no async channel")
        if async_channel_factory is None:
            pytest.fail("async_variant needs the `async_channel_factory` fixture")
        sync_ch, async_ch = channel_factory(), async_channel_factory()
        assert inspect.iscoroutinefunction(async_ch.send)
        assert sync_ch.name == async_ch.name
        assert sync_ch.capabilities == async_ch.capabilities
        n = max(2, sync_ch.capabilities.min_batch_size)
        a, b = make_deliveries(n), make_deliveries(n)
        got_sync = [(r.outcome, r.reason) for r in _run(sync_ch, a)]
        got_async = [(r.outcome, r.reason) for r in _run(async_ch, b)]
        assert got_sync == got_async

    def test_entry_point_resolves_to_the_channel(
        self, channel: Any, requirements: Requirements
    ) -> None:
        """Rule: the `membermkt.channels` entry point loads this channel's class or factory."""
        if requirements.entry_point is None:
            pytest.skip("requirements.entry_point is not declared")
        spec = registry.available().get(requirements.entry_point)
        assert spec is not None, f"no channel {requirements.entry_point!r} is registered"
        factory = registry.load(requirements.entry_point)
        assert callable(factory)
        if isinstance(factory, type):
            assert isinstance(channel, factory)

    # ------------------------------------------------------------------ stateful

    def test_crashes_and_failures_never_duplicate(
        self,
        channel_factory: Callable[[], Any],
        requirements: Requirements,
        make_deliveries: Callable[[int], list[Delivery]],
        received: Callable[[str], int],
        inject_error: Callable[[Any], None] | None,
    ) -> None:
        """Rule: random interleavings of send, transient failure, crash and resume through
        the ledger never deliver anything twice; on an idempotent channel every delivery the
        runner calls sent was delivered exactly once."""
        from membermkt.engine.runner import CampaignRunner, DeliveryRetry
        from membermkt.stores.memory import InMemoryStore

        can_fail = inject_error is not None and requirements.transient_error is not None
        steps = st.lists(
            st.sampled_from(["send", "crash", *(["fail"] if can_fail else [])]),
            min_size=1,
            max_size=6,
        )

        @settings(
            max_examples=requirements.stateful_examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(steps=steps, n=st.integers(2, 12))
        def scenario(steps: list[str], n: int) -> None:
            channel = channel_factory()
            caps = channel.capabilities
            size = max(caps.min_batch_size, min(caps.max_batch_size, 3))
            store = InMemoryStore()
            cid = f"contract-{uuid.uuid4().hex[:8]}"
            deliveries = [
                Delivery(
                    key=f"{cid}-{d.key}"[:64],
                    campaign_id=cid,
                    member_id=d.member_id,
                    channel=channel.name,
                    address=d.address,
                    variant=d.variant,
                    payload=d.payload,
                )
                for d in make_deliveries(max(n, caps.min_batch_size))
            ]
            store.record_plan(deliveries, now=_NOW)

            async def no_sleep(s: float) -> None:
                return None

            def runner(clock_offset: int) -> CampaignRunner:
                class Clock:
                    def now(self) -> dt.datetime:
                        return _NOW + dt.timedelta(hours=clock_offset)

                return CampaignRunner(
                    store,
                    channel,
                    batch_size=size,
                    concurrency=1,
                    clock=Clock(),
                    sleep=no_sleep,
                    retry=DeliveryRetry(attempts=6),
                    lease=dt.timedelta(minutes=1),
                )

            for i, step in enumerate(steps):
                if step == "fail" and inject_error is not None:
                    inject_error(requirements.transient_error)
                elif step == "crash":
                    claimed = store.claim(cid, worker="doomed", limit=size, now=_NOW)
                    batch = [r.delivery for r in claimed]
                    if len(batch) >= caps.min_batch_size:
                        _run(channel, batch)
                else:
                    runner(i + 1).run(cid)
            runner(len(steps) + 1).run(cid)
            for rec in store.deliveries(cid):
                assert received(rec.key) <= 1, f"{rec.key} delivered twice"
                assert rec.status not in (DeliveryStatus.PLANNED, DeliveryStatus.SENDING)
                if rec.status is DeliveryStatus.SENT and requirements.idempotency_keys:
                    assert received(rec.key) == 1

        scenario()
