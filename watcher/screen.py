"""Byte screening before any XML parser: DOCTYPE internal subsets that declare entities are removed.

An entity declared in a feed's own DOCTYPE is how billion-laughs bombs, quadratic blow-ups (one 5 KB
entity referenced 20,000 times) and external entities (``SYSTEM "file:///etc/passwd"``) get in.
Like defusedxml, we do not allow them: a DOCTYPE whose internal subset declares ``<!ENTITY`` is cut out
before lxml or feedparser sees the bytes, so references to those entities stay unexpanded text.

Normal feeds cost a look at their first few hundred bytes. Bodies in encodings where markup is not plain
ASCII bytes (UTF-16/32, UTF-7, EBCDIC, ISO-2022...) are first converted to UTF-8 exactly as feedparser
would decode them, so that the screen sees what the parsers will see.
"""

from __future__ import annotations

import codecs
import re

from feedparser.encodings import convert_to_utf8
from feedparser.exceptions import CharacterEncodingOverride, CharacterEncodingUnknown

_XML_DECLARED = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY[^>]*>", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<\w")  # where feedparser's own DOCTYPE handling stops looking
_SPACE = b" \t\r\n"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32le"),
    (codecs.BOM_UTF32_BE, "utf-32be"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
    (codecs.BOM_UTF8, "utf-8"),
)
_UTF16LE_NO_BOM = re.compile(rb"(?:[ \t\r\n]\x00)*<\x00[^\x00]\x00")
_UTF16BE_NO_BOM = re.compile(rb"(?:\x00[ \t\r\n])*\x00<\x00[^\x00]")
_ADDED_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>\n"
_NAME_START = re.compile(rb"<[A-Za-z_:\x80-\xff]")

# Encodings in which every ASCII byte is that ASCII character: markup can be screened as bytes.
_TRANSPARENT = re.compile(
    r"utf-8|ascii|latin-1|iso8859-\d+|cp125\d|cp8\d\d|cp437|cp720|cp737|cp775|cp874|cp932|cp949|cp950"
    r"|cp1006|cp1125|koi8-[a-z]+|kz1048|ptcp154|mac-[a-z]+|tis-620|gb2312|gbk|gb18030|big5|big5hkscs"
    r"|euc_[a-z0-9_]+|shift_jis|shift_jis_2004|shift_jisx0213|johab|hp-roman8|utf-8-sig"
)


def screen(body: bytes, content_type: str | None = None) -> tuple[bytes, list[str]]:
    """The body with entity-declaring DOCTYPEs removed, and what was done, in plain words.

    ``content_type`` (the HTTP header, optional) matters only for its charset. A body that a parser
    would decode from UTF-16, UTF-7 or the like comes back converted to UTF-8 (see :func:`opaque_encoding`).
    """
    warnings: list[str] = []
    if opaque_encoding(body, content_type):
        body, problem = to_utf8(body, content_type)
        if problem:
            warnings.append(problem)
    root, doctypes = prolog(body)
    if b"<!" not in body[:root]:
        return body, warnings
    removed = 0
    for start, end in reversed(doctypes):
        if _ENTITY.search(body, start, end):
            body = body[:start] + body[end:]
            removed += 1
    # feedparser's lenient parser also takes declarations from anywhere before the first "<" + letter;
    # a whole declaration there holds no "<" + letter, so removing them does not move that point
    head_end = _feedparser_head_end(body)
    head, found = _ENTITY_DECL.subn(b"", body[:head_end])
    if found:
        body = head + body[head_end:]
        removed += found
    if removed:
        warnings.append(
            "removed entity declarations from the document type (an internal DTD subset); "
            "references to those entities stay unexpanded"
        )
    return body, warnings


def opaque_encoding(body: bytes, content_type: str | None = None) -> str | None:
    """The first encoding a parser might use in which markup is not plain ASCII bytes (UTF-16, UTF-7,
    EBCDIC...), else None. :func:`screen` converts such bodies to UTF-8 first."""
    for name, canonical in _candidates(body, content_type):
        if canonical is not None and not _TRANSPARENT.fullmatch(canonical):
            return name
    return None


def foreign_encoding(body: bytes, content_type: str | None = None) -> str | None:
    """The first encoding other than UTF-8 (or ASCII) that the BOM, the HTTP charset or the XML
    declaration names, else None: such a body is best converted with :func:`to_utf8` before parsing."""
    for name, canonical in _candidates(body, content_type):
        if canonical not in ("utf-8", "ascii", "utf-8-sig"):
            return name
    return None


def to_utf8(body: bytes, content_type: str | None = None) -> tuple[bytes, str | None]:
    """The body decoded exactly as feedparser decodes it (BOM, HTTP charset, XML declaration, then
    fallbacks) and re-encoded as UTF-8 with a matching declaration; and a warning when the declared
    encoding did not fit. A byte order mark (or UTF-16 without one) decides the encoding."""
    charset_given = bool(content_type and _CHARSET.search(content_type))
    unmarked = _unicode_by_bom(body)
    narrow = not unmarked and _wide_declared_narrow(body)
    if unmarked:  # the byte order mark wins over any charset named elsewhere (feedparser lets it lose)
        content_type = f"application/xml; charset={unmarked}"
    elif narrow:
        # '<?xml ... encoding="utf-16"?>' in one-byte characters cannot be UTF-16: read the bytes as they
        # are (UTF-8, else feedparser's fallbacks), or the result would flip with the body's length
        content_type = "application/xml; charset=utf-8"
    result: dict[str, object] = {}
    converted: bytes = convert_to_utf8({"content-type": content_type or "application/xml"}, body, result)
    if converted.startswith(_ADDED_DECLARATION) and not _has_declaration(body, result.get("encoding")):
        # feedparser put a declaration on a line of its own: keep it on the first line, so that
        # line numbers in parse errors are the publisher's
        converted = _ADDED_DECLARATION[:-1] + converted[len(_ADDED_DECLARATION) :]
    problem = result.get("bozo_exception")
    if isinstance(problem, CharacterEncodingUnknown) or (
        # feedparser assumes us-ascii for text/* without a charset (RFC 3023): not the publisher's error
        isinstance(problem, CharacterEncodingOverride) and ("us-ascii" not in str(problem) or charset_given)
    ):
        return converted, f"character encoding: {problem}"
    if narrow:
        encoding = result.get("encoding") or "utf-8"
        return (
            converted,
            f"character encoding: declared as UTF-16 or UTF-32 in one-byte text; read as {encoding}",
        )
    return converted, None


def _wide_declared_narrow(body: bytes) -> bool:
    """The XML declaration names UTF-16 or UTF-32, but is itself written in one-byte characters."""
    declared = _XML_DECLARED.match(body[:512])
    if not declared or b"\x00" in body[:4]:
        return False
    try:
        name = codecs.lookup(declared.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return False
    return name.startswith(("utf-16", "utf-32"))


def _has_declaration(body: bytes, encoding: object) -> bool:
    for bom, _ in _BOMS:
        if body.startswith(bom):
            body = body[len(bom) :]
            break
    try:
        return body[:64].decode(str(encoding or "utf-8"), "ignore").startswith("<?xml")
    except LookupError:
        return False


def _unicode_by_bom(body: bytes) -> str | None:
    """The Unicode encoding a byte order mark names, or that '<' in UTF-16 without one shows."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    if _UTF16LE_NO_BOM.match(body):
        return "utf-16le"
    if _UTF16BE_NO_BOM.match(body):
        return "utf-16be"
    return None


def utf8_content_type(content_type: str | None) -> str:
    """The content type with its charset set to UTF-8 (for a body that :func:`to_utf8` converted)."""
    mime = (content_type or "application/xml").split(";", 1)[0].strip() or "application/xml"
    return f"{mime}; charset=utf-8"


def _candidates(body: bytes, content_type: str | None) -> list[tuple[str, str | None]]:
    """(name, Python codec name or None when unknown) of the encodings the body might be read in."""
    names: list[str] = []
    head = body[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head:
        names.append("utf-16")
    elif head == b"\x4c\x6f\xa7\x94":
        names.append("cp037")
    if content_type and (charset := _CHARSET.search(content_type)):
        names.append(charset.group(1))
    if declared := _XML_DECLARED.match(body[:512]):
        names.append(declared.group(1).decode("ascii"))
    found: list[tuple[str, str | None]] = []
    for name in names:
        try:
            found.append((name, codecs.lookup(name).name))
        except LookupError:
            found.append((name, None))
    return found


def prolog(body: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Where the root element starts, and the spans of the DOCTYPE declarations before it.

    The XML declaration, PIs and comments are skipped as an XML parser skips them; stray text is
    skipped as a lenient parser skips it.
    """
    pos, size, doctypes = 0, len(body), []
    if body.startswith(b"\xef\xbb\xbf"):
        pos = 3
    while pos < size:
        while pos < size and body[pos] in _SPACE:
            pos += 1
        if body.startswith(b"<?", pos):
            end = body.find(b"?>", pos + 2)
            pos = size if end < 0 else end + 2
        elif body.startswith(b"<!--", pos):
            end = body.find(b"-->", pos + 4)
            pos = size if end < 0 else end + 3
        elif body[pos : pos + 9].upper() == b"<!DOCTYPE":
            end = _doctype_end(body, pos)
            doctypes.append((pos, end))
            pos = end
        elif _NAME_START.match(body, pos):
            return pos, doctypes
        else:
            end = body.find(b"<", pos + 1)
            pos = size if end < 0 else end
    return size, doctypes


def _doctype_end(body: bytes, start: int) -> int:
    """The index just past a DOCTYPE declaration (quotes, comments and PIs in its subset respected)."""
    pos, size, in_subset = start + 9, len(body), False
    while pos < size:
        char = body[pos : pos + 1]
        if char in (b'"', b"'"):
            end = body.find(char, pos + 1)
            pos = size if end < 0 else end + 1
        elif in_subset and body.startswith(b"<!--", pos):
            end = body.find(b"-->", pos + 4)
            pos = size if end < 0 else end + 3
        elif in_subset and body.startswith(b"<?", pos):
            end = body.find(b"?>", pos + 2)
            pos = size if end < 0 else end + 2
        elif char == b"[":
            in_subset, pos = True, pos + 1
        elif char == b"]" and in_subset:
            in_subset, pos = False, pos + 1
        elif char == b">" and not in_subset:
            return pos + 1
        else:
            pos += 1
    return size


def _feedparser_head_end(body: bytes) -> int:
    """feedparser collects 'safe' entity declarations from the bytes before the first ``<`` + letter."""
    m = _FIRST_ELEMENT.search(body)
    return len(body) if m is None else m.start() + 1
