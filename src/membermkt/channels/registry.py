"""Finding channels by name: entry points, runtime registrations and the built-ins.

Third-party channels register under the entry-point group ``membermkt.channels`` (contract)::

    [project.entry-points."membermkt.channels"]
    "sms.acme" = "acme_sms.channel:AcmeSmsChannel"

Nothing is imported until a channel is asked for (:func:`load` / :func:`create`); a plugin
that fails to import, or whose object is not a channel, raises :class:`PluginError` naming
the entry point and its distribution — and never breaks ``import membermkt`` or other
plugins (:func:`discover` reports broken ones instead of raising).

Lookup order: runtime :func:`register` calls, then entry points, then the built-ins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs

from membermkt.channels.base import check_channel
from membermkt.errors import PluginError, UsageError

__all__ = [
    "BUILTIN",
    "GROUP",
    "ChannelSpec",
    "available",
    "create",
    "discover",
    "load",
    "register",
    "unregister",
]

GROUP = "membermkt.channels"
"""The entry-point group (contract)."""

BUILTIN: dict[str, tuple[str, str]] = {
    # name: ("module:attribute", install hint)
    "wechat.mass": ("membermkt.channels.wechat.channel:WeChatMassChannel", "membermkt"),
    "wechat.template": ("membermkt.channels.wechat.channel:WeChatTemplateChannel", "membermkt"),
    "wechat.custom": ("membermkt.channels.wechat.channel:WeChatCustomChannel", "membermkt"),
    "wecom.mass": ("membermkt.channels.wecom.channel:WeComMassChannel", "membermkt"),
    "wecom.group": ("membermkt.channels.wecom.groupsend:WeComGroupChannel", "membermkt"),
    "wecom.welcome": ("membermkt.channels.wecom.channel:WeComWelcomeChannel", "membermkt"),
}
"""Channels shipped with membermkt, as import paths (loaded lazily like plugins)."""

log = logging.getLogger(__name__)

_lock = threading.Lock()
_runtime: dict[str, ChannelSpec] = {}


@attrs.frozen(slots=True, kw_only=True)
class ChannelSpec:
    """Where a channel comes from, before it is imported.

    Attributes:
        name: the channel name.
        target: ``"package.module:Factory"``, or the factory itself (runtime registrations).
        distribution: the providing distribution (entry points), ``None`` otherwise.
        origin: ``"registered"``, ``"entry point"`` or ``"built-in"``.
    """

    name: str
    target: str | Callable[..., Any]
    distribution: str | None = None
    origin: str = "registered"


def _check_target(target: str) -> None:
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise UsageError(f"channel target must look like 'package.module:Factory', got {target!r}")


def register(name: str, target: str | Callable[..., Any], *, replace: bool = False) -> None:
    """Register a channel factory at runtime (tests, notebooks).

    Args:
        name: the channel name.
        target: ``"package.module:Factory"`` (imported lazily) or a callable.
        replace: allow replacing an existing runtime registration.

    Raises:
        UsageError: for a malformed target or a duplicate name without ``replace``.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"channel name must be a non-empty str, got {name!r}")
    if isinstance(target, str):
        _check_target(target)
    elif not callable(target):
        raise UsageError(f"channel target must be an import path or a callable, got {target!r}")
    with _lock:
        if name in _runtime and not replace:
            raise UsageError(f"channel {name!r} is already registered; pass replace=True")
        _runtime[name] = ChannelSpec(name=name, target=target)


def unregister(name: str) -> None:
    """Forget a runtime registration (no error if absent)."""
    with _lock:
        _runtime.pop(name, None)


def _entry_points() -> dict[str, ChannelSpec]:
    out: dict[str, ChannelSpec] = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        out.setdefault(
            ep.name,
            ChannelSpec(name=ep.name, target=ep.value, distribution=dist, origin="entry point"),
        )
    return out


def available() -> dict[str, ChannelSpec]:
    """Every known channel name and where it comes from — without importing anything."""
    out = {
        name: ChannelSpec(name=name, target=path, origin="built-in")
        for name, (path, _) in BUILTIN.items()
    }
    out.update(_entry_points())
    with _lock:
        out.update(_runtime)
    return dict(sorted(out.items()))


def load(name: str) -> Callable[..., Any]:
    """The factory of channel ``name`` (imported now).

    Raises:
        PluginError: unknown name, or the target fails to import / is not callable — naming
            the entry point and its distribution.
    """
    spec = available().get(name)
    if spec is None:
        known = ", ".join(available()) or "none"
        raise PluginError(
            f"no channel named {name!r} (known: {known}); install its package or register() it",
            name=name,
        )
    if not isinstance(spec.target, str):
        return spec.target
    module_name, _, attr = spec.target.partition(":")
    where = f" from distribution {spec.distribution!r}" if spec.distribution else ""
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        hint = ""
        if spec.origin == "built-in":
            hint = f"; it ships with {BUILTIN[name][1]!r} — is that version installed?"
        raise PluginError(
            f"channel {name!r} ({spec.origin} {spec.target!r}{where}) failed to load: "
            f"{type(exc).__name__}: {exc}{hint}",
            name=name,
            distribution=spec.distribution,
        ) from exc
    if not callable(obj):
        raise PluginError(
            f"channel {name!r} ({spec.target!r}{where}) is not callable",
            name=name,
            distribution=spec.distribution,
        )
    factory: Callable[..., Any] = obj
    return factory


def create(name: str, /, *args: Any, **kwargs: Any) -> Any:
    """Load channel ``name``, call its factory with the arguments, check the result.

    Raises:
        PluginError: when loading fails or the object is not a channel.
    """
    factory = load(name)
    spec = available()[name]
    try:
        channel = factory(*args, **kwargs)
    except (TypeError, UsageError) as exc:
        raise PluginError(
            f"channel {name!r} could not be created: {exc}",
            name=name,
            distribution=spec.distribution,
        ) from exc
    check_channel(channel, name=name, distribution=spec.distribution)
    return channel


def discover() -> tuple[dict[str, Callable[..., Any]], dict[str, PluginError]]:
    """Load every available channel; broken ones are reported (and logged), not raised.

    Returns:
        ``(factories, errors)`` keyed by channel name.
    """
    factories: dict[str, Callable[..., Any]] = {}
    errors: dict[str, PluginError] = {}
    for name in available():
        try:
            factories[name] = load(name)
        except PluginError as exc:
            log.warning("channel plugin %r skipped: %s", name, exc, exc_info=exc)
            errors[name] = exc
    return factories, errors
