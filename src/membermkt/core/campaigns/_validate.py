"""What the platform (or the channel) would refuse, found before anything runs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.core.campaigns._model import Campaign
from membermkt.core.campaigns._variants import Variant
from membermkt.core.delivery import ChannelCapabilities
from membermkt.core.quotas import DEFAULT_RULES, ChannelRules
from membermkt.core.templating import Template
from membermkt.errors import UsageError


@attrs.frozen(slots=True)
class Problem:
    """Something the platform would refuse: where (``path``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


_BUILT_IN = frozenset({*DEFAULT_RULES, "wecom.welcome"})
"""Built-in channel names a misspelling is compared with."""


def _get_path(payload: Mapping[str, Any], path: str) -> Any:
    cur: Any = payload
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _check_content(
    rules: ChannelRules, variant: Variant, prefix: str, payload: Mapping[str, Any], static: bool
) -> list[Problem]:
    problems: list[Problem] = []
    problems.extend(
        Problem(f"{prefix}.{key}", f"{rules.channel} needs {key!r}")
        for key in rules.required_content
        if _get_path(payload, key) is None
    )
    if rules.msgtypes:
        mt = payload.get("msgtype")
        if "template_id" in payload and mt is None:
            problems.append(
                Problem(
                    f"{prefix}.template_id",
                    f"a template message cannot go through {rules.channel} "
                    "(use channel 'wechat.template')",
                )
            )
        elif not isinstance(mt, str):
            problems.append(Problem(f"{prefix}.msgtype", f"{rules.channel} needs a msgtype"))
        elif mt in rules.msgtypes and not isinstance(payload.get(mt), Mapping):
            problems.append(
                Problem(
                    f"{prefix}.{mt}",
                    f"msgtype {mt!r} needs its content object {mt!r} (e.g. "
                    f'{{"msgtype": "text", "text": {{"content": ...}}}})',
                )
            )
        if isinstance(mt, str) and mt not in rules.msgtypes:
            problems.append(
                Problem(
                    f"{prefix}.msgtype",
                    f"{rules.channel} does not send msgtype {mt!r} "
                    f"(allowed: {', '.join(sorted(rules.msgtypes))})",
                )
            )
    for path, limit in rules.max_bytes.items():
        value = _get_path(payload, path)
        size = (
            value.static_length
            if isinstance(value, Template)
            else len(value.encode())
            if isinstance(value, str)
            else None
        )
        if size is not None and size > limit:
            qualifier = "at least " if static else ""
            problems.append(
                Problem(f"{prefix}.{path}", f"{qualifier}{size} bytes, platform limit {limit}")
            )
    for path, limit in rules.max_items.items():
        value = _get_path(payload, path)
        if isinstance(value, list | tuple) and len(value) > limit:
            problems.append(
                Problem(f"{prefix}.{path}", f"{len(value)} items, platform limit {limit}")
            )
    if rules.channel == "wechat.template":
        data = payload.get("data")
        # plain values are wrapped as {"value": v} by the client (send_template)
        if data is not None and not (
            isinstance(data, Mapping)
            and all(
                (isinstance(v, Mapping) and "value" in v)
                or isinstance(v, str | int | float | Template)
                for v in data.values()
            )
        ):
            problems.append(
                Problem(
                    f"{prefix}.data",
                    'template data must map each keyword to a value or {"value": ...} (ref §1.5)',
                )
            )
    return problems


def validate(
    campaign: Campaign, *, capabilities: ChannelCapabilities | None = None
) -> tuple[Problem, ...]:
    """Everything the platform (or the channel) would refuse, found before anything runs.

    Checks content against the channel's rules (required keys, msgtypes, byte and item
    limits, template data shape, personalisation on mass channels), the channel's declared
    batch limits against the platform's, the address kind, and caps/schedule sanity.

    Args:
        campaign: the campaign.
        capabilities: the channel's declared capabilities, when known.

    Returns:
        The problems (empty when the campaign is fine).
    """
    rules = campaign.platform_rules
    problems: list[Problem] = []
    if campaign.channel not in _BUILT_IN:
        near = difflib.get_close_matches(campaign.channel, sorted(_BUILT_IN), n=1, cutoff=0.85)
        if near:
            problems.append(
                Problem(
                    "channel", f"unknown channel {campaign.channel!r}: did you mean {near[0]!r}?"
                )
            )
    for i, v in enumerate(campaign.variants):
        prefix = f"variants[{i}]({v.name}).content"
        compiled = v._compiled
        problems.extend(_check_content(rules, v, prefix, compiled, static=bool(v.fields)))
        if not rules.personalisable and v.fields:
            problems.append(
                Problem(
                    prefix,
                    f"{rules.channel} sends one content per call; member fields "
                    f"{', '.join(v.fields)} cannot be personalised",
                )
            )
    if capabilities is not None:
        if rules.max_batch_size is not None and capabilities.max_batch_size > rules.max_batch_size:
            problems.append(
                Problem(
                    "channel.max_batch_size",
                    f"channel batches {capabilities.max_batch_size}, platform accepts at most "
                    f"{rules.max_batch_size} per call",
                )
            )
        if capabilities.address_kind != campaign.address_kind:
            problems.append(
                Problem(
                    "address_kind",
                    f"channel addresses {capabilities.address_kind!r}, campaign uses "
                    f"{campaign.address_kind!r}",
                )
            )
        elif (
            capabilities.address_namespace
            and campaign.address_namespace
            and capabilities.address_namespace != campaign.address_namespace
        ):
            problems.append(
                Problem(
                    "address_namespace",
                    f"channel sends for {capabilities.address_namespace!r}, campaign "
                    f"addresses {campaign.address_namespace!r}",
                )
            )
    for i, cap in enumerate(campaign.caps):
        if cap.limit == 0:
            problems.append(Problem(f"caps[{i}]", "limit 0 would skip every member"))
    return tuple(problems)


def check(campaign: Campaign, *, capabilities: ChannelCapabilities | None = None) -> None:
    """Like :func:`validate`, but raise.

    Raises:
        UsageError: listing every problem.
    """
    problems = validate(campaign, capabilities=capabilities)
    if problems:
        listing = "\n  ".join(str(p) for p in problems)
        raise UsageError(f"campaign {campaign.id!r} would be refused:\n  {listing}")
