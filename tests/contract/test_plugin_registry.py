"""Channel discovery: entry points, runtime registration, lazy loading, broken plugins."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from membermkt.channels import registry
from membermkt.core.delivery import ChannelCapabilities
from membermkt.errors import PluginError, UsageError
from membermkt.testing.capture import RecordingChannel


@pytest.fixture
def broken_distribution(tmp_path: Path) -> Iterator[str]:
    """A distribution whose entry point names a module that fails to import."""
    dist = tmp_path / "acme_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[membermkt.channels]\nsms.broken = acme_broken_mod:Channel\n"
    )
    (tmp_path / "acme_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    yield "sms.broken"
    sys.path.remove(str(tmp_path))
    importlib.invalidate_caches()


def test_a_broken_plugin_is_reported_with_its_distribution(broken_distribution: str) -> None:
    """Rule: a plugin that fails to import raises PluginError naming the entry point and the
    distribution, and discover() reports it without breaking the others."""
    assert registry.available()[broken_distribution].distribution == "acme-broken"
    with pytest.raises(PluginError, match="acme-broken") as exc:
        registry.load(broken_distribution)
    assert exc.value.distribution == "acme-broken"
    assert exc.value.name == broken_distribution
    factories, errors = registry.discover()
    assert broken_distribution in errors
    assert "wechat.template" in factories
    import membermkt  # still importable

    assert membermkt.__version__


def test_runtime_registration_and_shape_check() -> None:
    """Rule: register() adds a channel lazily; create() refuses objects that are not
    channels; names are unique unless replaced."""
    registry.register("test.recording", "membermkt.testing.capture:RecordingChannel")
    try:
        ch = registry.create("test.recording")
        assert isinstance(ch, RecordingChannel)
        with pytest.raises(UsageError, match="already registered"):
            registry.register("test.recording", RecordingChannel)
        registry.register("test.recording", lambda: object(), replace=True)
        with pytest.raises(PluginError, match="name"):
            registry.create("test.recording")
        registry.register(
            "test.recording",
            lambda: RecordingChannel(capabilities=ChannelCapabilities(max_batch_size=3)),
            replace=True,
        )
        assert registry.create("test.recording").capabilities.max_batch_size == 3
    finally:
        registry.unregister("test.recording")
    with pytest.raises(PluginError, match="no channel named"):
        registry.load("test.recording")
    with pytest.raises(UsageError, match=r"package\.module:Factory"):
        registry.register("x", "not-a-path")


def test_builtins_are_listed_without_importing_them() -> None:
    """Rule: available() lists built-in channels as import paths; load() resolves them."""
    specs = registry.available()
    assert specs["wechat.mass"].origin == "built-in"
    factory = registry.load("wechat.mass")
    assert factory.__name__ == "WeChatMassChannel"
