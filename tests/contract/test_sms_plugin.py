"""The example third-party channel (examples/sms_channel_plugin) passes the contract kit,
and its entry point is discovered through ``importlib.metadata``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

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
