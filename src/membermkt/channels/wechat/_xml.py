"""Hardened XML reading for callback bodies (sans-I/O).

Callback XML is small and flat. We refuse anything that could make a parser do more than
read it: a document type declaration (the door to entity expansion and external entities),
any other ``<!…>`` declaration before the root element, and bodies over a size limit. Inside
the root element a DTD is a syntax error for expat, and undefined entities are errors too,
so refusing declarations in the prolog closes the whole class of entity attacks.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from membermkt.errors import DecryptError

_BYTES = (bytes, bytearray, memoryview)

__all__ = ["DEFAULT_MAX_XML", "MAX_MARKUP", "check_prolog", "parse_fields", "parse_root"]

DEFAULT_MAX_XML = 1 << 20
"""Default largest XML document accepted (1 MiB)."""

MAX_MARKUP = 4096
"""Most ``<`` characters a document taking the full parser may have. Callback documents
are a few dozen elements (unconfirmed: the platform documents no limit; the largest known
pushes — mass-send results with copyright-check lists — stay well under a thousand).
Flat documents take the fast path and are not subject to it."""

_WS = b" \t\r\n"


_ENCODING = re.compile(rb"""encoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_UTF8_NAMES = frozenset({b"utf-8", b"utf8"})


def _check_declaration(decl: bytes) -> None:
    # The callback protocol is UTF-8; any other declared encoding is refused up front
    # (expat would decode some, e.g. latin-1, differently from the bytes we were sent).
    found = _ENCODING.search(decl)
    if found is None:
        return
    name = (found.group(1) or found.group(2) or b"").strip().lower()
    if name not in _UTF8_NAMES:
        shown = name[:20].decode("ascii", "replace")
        raise DecryptError(f"XML declares encoding {shown!r}; only UTF-8 is accepted")


def check_prolog(data: bytes) -> None:
    """Refuse a document whose prolog declares a DTD, entities or anything else ``<!…>``.

    Raises:
        DecryptError: naming the refused declaration.
    """
    if data.startswith(b"<xml>"):
        return
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    n = len(data)
    while True:
        while i < n and data[i] in _WS:
            i += 1
        if data.startswith(b"<?", i):
            j = data.find(b"?>", i + 2)
            if j < 0:
                raise DecryptError("XML: unterminated processing instruction")
            if data.startswith(b"<?xml", i):
                _check_declaration(data[i + 5 : j])
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
        try:
            data = xml.encode("utf-8")
        except UnicodeEncodeError:
            raise DecryptError("XML text is not encodable as UTF-8 (lone surrogate)") from None
    elif isinstance(xml, _BYTES):
        data = bytes(xml)
    else:
        raise DecryptError(f"XML must be str or bytes, got {type(xml).__name__}")
    if len(data) > max_size:
        raise DecryptError(f"XML document is {len(data)} bytes, over the {max_size}-byte limit")
    check_prolog(data)
    markup = data.count(b"<")
    if markup > MAX_MARKUP:
        # Bounds the parser's work: a deeply nested or element-stuffed body costs expat
        # (and the tree it builds) far more per byte than a real callback ever needs.
        raise DecryptError(f"XML has {markup} '<' characters, over the {MAX_MARKUP} limit")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptError("XML is not UTF-8") from None
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise DecryptError(f"XML is not well-formed: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat refuses an encoding it does not know (``encoding="GBK"``) with ValueError.
        raise DecryptError(f"XML declares an unsupported encoding: {exc}") from None


# --------------------------------------------------------------------------- fast path
#
# Nearly every push is ``<xml>`` followed by flat leaf elements whose text is either one
# CDATA section or plain text. For exactly that shape, one C-level regex pass gives the
# same fields as expat at a fraction of the cost. Anything else — attributes, nesting,
# entities, ``\r`` (XML normalises line ends), control characters, several CDATA sections,
# a prolog, non-UTF-8 — takes the expat path, so both paths agree on every input (a
# differential property test holds them to it).
#
# The pass is linear in the input for every input. Every repeated piece is ONE character
# class followed by a character that class excludes, so a run is scanned once and given
# back in O(1) per character on failure; and neither the CDATA text nor the plain text may
# contain ``<``, so a failed attempt never overlaps the next one (attempts start only at
# ``<``). CDATA text with ``]`` or ``<`` — legal XML, rare in pushes — takes expat. (An
# earlier pattern allowed ``]`` inside CDATA through an alternation under a star, and
# backtracked exponentially on an unterminated section: 24 characters took 11.6 s.)

_CTRL = r"\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff"
# Each match is a flat leaf element (tag, CDATA text, plain text) or, as the last
# alternative, everything from the first surprise to the end in one step — that "junk"
# match (empty tag) sends the document to expat.
_FAST_ITEM = re.compile(
    r"[ \t\n]*(?:<([A-Za-z_][A-Za-z0-9_.-]*)>"
    r"(?:<!\[CDATA\[([^<\]" + _CTRL + r"]*)\]\]>"
    r"|([^<&\]" + _CTRL + r"]*))</\1>|.+)",
    re.S,
)


def _fast_fields(data: bytes) -> dict[str, str] | None:
    if not data.startswith(b"<xml>"):
        return None
    try:
        text = data.decode("utf-8").rstrip(" \t\n")
    except UnicodeDecodeError:
        return None
    if not text.endswith("</xml>"):
        return None
    end = len(text) - 6
    while end > 5 and text[end - 1] in " \t\n":
        end -= 1
    fields = {tag: cdata or plain for tag, cdata, plain in _FAST_ITEM.findall(text, 5, end)}
    return None if "" in fields else fields


def parse_fields(
    xml: str | bytes, *, max_size: int = DEFAULT_MAX_XML
) -> tuple[dict[str, str], ET.Element | None]:
    """The leaf fields of a callback document (tag → text), and its root element when the
    document needed the full parser (``None`` on the fast path: no nested elements).

    Raises:
        DecryptError: as for :func:`parse_root`.
    """
    data = xml.encode("utf-8", "surrogatepass") if isinstance(xml, str) else xml
    if isinstance(data, bytes) and len(data) <= max_size:
        fast = _fast_fields(data)
        if fast is not None:
            return fast, None
    root = parse_root(xml, max_size=max_size)
    return {c.tag: c.text or "" for c in root if len(c) == 0}, root
