"""Keep secrets and phone numbers out of log records.

httpx logs every request URL at INFO (``HTTP Request: GET https://…?access_token=…``), and
some platform calls can only carry a credential in the URL (WeCom's ``gettoken`` takes
``corpsecret`` as a query parameter; every WeChat API takes ``access_token``).
membermkt's clients therefore install :class:`RedactingFilter` on the httpx / httpcore
loggers (:func:`install_redaction`) when they open their HTTP connection pools: each
record's formatted message has the values of ``access_token``, ``secret``, ``corpsecret``,
``key``, ``sign`` (and the other names in :data:`SECRET_NAMES`) replaced by
``[REDACTED]``, in URLs, JSON and XML alike, and mainland mobile numbers masked.

You can attach the same filter to your own handlers (``handler.addFilter(RedactingFilter())``)
to cover every logger of an application.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = [
    "HTTP_LOGGERS",
    "REDACTED",
    "SECRET_NAMES",
    "RedactingFilter",
    "install_redaction",
    "mask_phone",
    "redact",
]

REDACTED = "[REDACTED]"

SECRET_NAMES = (
    "access_token",
    "secret",
    "corpsecret",
    "key",
    "sign",
    "paysign",
    "signature",
    "msg_signature",
    "refresh_token",
    "component_access_token",
    "suite_access_token",
    "provider_access_token",
    "provider_secret",
    "suite_secret",
    "ticket",
    "jsapi_ticket",
    "api_key",
    "encoding_aes_key",
)
"""Parameter / field names whose values are always redacted (case-insensitive)."""

HTTP_LOGGERS = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack",
    "hpack.hpack",
    "hpack.table",
)
"""The loggers :func:`install_redaction` filters. A logger's filters do not see records of
its child loggers, so each one is named."""

_NAMES = "|".join(sorted((re.escape(n) for n in SECRET_NAMES), key=len, reverse=True))
# name=value in URLs and form bodies (up to the next separator)
_QUERY = re.compile(rf"(?i)(?<![A-Za-z0-9_])({_NAMES})(=)(?![\"'])[^&\s'\"<>#;,]*")
# "name": "value" in JSON (also single quotes, as in Python reprs)
# (each alternation is unambiguous — a backslash only ever matches the escape branch — so
# an unterminated string cannot make the regex backtrack exponentially)
_JSON = re.compile(rf"""(?i)(["']({_NAMES})["']\s*:\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
# <name>value</name> and <name><![CDATA[value]]></name> in XML
_XML = re.compile(rf"(?i)<({_NAMES})>(?:<!\[CDATA\[[^\]]*\]\]>|[^<]*)</\1>")
# name="value" in Authorization headers (WeChat Pay's signature="…")
_HEADER = re.compile(rf"""(?i)(?<![A-Za-z0-9_])({_NAMES})(=)(["'])[^"']*\3""")
# Mainland mobile numbers, optionally with +86 / 0086 / 86 (not part of a longer number).
_PHONE = re.compile(
    r"(?<![0-9])(?:\+?86[- ]?|0086[- ]?)?(1[3-9][0-9])[- ]?[0-9]{4}[- ]?[0-9]{4}(?![0-9])"
)


def mask_phone(text: str) -> str:
    """``text`` with every mainland mobile number masked (``138********``)."""
    return _PHONE.sub(lambda m: m.group(1) + "********", text)


def redact(text: str) -> str:
    """``text`` with secret values (see :data:`SECRET_NAMES`) replaced by ``[REDACTED]``
    and mainland mobile numbers masked.

    >>> redact("GET /cgi-bin/gettoken?corpid=ww1&corpsecret=s3cr3t")
    'GET /cgi-bin/gettoken?corpid=ww1&corpsecret=[REDACTED]'
    >>> redact('{"secret": "abc", "appid": "wx1"}')
    '{"secret": "[REDACTED]", "appid": "wx1"}'
    """
    if not isinstance(text, str):
        return text
    out = text
    if "=" in out:
        out = _HEADER.sub(lambda m: f"{m.group(1)}={m.group(3)}{REDACTED}{m.group(3)}", out)
        out = _QUERY.sub(lambda m: m.group(1) + "=" + REDACTED, out)
    if ":" in out:
        out = _JSON.sub(lambda m: f'{m.group(1)}"{REDACTED}"', out)
    if "<" in out:
        out = _XML.sub(lambda m: f"<{m.group(1)}>{REDACTED}</{m.group(1)}>", out)
    return mask_phone(out)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message through :func:`redact`.

    It never drops a record. When the message changes, the record's ``msg`` becomes the
    redacted text and its ``args`` are cleared (so no handler can format the secret back
    in); exception text is redacted too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            clean_exc = redact(text)
            if clean_exc != text:
                record.exc_text = clean_exc
        return True


_FILTER = RedactingFilter()
_LOCK = threading.Lock()


def install_redaction(names: tuple[str, ...] = HTTP_LOGGERS) -> RedactingFilter:
    """Install the shared :class:`RedactingFilter` on ``names`` (default: the httpx,
    httpcore and hpack loggers). Idempotent; membermkt's clients call it themselves.

    Returns:
        The installed filter.
    """
    with _LOCK:
        for name in names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(_FILTER)
    return _FILTER
