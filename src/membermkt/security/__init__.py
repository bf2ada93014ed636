"""Security helpers that are not platform protocol: log redaction and phone protection.

* :mod:`membermkt.security.redact` — a logging filter membermkt's HTTP clients install on
  the httpx/httpcore loggers so access tokens, secrets and signatures never reach a log.
* :mod:`membermkt.security.phones` — phone numbers at rest: a keyed blind index and the
  AES-GCM encrypted number (``MEMBERMKT_PHONE_KEYS``), key rotation.
* :mod:`membermkt.security.phone_policy` — which phone identities a persistent store keeps
  (a key ring, or ``insecure_demo``), and the demo's local key file.

See ``docs/security.md``.
"""

from __future__ import annotations

from membermkt.security.redact import RedactingFilter, install_redaction, redact

__all__ = ["RedactingFilter", "install_redaction", "redact"]
