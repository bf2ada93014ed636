"""Shared pieces of the red-packet core: the Beijing day, id patterns, field validators."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from membermkt.errors import UsageError

BEIJING: Final = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time (no daylight saving): the day boundary of WeChat Pay limits and of
the date inside bill numbers."""

_ID_RE = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")
_ALNUM_RE = re.compile(r"^[0-9A-Za-z]+$")


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{attribute.name} must be a positive int (fen), got {value!r}")


def _optional_positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{attribute.name} must be None or a positive int, got {value!r}")


def _day(as_of: dt.datetime) -> str:
    return as_of.astimezone(BEIJING).strftime("%Y%m%d")
