"""The example third-party channel (examples/sms_channel_plugin) passes the contract kit,
and its entry point is discovered through ``importlib.metadata``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sms_channel_plugin"


def _install_example(tmp: Path) -> None:
    """Make the example importable and its entry points visible, like `pip install -e`."""
    src = str(EXAMPLE / "src")
    dist = tmp / "membermkt_sms_example-0.1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: membermkt-sms-example\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[membermkt.channels]\n"
        "sms.example = membermkt_sms.channel:SmsChannel\n"
        "sms.example_async = membermkt_sms.channel:AsyncSmsChannel\n"
    )
    for p in (src, str(tmp)):
        if p not in sys.path:
            sys.path.insert(0, p)
    importlib.invalidate_caches()


_install_example(Path(__import__("tempfile").mkdtemp(prefix="mm-sms-plugin-")))
_spec = importlib.util.spec_from_file_location(
    "sms_plugin_contract_suite", EXAMPLE / "tests" / "test_sms_contract.py"
)
assert _spec is not None
assert _spec.loader is not None
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)

TestSmsChannel = _suite.TestSmsChannel
TestSmsChannelWithoutDeduplication = _suite.TestSmsChannelWithoutDeduplication


def test_entry_point_names_its_distribution() -> None:
    """Rule: discovery lists the plugin with the distribution that provides it."""
    from membermkt.channels import registry

    spec = registry.available()["sms.example"]
    assert spec.distribution == "membermkt-sms-example"
    assert spec.origin == "entry point"


@pytest.mark.parametrize("name", ["sms.example", "sms.example_async"])
def test_create_builds_a_checked_channel(name: str) -> None:
    """Rule: registry.create() loads lazily, constructs and checks the channel."""
    from membermkt.channels import registry

    ch = registry.create(name, "http://127.0.0.1:1", "k")
    assert ch.name == "sms.example"


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("variant", ["sync", "async"])
def test_the_channel_texts_the_real_number_decrypted_from_the_store(
    kind: str, variant: str
) -> None:
    """Rule: a phone-addressed delivery (the member's keyed blind index) goes to the number
    the store keeps encrypted; members without a usable number fail permanently, unsent,
    and no number appears in a result."""
    import asyncio

    from membermkt_sms import AsyncSmsChannel, SmsChannel, SmsGateway, StoreNumbers

    from membermkt.core.delivery import Delivery, SendOutcome
    from membermkt.core.members import Member
    from membermkt.security.phones import PhoneKey, PhoneProtector
    from membermkt.stores.memory import InMemoryStore
    from membermkt.stores.sql import SqlStore
    from membermkt.testing.phones import TEST_PHONES

    store: Any = (
        InMemoryStore(phones=TEST_PHONES)
        if kind == "memory"
        else SqlStore("sqlite://", phones=TEST_PHONES)
    )
    texted = TEST_PHONES.protect(Member("m1"), "138 0013 8000")
    index_only = Member("m2", identities=[TEST_PHONES.identity("13900139000")])
    moved = TEST_PHONES.protect(Member("m3"), "13700137000")
    stranger_key = PhoneProtector(PhoneKey("other", bytes(32)))
    foreign = stranger_key.protect(Member("m4"), "13600136000")
    store.upsert_members([texted, index_only, moved])
    if kind == "memory":
        store.upsert_members([foreign])  # the SQL store would refuse its key id

    def delivery(member_id: str, address: str) -> Delivery:
        return Delivery(
            key=f"k-{member_id}",
            campaign_id="c1",
            member_id=member_id,
            channel="sms.example",
            address=address,
            variant="A",
            payload={"text": "榴莲季到了"},
        )

    batch = [
        delivery("m1", TEST_PHONES.digest("13800138000")),
        delivery("m2", TEST_PHONES.digest("13900139000")),
        delivery("m3", TEST_PHONES.digest("13500135000")),  # planned before the number changed
        delivery("m4", stranger_key.digest("13600136000")),
        delivery("gone", TEST_PHONES.digest("13400134000")),
    ]
    gateway = SmsGateway()
    numbers = StoreNumbers(store, TEST_PHONES)
    if variant == "sync":
        got = SmsChannel(transport=gateway.transport(), numbers=numbers).send(batch)
    else:
        channel = AsyncSmsChannel(transport=gateway.transport(), numbers=numbers)
        got = asyncio.run(channel.send(batch))
    assert [r.key for r in got] == [d.key for d in batch]
    assert [r.outcome for r in got] == [SendOutcome.SENT] + [SendOutcome.PERMANENT] * 4
    assert gateway.inbox == {"+8613800138000": ["榴莲季到了"]}
    reasons = " ".join(str(r.reason) for r in got)
    assert "no phone number on file" in reasons
    assert "phone changed since planning" in reasons
    assert "member gone" in reasons
    for digits in ("13800138000", "13900139000", "13700137000", "13600136000"):
        assert digits not in reasons
    if kind == "memory":
        assert "cannot be decrypted" in reasons
