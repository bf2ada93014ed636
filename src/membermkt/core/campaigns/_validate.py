"""What the platform (or the channel) would refuse, found before anything runs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import attrs

from membermkt.core.campaigns._model import Campaign
from membermkt.core.campaigns._summary import PlanSummary
from membermkt.core.campaigns._variants import Variant
from membermkt.core.delivery import ChannelCapabilities
from membermkt.core.quotas import DEFAULT_RULES, ChannelRules, balanced_batches
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
    if rules.needs_body or rules.attachment_msgtypes:
        problems.extend(_check_body(rules, prefix, payload))
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


def _text_of(payload: Mapping[str, Any]) -> Any:
    text = payload.get("text")
    # the channel accepts a plain str or the API's own {"content": ...} shape
    return text.get("content") if isinstance(text, Mapping) else text


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, Template):
        return value.static_length == 0 and not value.fields
    return isinstance(value, str) and not value.strip()


def _check_body(rules: ChannelRules, prefix: str, payload: Mapping[str, Any]) -> list[Problem]:
    """WeCom message bodies: text and/or attachments, each attachment of a known msgtype
    with its content object (ref §3.4)."""
    problems: list[Problem] = []
    text = _text_of(payload)
    raw = payload.get("attachments")
    if raw is not None and not isinstance(raw, list | tuple):
        return [Problem(f"{prefix}.attachments", "attachments must be a list")]
    attachments = list(raw or ())
    if text is not None and not isinstance(text, str | Template):
        problems.append(Problem(f"{prefix}.text", "text must be a string"))
    elif isinstance(text, str) and "text.content" in rules.max_bytes:
        # the dotted-path byte check above sees only the {"content": ...} shape
        limit = rules.max_bytes["text.content"]
        size = len(text.encode())
        if not isinstance(payload.get("text"), Mapping) and size > limit:
            problems.append(Problem(f"{prefix}.text", f"{size} bytes, platform limit {limit}"))
    if rules.needs_body and _is_blank(text) and not attachments:
        # unconfirmed: the reference (§3.4) gives no errcode for an empty add_msg_template;
        # the client (channels/wecom/api/mass.check_content) refuses it before the call.
        problems.append(
            Problem(prefix, f"{rules.channel} needs a non-empty text or at least one attachment")
        )
    if rules.attachment_msgtypes:
        allowed = ", ".join(sorted(rules.attachment_msgtypes))
        for i, a in enumerate(attachments):
            where = f"{prefix}.attachments[{i}]"
            mt = a.get("msgtype") if isinstance(a, Mapping) else None
            if not isinstance(mt, str):
                problems.append(Problem(where, f"an attachment needs a msgtype (one of {allowed})"))
            elif mt not in rules.attachment_msgtypes:
                problems.append(
                    Problem(
                        f"{where}.msgtype",
                        f"{rules.channel} does not send attachment msgtype {mt!r} "
                        f"(allowed: {allowed})",
                    )
                )
            elif not isinstance(a.get(mt), Mapping):
                problems.append(
                    Problem(
                        f"{where}.{mt}",
                        f"attachment msgtype {mt!r} needs its content object {mt!r} "
                        f'(e.g. {{"msgtype": "image", "image": {{"media_id": ...}}}})',
                    )
                )
    return problems


def plan_calls(
    summary: PlanSummary, rules: ChannelRules, *, max_batch_size: int | None = None
) -> int:
    """Platform calls a plan needs: per variant, balanced batches of at most the channel's
    (or platform's) batch size for batch channels, one call per delivery otherwise.

    Args:
        summary: the plan's counts (``prepare``/``simulate`` return one).
        rules: the channel's platform rules.
        max_batch_size: the channel's declared batch size (``ChannelCapabilities``), if known.

    Raises:
        UsageError: for a ``max_batch_size`` below 1.
    """
    size = max_batch_size or rules.max_batch_size
    if size is not None and size < 1:
        raise UsageError(f"max_batch_size must be >= 1, got {size}")
    if size is None or size == 1:
        return summary.total_deliveries
    if rules.max_batch_size is not None:
        size = min(size, rules.max_batch_size)
    return sum(len(balanced_batches(n, size)) for n in summary.deliveries.values() if n > 0)


def check_budget(
    summary: PlanSummary,
    rules: ChannelRules,
    *,
    calls_per_day: int | None,
    used_today: int = 0,
    max_batch_size: int | None = None,
) -> tuple[Problem, ...]:
    """Whether a plan fits the day's API budget.

    ``calls_per_day`` is the client's daily budget of the API the channel calls, e.g. for
    ``wechat.mass`` the ``"mass"`` entry of
    :data:`membermkt.channels.wechat.client.DEFAULT_BUDGETS` (100/day); ``None`` means no
    known daily budget (then nothing is reported). A plan over budget is not refused by
    the runner — it defers the rest to the next day — so this is a warning the caller acts
    on (split the campaign, or accept that it spans days).

    Args:
        summary: the plan's counts.
        rules: the channel's platform rules.
        calls_per_day: the daily budget (``None``: none known).
        used_today: calls already made today against that budget.
        max_batch_size: the channel's declared batch size, if known.

    Returns:
        One problem when the plan needs more calls than are left today, else ``()``.

    Raises:
        UsageError: for a negative ``used_today`` or a budget below 1.
    """
    if used_today < 0:
        raise UsageError(f"used_today must be >= 0, got {used_today}")
    if calls_per_day is None:
        return ()
    if calls_per_day < 1:
        raise UsageError(f"calls_per_day must be >= 1 or None, got {calls_per_day}")
    need = plan_calls(summary, rules, max_batch_size=max_batch_size)
    left = max(calls_per_day - used_today, 0)
    if need <= left:
        return ()
    return (
        Problem(
            "budget",
            f"{summary.total_deliveries} deliveries need {need} {rules.channel} calls, "
            f"{left} of the daily budget of {calls_per_day} left",
        ),
    )


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
    if rules.unavailable:
        problems.append(
            Problem(
                "channel", f"{rules.channel} is unavailable on this account: {rules.unavailable}"
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
