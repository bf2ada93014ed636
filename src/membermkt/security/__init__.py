"""Security helpers that are not platform protocol: log redaction and phone protection.

* :mod:`membermkt.security.redact` — a logging filter membermkt's HTTP clients install on
  the httpx/httpcore loggers so access tokens, secrets and signatures never reach a log.

See ``docs/security.md``.
"""

from __future__ import annotations

from membermkt.security.redact import RedactingFilter, install_redaction, redact

__all__ = ["RedactingFilter", "install_redaction", "redact"]
