"""Anti-CSRF ``state`` for OAuth web authorization, bound to a session (pure).

A state is ``ts(12 hex) ‖ nonce(16 hex) ‖ mac(32 hex)`` — 60 chars of ``[0-9a-f]``, inside
the platform's 128-byte ``[a-zA-Z0-9]`` rule. The MAC is HMAC-SHA256 over the session id,
the issue time and the nonce, so a state only verifies for the session that asked for it
(a link crafted by an attacker carries the attacker's session, not the victim's), only
until ``ttl`` has passed, and — through :class:`UsedStates` — only once.

Time is an argument (unix seconds); the nonce comes from the caller (``secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading

import attrs

from membermkt.errors import ConfigError, SignatureError, UsageError

__all__ = ["StateClaims", "StateSigner", "UsedStates"]

_STATE_RE = re.compile(r"([0-9a-f]{12})([0-9a-f]{16})([0-9a-f]{32})")
_NONCE_RE = re.compile(r"[0-9a-f]{16}")


@attrs.frozen(slots=True)
class StateClaims:
    """What a verified state says: issued at ``issued_at`` (unix seconds) with ``nonce``."""

    issued_at: int
    nonce: str


class StateSigner:
    """Issues and verifies session-bound OAuth states.

    Args:
        secret: the server's signing key (≥ 16 bytes; keep it out of the code).
        ttl: seconds a state stays valid (default 600: the platform's code itself lives
            5 minutes, plus time on the consent screen).

    Raises:
        ConfigError: for a short secret or a non-positive ttl.
    """

    def __init__(self, secret: bytes, *, ttl: int = 600) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ConfigError("the OAuth state secret must be at least 16 bytes")
        if ttl <= 0:
            raise ConfigError("the OAuth state ttl must be positive")
        self._secret = secret
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"StateSigner(ttl={self.ttl})"

    def _mac(self, session_id: str, ts: str, nonce: str) -> str:
        msg = f"{session_id}\n{ts}\n{nonce}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def issue(self, session_id: str, *, now: float, nonce: str) -> str:
        """A state for ``session_id`` issued at ``now``.

        Raises:
            UsageError: for an empty session id or a nonce that is not 16 hex chars
                (use ``secrets.token_hex(8)``).
        """
        if not session_id:
            raise UsageError("an OAuth state needs a session id")
        if not _NONCE_RE.fullmatch(nonce):
            raise UsageError("the state nonce must be 16 lower-case hex chars")
        ts = f"{int(now):012x}"
        return ts + nonce + self._mac(session_id, ts, nonce)

    def verify(self, state: str, session_id: str, *, now: float) -> StateClaims:
        """Check that ``state`` was issued for ``session_id`` and has not expired.

        Raises:
            SignatureError: malformed, signed for another session (CSRF), or expired.
        """
        m = _STATE_RE.fullmatch(state or "")
        if m is None or not session_id:
            raise SignatureError("OAuth state is malformed")
        ts, nonce, mac = m.groups()
        if not hmac.compare_digest(mac, self._mac(session_id, ts, nonce)):
            raise SignatureError("OAuth state does not belong to this session (possible CSRF)")
        issued = int(ts, 16)
        if now - issued > self.ttl or issued - now > 60:
            raise SignatureError("OAuth state has expired; start the authorization again")
        return StateClaims(issued, nonce)


class UsedStates:
    """States already consumed (in-process; pass your own shared one across workers).

    Entries are kept for ``ttl`` seconds after use — after that the signer refuses the
    state as expired anyway.
    """

    def __init__(self, ttl: int = 600) -> None:
        self.ttl = ttl
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def consume(self, state: str, *, now: float) -> None:
        """Mark ``state`` used.

        Raises:
            SignatureError: when it was used before (a replayed callback URL).
        """
        with self._lock:
            for s, at in list(self._used.items()):
                if now - at > self.ttl:
                    del self._used[s]
            if state in self._used:
                raise SignatureError("OAuth state was already used (replayed callback)")
            self._used[state] = now
