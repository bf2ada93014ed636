"""Text, JSON and time encodings shared by the SQL row conversions (not public API)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from membermkt.errors import UsageError
from membermkt.stores.sql.compile import from_epoch_us, to_epoch_us
from membermkt.stores.sql.schema import TEXT_LEN

PROFILE_COLS = ("gender", "city", "province", "country", "birthday", "income_band", "tier")
STATE_COLS = (
    "subscribed",
    "sub_at",
    "sub_tb",
    "followed_at",
    "source",
    "source_at",
    "source_tb",
    "last_active_at",
    "orders_count",
    "orders_total_fen",
    "first_order_at",
    "last_order_at",
    "categories",
    "wecom_contact",
    "contact_at",
    "contact_tb",
    "last_event_at",
    "relations",
)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _no_default(o: object) -> Any:
    raise TypeError(f"not JSON-serialisable: {o!r}")


def _fast_encoder() -> Any:
    # the C encoder built once: json.dumps builds one per call, which doubles the cost of
    # encoding the small property dicts of the ingest hot path
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    chunks = make(None, _no_default, encoder.encode_basestring, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_ENCODE_FAST = _fast_encoder()


def dumps(value: Any) -> str:
    """Compact JSON text (keys sorted, non-ASCII kept)."""
    return _ENCODE(value)


def _us(v: dt.datetime | None) -> int | None:
    return None if v is None else to_epoch_us(v)


def _dt(v: int | None) -> dt.datetime | None:
    return None if v is None else from_epoch_us(int(v))


def check_text(owner: str, value: str | None, limit: int = TEXT_LEN) -> None:
    """Refuse text longer than the column holds.

    Raises:
        UsageError: naming ``owner``.
    """
    if value is not None and len(value) > limit:
        raise UsageError(f"{owner} is too long for the SQL store ({len(value)} > {limit} chars)")


def _tb_out(tb: str) -> str:
    # version tie-breaks may hold any character; PostgreSQL text cannot hold NUL
    return tb.replace("\\", "\\\\").replace("\x00", "\\0")


def _tb_in(tb: str) -> str:
    out, i = [], 0
    while i < len(tb):
        ch = tb[i]
        if ch == "\\" and i + 1 < len(tb):
            out.append("\x00" if tb[i + 1] == "0" else tb[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)
