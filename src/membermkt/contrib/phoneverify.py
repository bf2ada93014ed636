"""One-time codes that prove a visitor holds the phone number they typed.

A typed number proves nothing: linking it to a member may only *attach* it
(``Evidence.CLAIMED``), never merge two members. After the visitor enters the code texted
to that number, the link carries ``Evidence.VERIFIED_PHONE`` and may merge — the follower
and the imported buyer known by that phone become one member.

:class:`PhoneVerifier` is stateless between requests except for two counters it keeps in
the store's budget ledger (so they hold across workers and restarts):

* ``phoneverify:send:<digest>:<day>`` — codes sent to one number per UTC day
  (``daily_per_number``, default 5): an SMS bomb costs the attacker nothing but the
  merchant money;
* ``phoneverify:try:<nonce>`` — wrong guesses of one code (``max_attempts``, default 5): a
  6-digit code with 5 tries is guessed with probability 5·10⁻⁶.

The challenge itself — a nonce, its expiry and an HMAC of (session, phone identity, nonce,
expiry, code) — travels in the visitor's signed session cookie; the code is never stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Literal

import attrs

from membermkt.core.identity import Identity, IdentityKind
from membermkt.core.ports import BudgetStore
from membermkt.errors import ConfigError, QuotaExceeded, UsageError

__all__ = ["Challenge", "CheckResult", "PhoneVerifier", "SendCode"]

SendCode = Callable[[str, str], None]
"""``send(number, code)``: text ``code`` to the normalised ``number`` (e.g. through an SMS
gateway); raise a :class:`~membermkt.errors.MembermktError` when it cannot be sent."""

CheckResult = Literal["ok", "wrong", "expired", "locked"]


@attrs.frozen(slots=True)
class Challenge:
    """A code sent to one phone identity for one session (safe to keep in a signed cookie:
    it holds no number and no code)."""

    nonce: str
    phone: Identity
    expires: float
    mac: str

    def encode(self) -> str:
        """``nonce.expires.mac.kind:namespace:value`` (identity token last: it holds ``:``)."""
        return f"{self.nonce}.{self.expires:.0f}.{self.mac}.{self.phone.token}"

    @classmethod
    def decode(cls, text: str) -> Challenge:
        """Parse :meth:`encode`.

        Raises:
            UsageError: for anything else.
        """
        parts = text.split(".", 3) if isinstance(text, str) else []
        if len(parts) != 4 or not parts[1].isdigit():
            raise UsageError("not a phone challenge")
        phone = Identity.from_token(parts[3])
        if phone.kind is not IdentityKind.PHONE:
            raise UsageError("not a phone challenge")
        return cls(parts[0], phone, float(parts[1]), parts[2])


class PhoneVerifier:
    """Texts a one-time code and checks it (see the module docstring).

    Args:
        send: how a code reaches the number (``send(number, code)``).
        secret: the HMAC key of challenges (≥ 16 bytes; e.g. the page's secret).
        ttl: seconds a code stays valid (default 300).
        max_attempts: wrong guesses allowed per code (default 5).
        daily_per_number: codes sent to one number per UTC day (default 5).
        digits: code length (default 6).

    Raises:
        ConfigError: for a short secret or a non-positive limit.
    """

    def __init__(
        self,
        send: SendCode,
        *,
        secret: bytes,
        ttl: float = 300.0,
        max_attempts: int = 5,
        daily_per_number: int = 5,
        digits: int = 6,
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ConfigError("the phone verifier's secret must be at least 16 bytes")
        if ttl <= 0 or max_attempts < 1 or daily_per_number < 1 or not 4 <= digits <= 10:
            raise ConfigError(
                "PhoneVerifier needs ttl > 0, max_attempts >= 1, daily_per_number >= 1 and "
                "4-10 digits"
            )
        self._send = send
        self._key = hmac.new(secret, b"phone-verifier", hashlib.sha256).digest()
        self.ttl = ttl
        self.max_attempts = max_attempts
        self.daily_per_number = daily_per_number
        self.digits = digits

    def __repr__(self) -> str:
        return f"PhoneVerifier(ttl={self.ttl}, max_attempts={self.max_attempts})"

    def _mac(self, sid: str, phone: Identity, nonce: str, expires: float, code: str) -> str:
        msg = "\n".join((sid, phone.token, nonce, f"{expires:.0f}", code)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def start(
        self, store: BudgetStore, number: str, phone: Identity, *, sid: str, now: dt.datetime
    ) -> Challenge:
        """Text a fresh code to ``number`` (whose identity is ``phone``) for session ``sid``.

        Raises:
            QuotaExceeded: when the number had ``daily_per_number`` codes today.
            MembermktError: whatever ``send`` raises.
        """
        day = now.astimezone(dt.UTC).date().isoformat()
        quota = f"phoneverify:send:{phone.value[:32]}:{day}"
        store.ensure_budget(quota, limit=self.daily_per_number)
        if not store.reserve([(quota, 1)]):
            raise QuotaExceeded(
                "too many codes sent to this number today",
                quota="phoneverify.daily_per_number",
                limit=self.daily_per_number,
            )
        code = f"{secrets.randbelow(10**self.digits):0{self.digits}d}"
        nonce = secrets.token_hex(8)
        expires = float(int(now.timestamp() + self.ttl))
        challenge = Challenge(nonce, phone, expires, self._mac(sid, phone, nonce, expires, code))
        self._send(number, code)
        return challenge

    def check(
        self,
        store: BudgetStore,
        challenge: Challenge,
        code: str,
        *,
        sid: str,
        now: dt.datetime,
    ) -> CheckResult:
        """Whether ``code`` is the one texted for ``challenge`` in session ``sid``:
        ``"ok"``, ``"wrong"``, ``"expired"``, or ``"locked"`` (too many wrong guesses; a
        new code is needed)."""
        if now.timestamp() > challenge.expires:
            return "expired"
        tries = f"phoneverify:try:{challenge.nonce}"
        store.ensure_budget(tries, limit=self.max_attempts)
        if not store.reserve([(tries, 1)]):
            return "locked"
        code = code.strip() if isinstance(code, str) else ""
        if not (code.isascii() and code.isdigit() and len(code) == self.digits):
            return "wrong"
        want = self._mac(sid, challenge.phone, challenge.nonce, challenge.expires, code)
        return "ok" if hmac.compare_digest(want, challenge.mac) else "wrong"
