"""Hardened XML reading for callback bodies (sans-I/O).

Callback XML is small and flat. We refuse anything that could make a parser do more than
read it: a document type declaration (the door to entity expansion and external entities),
any other ``<!…>`` declaration before the root element, and bodies over a size limit. Inside
the root element a DTD is a syntax error for expat, and undefined entities are errors too,
so refusing declarations in the prolog closes the whole class of entity attacks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from membermkt.errors import DecryptError

__all__ = ["DEFAULT_MAX_XML", "check_prolog", "parse_root"]

DEFAULT_MAX_XML = 1 << 20
"""Default largest XML document accepted (1 MiB)."""

_WS = b" \t\r\n"


def check_prolog(data: bytes) -> None:
    """Refuse a document whose prolog declares a DTD, entities or anything else ``<!…>``.

    Raises:
        DecryptError: naming the refused declaration.
    """
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    n = len(data)
    while True:
        while i < n and data[i] in _WS:
            i += 1
        if data.startswith(b"<?", i):
            j = data.find(b"?>", i + 2)
            if j < 0:
                raise DecryptError("XML: unterminated processing instruction")
            i = j + 2
            continue
        if data.startswith(b"<!", i):
            kind = data[i + 2 : i + 9].decode("ascii", "replace")
            raise DecryptError(f"XML: declarations are refused (found '<!{kind}')")
        return


def parse_root(xml: str | bytes, *, max_size: int = DEFAULT_MAX_XML) -> ET.Element:
    """Parse a callback document and return its root element.

    Raises:
        DecryptError: when the document is oversized, declares a DTD/entities, or is not
            well-formed XML.
    """
    if isinstance(xml, str):
        data = xml.encode("utf-8")
    elif isinstance(xml, bytes | bytearray | memoryview):
        data = bytes(xml)
    else:
        raise DecryptError(f"XML must be str or bytes, got {type(xml).__name__}")
    if len(data) > max_size:
        raise DecryptError(f"XML document is {len(data)} bytes, over the {max_size}-byte limit")
    check_prolog(data)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise DecryptError(f"XML is not well-formed: {exc}") from None
