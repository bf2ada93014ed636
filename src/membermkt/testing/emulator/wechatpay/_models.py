"""The emulator's records: faults on purpose, money movements, queued callbacks, bills."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

_BILL_V2_MAX: Final = 28
_BILL_V3_MAX: Final = 32
_TRANSFER_PATH: Final = "/v3/fund-app/mch-transfer/transfer-bills"


class Fault(enum.StrEnum):
    """What the emulator can do wrong on purpose."""

    SYSTEMERROR = "systemerror"
    """v2 ``SYSTEMERROR`` / v3 HTTP 500; the payment took effect or not (coin flip)."""
    PROCESSING = "processing"
    """v2 ``PROCESSING`` / v3 state ``PROCESSING``; the payment is accepted (SENDING)."""
    TIMEOUT = "timeout"
    """No answer (``httpx.ReadTimeout``); the payment took effect or not (coin flip)."""


@attrs.frozen(slots=True, kw_only=True)
class Payment:
    """Money that really moved (one per bill; a bill is never paid twice)."""

    bill_no: str
    product: str
    openid: str
    amount_fen: int
    at: dt.datetime


@attrs.frozen(slots=True, kw_only=True)
class Callback:
    """A v3 callback the emulator wants to deliver: POST ``body`` with ``headers`` to ``url``."""

    url: str
    headers: Mapping[str, str]
    body: bytes


@attrs.define(slots=True)
class _Bill:
    product: str
    bill_no: str
    openid: str
    amount_fen: int
    status: str
    platform_id: str
    created_at: dt.datetime
    fields: dict[str, Any] = attrs.field(factory=dict)
