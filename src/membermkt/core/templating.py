"""Safe personalisation templates: member fields in, text out — no code, no attribute access.

A template is text with placeholders ``{{ field }}`` or ``{{ field | "fallback" }}``:

>>> from membermkt import Member, Profile
>>> t = Template('你好 {{ city | "朋友" }}, tier {{ tier }}')
>>> t.render(Member("m1", Profile(city="杭州", tier="gold")))
'你好 杭州, tier gold'
>>> t.fields
('city', 'tier')

``field`` is a member field name — ``id``, a profile field, a derived field (``age`` is not
available: it depends on a time), or a custom attribute name. Nothing else is accepted: no
dots, brackets, calls, filters or expressions, so a template written by a marketer can never
reach into Python objects (the classic ``{{ obj.__class__ }}`` escape of general-purpose
template engines does not parse here). A field without a fallback is *required*: rendering
a member that lacks it raises :class:`MissingField` (the campaign planner turns that into a
``missing_field`` skip instead of sending "Hi ,"). ``{{{{`` and ``}}}}`` write literal braces.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from membermkt.core.evaluate import field_getter
from membermkt.core.members import Member
from membermkt.errors import UsageError

__all__ = [
    "FrozenDict",
    "MissingField",
    "Template",
    "compile_payload",
    "render_payload",
    "template_fields",
]

_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLACEHOLDER_RE = re.compile(
    r"""\{\{\s*(?P<field>[^\s|}]*)\s*(?:\|\s*(?P<fallback>"(?:[^"\\]|\\.)*"))?\s*\}\}"""
)
_FALLBACK_ESCAPES = {'\\"': '"', "\\\\": "\\"}


class MissingField(UsageError):
    """A required template field is missing on the member.

    Attributes:
        field: the field name.
        member_id: the member.
    """

    def __init__(self, field: str, member_id: str) -> None:
        self.field = field
        self.member_id = member_id
        super().__init__(f"member {member_id!r} has no value for template field {field!r}")


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _getter(name: str) -> Callable[[Member], Any]:
    if name == "id":
        return lambda m: m.id
    return field_getter(name)


_Part = tuple[str, str | None, str | None]
"""(literal text, field or None, fallback or None)."""


def _malformed(source: str, at: int) -> UsageError:
    return UsageError(
        f"template {source!r} at offset {at}: malformed placeholder; write "
        '{{ field }} or {{ field | "fallback" }}, and {{{{ / }}}} for literal braces'
    )


def _parse(source: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    text: list[str] = []
    i, n = 0, len(source)
    while i < n:
        if source.startswith("{{{{", i):
            text.append("{{")
            i += 4
        elif source.startswith("}}}}", i):
            text.append("}}")
            i += 4
        elif source.startswith("{{", i):
            m = _PLACEHOLDER_RE.match(source, i)
            if m is None:
                raise _malformed(source, i)
            name = m.group("field")
            if name == "age":
                raise UsageError(
                    f"template {source!r}: field 'age' depends on a time and cannot be rendered"
                )
            if not _FIELD_RE.fullmatch(name):
                raise UsageError(
                    f"template {source!r} at offset {i}: {name!r} is not a field name "
                    "(only plain names like {{ city }} are allowed: no dots, calls or filters)"
                )
            fb = m.group("fallback")
            fallback = None
            if fb is not None:
                fallback = re.sub(r"\\.", lambda e: _FALLBACK_ESCAPES.get(e.group(0), ""), fb[1:-1])
            parts.append(("".join(text), name, fallback))
            text = []
            i = m.end()
        elif source.startswith("}}", i):
            raise _malformed(source, i)
        else:
            j = i + 1
            while j < n and source[j] not in "{}":
                j += 1
            if j == i + 1 and source[i] in "{}":
                text.append(source[i])
            else:
                text.append(source[i:j])
            i = j
    parts.append(("".join(text), None, None))
    return tuple(parts)


@attrs.frozen(slots=True)
class Template:
    """A parsed, safe template (parsed once, rendered per member).

    Args:
        source: the template text.

    Raises:
        UsageError: for malformed placeholders or anything but a plain field name inside one.
    """

    source: str = attrs.field()
    _parts: tuple[_Part, ...] = attrs.field(init=False, repr=False, eq=False)
    _getters: tuple[Callable[[Member], Any] | None, ...] = attrs.field(
        init=False, repr=False, eq=False
    )

    @source.validator
    def _check_source(self, attribute: object, value: Any) -> None:
        if not isinstance(value, str):
            raise UsageError(f"Template source must be a str, got {type(value).__name__}")

    def __attrs_post_init__(self) -> None:
        parts = _parse(self.source)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(
            self, "_getters", tuple(None if f is None else _getter(f) for _, f, _ in parts)
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names used, in order of first use."""
        seen: dict[str, None] = {}
        for _, f, _ in self._parts:
            if f is not None:
                seen.setdefault(f)
        return tuple(seen)

    @property
    def is_static(self) -> bool:
        """``True`` when the template has no placeholders (same text for everyone)."""
        return len(self._parts) == 1

    @property
    def static_length(self) -> int:
        """The UTF-8 length of the literal text (a lower bound for every rendering)."""
        return sum(len(text.encode()) for text, _, _ in self._parts)

    def render(self, member: Member) -> str:
        """The text for ``member``.

        Raises:
            MissingField: when a required field (no fallback) is missing on the member.
        """
        out: list[str] = []
        for (text, name, fallback), get in zip(self._parts, self._getters, strict=True):
            out.append(text)
            if get is None or name is None:
                continue
            value = get(member)
            if value is None or value == "":
                if fallback is None:
                    raise MissingField(name, member.id)
                out.append(fallback)
            else:
                out.append(_format(value))
        return "".join(out)


def _compile_value(value: Any, path: str) -> Any:
    if isinstance(value, str):
        t = Template(value)
        return value if t.is_static else t
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise UsageError(f"content key at {path} must be a str, got {k!r}")
            out[k] = _compile_value(v, f"{path}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_compile_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float):
        return value
    raise UsageError(f"content value at {path} must be JSON-able, got {type(value).__name__}")


def compile_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Parse every string of a JSON-able ``payload`` as a template (static strings stay str).

    Raises:
        UsageError: for a non-JSON-able value or a malformed template, naming the path.
    """
    return {k: _compile_value(v, f"$.{k}") for k, v in payload.items()}


class FrozenDict(dict[str, Any]):
    """A read-only, hashable ``dict`` (JSON encoders see a plain dict): rendered payloads
    hash and compare by content, so channels can group deliveries by payload."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a rendered payload is read-only")

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]


def render_payload(compiled: Any, member: Member) -> Any:
    """Render a payload compiled by :func:`compile_payload` for ``member``: mappings become
    :class:`FrozenDict`, lists become tuples (hashable and JSON-able).

    Raises:
        MissingField: when a required field is missing on the member.
    """
    if isinstance(compiled, Template):
        return compiled.render(member)
    if isinstance(compiled, dict):
        return FrozenDict({k: render_payload(v, member) for k, v in compiled.items()})
    if isinstance(compiled, list):
        return tuple(render_payload(v, member) for v in compiled)
    return compiled


def template_fields(compiled: Any) -> tuple[str, ...]:
    """Every field used by a compiled payload."""
    seen: dict[str, None] = {}

    def walk(v: Any) -> None:
        if isinstance(v, Template):
            for f in v.fields:
                seen.setdefault(f)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(compiled)
    return tuple(seen)
