"""A fixed phone key for tests and synthetic data (never for real numbers).

Stores that keep members at rest refuse phone identities without a key
(:mod:`membermkt.security.phone_policy`). Tests, benchmarks and synthetic data use this
*published* key, so their digests are keyed exactly as production ones are — and are
reversible by anyone who reads this file, which is why it must never protect real numbers.

>>> from membermkt.testing.phones import TEST_PHONES
>>> TEST_PHONES.identity("138 0013 8000").namespace
'test'
"""

from __future__ import annotations

import hashlib

from membermkt.security.phones import PhoneKey, PhoneProtector

__all__ = ["TEST_PHONES", "TEST_PHONE_KEY"]

TEST_PHONE_KEY = PhoneKey("test", hashlib.sha256(b"membermkt published test phone key").digest())
"""The published test key (key id ``"test"``)."""

TEST_PHONES = PhoneProtector(TEST_PHONE_KEY)
"""A :class:`~membermkt.security.phones.PhoneProtector` with only :data:`TEST_PHONE_KEY`."""
