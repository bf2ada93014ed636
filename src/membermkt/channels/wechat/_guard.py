"""Checks every callback endpoint makes before it trusts a push (sans-I/O).

Shared by the official-account and WeCom handlers: the query's text sanity, the freshness
window on the signed ``timestamp``, and the counters an operator watches.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping

from membermkt.errors import ConfigError, SignatureError

__all__ = ["DEFAULT_FRESHNESS", "Outcomes", "check_fresh", "check_window", "clean_query"]

DEFAULT_FRESHNESS = 300.0
"""Default freshness window, in seconds either side of ``now`` (5 minutes)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MAX_QUERY_VALUE = 4096


def clean_query(query: Mapping[str, str]) -> dict[str, str]:
    """The query parameters as plain ASCII strings.

    Every parameter the platform sends (signatures, timestamp, nonce, base64 echo, ids) is
    ASCII; anything else — a lone surrogate, a non-str, an over-long value — is refused here
    so later code never meets it.

    Raises:
        SignatureError: naming the offending parameter (never its value).
    """
    out: dict[str, str] = {}
    for key, value in query.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SignatureError("query parameters must be str")
        if not key.isascii() or not value.isascii():
            raise SignatureError(f"query parameter {key.encode('ascii', 'replace')!r} is not ASCII")
        if len(value) > _MAX_QUERY_VALUE:
            raise SignatureError(f"query parameter {key!r} is over {_MAX_QUERY_VALUE} characters")
        out[key] = value
    return out


def check_window(window: float | None) -> float | None:
    """Validate a freshness window setting.

    Raises:
        ConfigError: when it is not ``None`` or a positive number of seconds.
    """
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
        raise ConfigError(f"freshness must be None or a positive number of seconds, got {window!r}")
    return float(window)


def check_fresh(timestamp: str, *, now: float, window: float | None) -> None:
    """Refuse a push whose signed ``timestamp`` is more than ``window`` seconds from ``now``
    (either side). ``window=None`` disables the check (the timestamp must still be digits).

    Raises:
        SignatureError: for a missing, non-numeric or stale timestamp.
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError("timestamp is missing or not a plain integer")
    if window is None:
        return
    skew = int(timestamp) - now
    if abs(skew) > window:
        raise SignatureError(
            f"timestamp is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
            f"clock (window: {window:g} s either side); refused as stale or replayed"
        )


class Outcomes:
    """Thread-safe counters of what a handler did with its requests.

    Keys: ``accepted`` (a new push recorded), ``duplicate`` (a re-push), ``verified``
    (URL verification answered), ``refused`` (bad signature, downgrade, stale timestamp,
    unknown account), ``undecodable`` (undecryptable or not well-formed), ``unprocessable``
    (authentic but with unusable field values: answered so the platform stops retrying),
    ``too_large``, ``store_error`` (answered 503 so the platform retries).
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        """Count one request under ``key``."""
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def __repr__(self) -> str:
        return f"Outcomes({self.snapshot()})"
