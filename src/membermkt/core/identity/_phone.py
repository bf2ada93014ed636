"""Phone numbers: normalisation and keyed digests (a raw number is never stored)."""

from __future__ import annotations

import hashlib
import hmac
import re

from membermkt.errors import UsageError

__all__ = ["normalize_phone", "phone_digest"]

_NON_DIGITS = re.compile(r"[\s\-()+.]")


def normalize_phone(number: str) -> str:
    """Normalise a phone number to digits with a country code.

    Mainland-China numbers (11 digits starting with 1) get ``86`` prepended; a leading ``+``
    or ``00`` is dropped. Spaces, dashes, dots and brackets are ignored.

    Raises:
        UsageError: if what remains is not 6–15 digits.
    """
    if not isinstance(number, str):
        raise UsageError(f"phone number must be a str, got {type(number).__name__}")
    s = number.strip()
    if s.startswith("00"):
        s = s[2:]
    s = _NON_DIGITS.sub("", s)
    if not s.isdigit() or not 6 <= len(s) <= 15:
        # never echo the input: it is (nearly) a phone number, personal data
        raise UsageError(f"not a phone number ({len(number)} characters; 6-15 digits expected)")
    if len(s) == 11 and s.startswith("1"):
        s = "86" + s
    return s


def phone_digest(number: str, *, key: str = "") -> str:
    """A keyed SHA-256 hex digest of the normalised phone number.

    The same number (in any common formatting) always gives the same digest for the same
    ``key``; use a secret key per merchant so digests cannot be reversed by enumeration.
    """
    normalized = normalize_phone(number).encode()
    if key:
        return hmac.new(key.encode(), normalized, hashlib.sha256).hexdigest()
    return hashlib.sha256(normalized).hexdigest()
