"""The versioned JSON form of segments (``{"version": 1, "op": ..., ...}``).

Node shapes (``$`` is the root; the root also carries ``"version": 1``)::

    {"op": "true"} | {"op": "false"}
    {"op": "and" | "or", "args": [node, ...]}
    {"op": "not", "arg": node}
    {"op": "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "contains" | "startswith",
     "field": name, "value": v}
    {"op": "in" | "not_in", "field": name, "values": [v, ...]}
    {"op": "between", "field": name, "low": v, "high": v}
    {"op": "exists", "field": name}
    {"op": "tags_any" | "tags_all", "tags": [name, ...]}
    {"op": "did", "event": type, "where": {prop: v}, "at_least": n, "at_most": m,
     "within": {"days": d, "hours": h, "minutes": m, "seconds": s}}
    {"op": "sample", "fraction": f, "salt": s}

Values: JSON scalars; ``birthday`` takes ``"YYYY-MM-DD"``; time fields take an ISO-8601
datetime with offset (``"2026-01-01T00:00:00+08:00"``) or ``{"ago": {"days": 30}}``.
A JSON Schema ships as ``membermkt/schemas/segment-v1.schema.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from membermkt.core.segments import (
    CMP_OPS,
    FALSE,
    JSON_VERSION,
    MAX_DEPTH,
    TRUE,
    And,
    Cmp,
    Const,
    Did,
    FieldType,
    Not,
    Or,
    RelTime,
    Sample,
    Segment,
    Tags,
    Value,
    _make_cmp,
    field_type,
)
from membermkt.errors import SegmentError

__all__ = ["json_schema", "node_to_json", "segment_from_json"]

_DURATION_UNITS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}


def _value_to_json(v: Value) -> Any:
    if isinstance(v, RelTime):
        return {"ago": _duration_to_json(v.seconds)}
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _duration_to_json(seconds: int) -> dict[str, int]:
    if seconds and seconds % 86400 == 0:
        return {"days": seconds // 86400}
    if seconds and seconds % 3600 == 0:
        return {"hours": seconds // 3600}
    return {"seconds": seconds}


def node_to_json(node: Segment) -> dict[str, Any]:
    """The JSON form of one node (without the root ``version``)."""
    if isinstance(node, Const):
        return {"op": "true" if node.value else "false"}
    if isinstance(node, And | Or):
        return {"op": node.kind, "args": [node_to_json(p) for p in node.parts]}
    if isinstance(node, Not):
        return {"op": "not", "arg": node_to_json(node.part)}
    if isinstance(node, Cmp):
        out: dict[str, Any] = {"op": node.op, "field": node.field}
        if node.op in ("in", "not_in"):
            out["values"] = [_value_to_json(v) for v in node.values]
        elif node.op == "between":
            out["low"] = _value_to_json(node.values[0])
            out["high"] = _value_to_json(node.values[1])
        elif node.op != "exists":
            out["value"] = _value_to_json(node.values[0])
        return out
    if isinstance(node, Tags):
        return {"op": f"tags_{node.mode}", "tags": list(node.names)}
    if isinstance(node, Did):
        d: dict[str, Any] = {"op": "did", "event": node.event}
        if node.where:
            d["where"] = dict(node.where)
        d["at_least"] = node.at_least
        if node.at_most is not None:
            d["at_most"] = node.at_most
        if node.within is not None:
            d["within"] = _duration_to_json(node.within)
        return d
    if isinstance(node, Sample):
        return {"op": "sample", "fraction": node.fraction, "salt": node.salt}
    if node.kind == "latest":
        from membermkt.core.membership.leaves import latest_to_json

        return latest_to_json(node)
    raise SegmentError(f"no JSON form for node kind {node.kind!r} ({type(node).__name__})")


def segment_from_json(obj: object) -> Segment:
    """Parse the JSON form; see the module docstring.

    Raises:
        SegmentError: naming the JSON path of the bad node and what was expected.
    """
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except (ValueError, RecursionError) as exc:
            raise SegmentError(f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SegmentError(f"expected a JSON object, got {_jtype(obj)}")
    version = obj.get("version")
    if version != JSON_VERSION:
        raise SegmentError(f'expected "version": {JSON_VERSION}, got {version!r}', "$.version")
    body = {k: v for k, v in obj.items() if k != "version"}
    return _parse(body, "$", 0)


def _jtype(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _keys(obj: dict[str, Any], path: str, allowed: set[str], required: set[str]) -> None:
    for k in obj:
        if k not in allowed:
            raise SegmentError(
                f"unexpected key {k!r} for op {obj.get('op')!r} (allowed: {sorted(allowed)})",
                f"{path}.{k}" if isinstance(k, str) else path,
            )
    for k in required:
        if k not in obj:
            raise SegmentError(f"missing key {k!r} for op {obj.get('op')!r}", path)


def _parse(obj: object, path: str, depth: int) -> Segment:
    if depth >= MAX_DEPTH:
        raise SegmentError(f"segment nested deeper than {MAX_DEPTH} levels", path)
    if not isinstance(obj, dict):
        raise SegmentError(f"expected a segment object, got {_jtype(obj)}", path)
    op = obj.get("op")
    if not isinstance(op, str):
        raise SegmentError(f'expected "op" to be a string, got {_jtype(op)}', f"{path}.op")
    try:
        return _parse_op(obj, op, path, depth)
    except SegmentError as exc:
        if exc.path == "$" and path != "$":
            raise SegmentError(exc.reason, path) from None
        raise


def _parse_op(obj: dict[str, Any], op: str, path: str, depth: int) -> Segment:
    if op in ("true", "false"):
        _keys(obj, path, {"op"}, set())
        return TRUE if op == "true" else FALSE
    if op in ("and", "or"):
        _keys(obj, path, {"op", "args"}, {"args"})
        args = obj["args"]
        if not isinstance(args, list):
            raise SegmentError(f'expected "args" to be an array, got {_jtype(args)}', path)
        parts = [_parse(a, f"{path}.args[{i}]", depth + 1) for i, a in enumerate(args)]
        if not parts:
            return TRUE if op == "and" else FALSE
        if len(parts) == 1:
            return parts[0]
        return And(tuple(parts)) if op == "and" else Or(tuple(parts))
    if op == "not":
        _keys(obj, path, {"op", "arg"}, {"arg"})
        return Not(_parse(obj["arg"], f"{path}.arg", depth + 1))
    if op in CMP_OPS:
        return _parse_cmp(obj, op, path)
    if op in ("tags_any", "tags_all"):
        _keys(obj, path, {"op", "tags"}, {"tags"})
        tags = obj["tags"]
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise SegmentError('expected "tags" to be an array of strings', f"{path}.tags")
        return Tags(op[5:], tuple(tags))
    if op == "did":
        return _parse_did(obj, path)
    if op == "sample":
        _keys(obj, path, {"op", "fraction", "salt"}, {"fraction"})
        fraction = obj["fraction"]
        salt = obj.get("salt", "")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise SegmentError(f"expected a number, got {_jtype(fraction)}", f"{path}.fraction")
        if not isinstance(salt, str):
            raise SegmentError(f"expected a string, got {_jtype(salt)}", f"{path}.salt")
        return Sample(float(fraction), salt)
    if op == "latest":
        from membermkt.core.membership.leaves import latest_from_json

        return latest_from_json(obj, path)
    raise SegmentError(f"unknown op {op!r}", f"{path}.op")


def _parse_cmp(obj: dict[str, Any], op: str, path: str) -> Cmp:
    if op == "exists":
        _keys(obj, path, {"op", "field"}, {"field"})
    elif op in ("in", "not_in"):
        _keys(obj, path, {"op", "field", "values"}, {"field", "values"})
    elif op == "between":
        _keys(obj, path, {"op", "field", "low", "high"}, {"field", "low", "high"})
    else:
        _keys(obj, path, {"op", "field", "value"}, {"field", "value"})
    name = obj["field"]
    if not isinstance(name, str):
        raise SegmentError(f'expected "field" to be a string, got {_jtype(name)}', path)
    ftype = field_type(name)
    raw: list[tuple[str, object]]
    if op in ("in", "not_in"):
        vals = obj["values"]
        if not isinstance(vals, list):
            raise SegmentError(f"expected an array, got {_jtype(vals)}", f"{path}.values")
        raw = [(f"{path}.values[{i}]", v) for i, v in enumerate(vals)]
    elif op == "between":
        raw = [(f"{path}.low", obj["low"]), (f"{path}.high", obj["high"])]
    elif op == "exists":
        raw = []
    else:
        raw = [(f"{path}.value", obj["value"])]
    values = [_value_from_json(name, ftype, v, p) for p, v in raw]
    try:
        return _make_cmp(name, op, values)
    except SegmentError as exc:
        raise SegmentError(exc.reason, path) from None


def _value_from_json(name: str, ftype: FieldType, v: object, path: str) -> object:
    if ftype is FieldType.DATE:
        if not isinstance(v, str):
            raise SegmentError(f'{name} takes a date "YYYY-MM-DD", got {_jtype(v)}', path)
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            raise SegmentError(f'not a date "YYYY-MM-DD": {v!r}', path) from None
    if ftype is FieldType.DATETIME:
        if isinstance(v, dict):
            if set(v) != {"ago"}:
                raise SegmentError('a relative time is {"ago": {"days": n}}', path)
            return RelTime(_duration_from_json(v["ago"], f"{path}.ago"))
        if not isinstance(v, str):
            raise SegmentError(
                f'{name} takes an ISO datetime with offset or {{"ago": ...}}, got {_jtype(v)}',
                path,
            )
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            raise SegmentError(f"not an ISO-8601 datetime: {v!r}", path) from None
        if parsed.utcoffset() is None:
            raise SegmentError(f"datetime needs a UTC offset: {v!r}", path)
        return parsed
    if v is None or isinstance(v, list | dict):
        raise SegmentError(f"expected a string, number or boolean, got {_jtype(v)}", path)
    if isinstance(v, float) and not math.isfinite(v):
        raise SegmentError(f"expected a finite number, got {v!r}", path)
    return v


def _duration_from_json(v: object, path: str) -> int:
    if not isinstance(v, dict) or not v:
        raise SegmentError(
            'a duration is an object like {"days": 30} (days/hours/minutes/seconds)', path
        )
    total = 0
    for unit, n in v.items():
        if unit not in _DURATION_UNITS:
            raise SegmentError(f"unknown duration unit {unit!r}", f"{path}.{unit}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n > 10**9:
            raise SegmentError(
                f"duration {unit} must be a non-negative integer, got {n!r}", f"{path}.{unit}"
            )
        total += n * _DURATION_UNITS[unit]
    return total


def _parse_did(obj: dict[str, Any], path: str) -> Did:
    _keys(obj, path, {"op", "event", "where", "at_least", "at_most", "within"}, {"event"})
    event = obj["event"]
    if not isinstance(event, str):
        raise SegmentError(f"expected a string, got {_jtype(event)}", f"{path}.event")
    where = obj.get("where") or {}
    if not isinstance(where, dict):
        raise SegmentError(f"expected an object, got {_jtype(where)}", f"{path}.where")
    for k, v in where.items():
        if v is None or isinstance(v, list | dict):
            raise SegmentError(
                f"expected a string, number or boolean, got {_jtype(v)}", f"{path}.where.{k}"
            )
    at_least = obj.get("at_least", 1)
    at_most = obj.get("at_most")
    for key, val in (("at_least", at_least), ("at_most", at_most)):
        if val is None and key == "at_most":
            continue
        if isinstance(val, bool) or not isinstance(val, int) or val < 0:
            raise SegmentError(f"expected a non-negative integer, got {val!r}", f"{path}.{key}")
    within_raw = obj.get("within")
    within = None if within_raw is None else _duration_from_json(within_raw, f"{path}.within")
    if within == 0:
        raise SegmentError("window must be positive", f"{path}.within")
    try:
        return Did(event, tuple(where.items()), at_least, at_most, within)
    except SegmentError as exc:
        raise SegmentError(exc.reason, path) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the version-1 segment form, as shipped in
    ``membermkt/schemas/segment-v1.schema.json``."""
    from importlib import resources

    text = (
        resources.files("membermkt")
        .joinpath("schemas/segment-v1.schema.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema
