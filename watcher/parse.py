"""The parse stage: feed bytes → :class:`~watcher.models.ParsedFeed` of normalized items.

    body ──prepare──▶ JSON Feed? ── parse_json ──────────────────────────┐
       (UTF-8,        else lxml fast path (parse_lxml) ───────────────────┤
        screened)          └─refused─▶ feedparser (fallback) ─────────────┴─▶ normalize ──▶ ParsedFeed

:func:`parse_feed` is pure and module-level, so it can run in a process pool. A malformed feed yields
what could be read plus warnings; :class:`~watcher.errors.ParseError` only when a body holds neither
entries nor a feed title, with a plain description of what it held instead.
"""

from __future__ import annotations

import io
import re
import xml.sax
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import unescape

import feedparser
from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

from watcher.errors import ParseError
from watcher.models import ParsedFeed
from watcher.normalize import RawEntry, RawFeed, datetime_from_struct, normalize_feed
from watcher.parse_json import looks_like_json, read_json_feed
from watcher.parse_lxml import read_xml
from watcher.screen import foreign_encoding, prolog, screen, to_utf8, utf8_content_type

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_ENTITIES = {"&quot;": '"', "&apos;": "'"}  # with &amp; &lt; &gt;, which unescape() always handles
_HTML_PAGE = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_HTML_TITLE = re.compile(rb"<title[^>]*>([^<]{1,200})", re.I)
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml", "text/xml"})


def parse_feed(
    body: bytes,
    *,
    feed: str,
    url: str,
    content_type: str | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Read a fetched body into normalized items. ``url`` is the final URL (relative links resolve
    against it); ``now`` is the first-seen time used for items without a usable date."""
    now = now or datetime.now(UTC)
    if not body.strip():
        raise ParseError(feed, "empty body")
    fetched = body  # described as it came, should it hold no feed
    body, content_type, warnings = prepare(body, content_type)
    if looks_like_json(body):
        raw, more = read_json_feed(body, feed=feed)
        return _finish(raw, fetched, feed=feed, url=url, now=now, parser="jsonfeed", warnings=warnings + more)
    fast = read_xml(body, url=url, content_type=content_type)
    if not isinstance(fast, str):
        return _finish(fast, fetched, feed=feed, url=url, now=now, parser="lxml", warnings=warnings)
    # A body the fast path refused may not even be UTF-8: decode it here as feedparser would (its
    # fallbacks included) and screen the result, so feedparser reads exactly what was screened.
    body, problem = to_utf8(body, content_type)
    content_type = utf8_content_type(content_type)
    body, screened = screen(body, content_type)
    warnings += ([problem] if problem else []) + screened
    try:
        raw, more = read_feedparser(body, url=url, content_type=content_type)
    except Exception as exc:  # feedparser's own failures; the stage reports them as a ParseError
        raise ParseError(feed, f"unreadable feed ({type(exc).__name__}: {exc})") from exc
    return _finish(raw, fetched, feed=feed, url=url, now=now, parser="feedparser", warnings=warnings + more)


def prepare(body: bytes, content_type: str | None = None) -> tuple[bytes, str | None, list[str]]:
    """The bytes both parsers read: in UTF-8 (converted as feedparser would) and screened; the content
    type to go with them; and warnings about how the body was served."""
    warnings = _content_type_warnings(content_type)
    if foreign_encoding(body, content_type):
        body, problem = to_utf8(body, content_type)
        content_type = utf8_content_type(content_type)
        warnings += [problem] if problem else []
    body, screened = screen(body, content_type)
    return body, content_type, warnings + screened


def _finish(
    raw: RawFeed, body: bytes, *, feed: str, url: str, now: datetime, parser: str, warnings: list[str]
) -> ParsedFeed:
    parsed = normalize_feed(raw, feed=feed, url=url, now=now, parser=parser, warnings=warnings)
    if not parsed.items and not parsed.title:
        raise ParseError(feed, describe_body(body, warnings))
    return parsed


def read_feedparser(body: bytes, *, url: str, content_type: str | None = None) -> tuple[RawFeed, list[str]]:
    """Read ``body`` with feedparser (never from disk or network) into a RawFeed, with its warnings.

    HTML is neither sanitized nor rewritten (normalize strips it to text anyway), which also makes
    feedparser about three times faster.
    """
    result = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    warnings = _bozo_warnings(result, content_type)
    # feedparser's lenient parser (used when the XML is not well-formed) leaves '&amp;' and its kin
    # escaped in ids and authors; unescaped, an item keeps its key whether or not its feed is well-formed
    loose = isinstance(result.get("bozo_exception"), xml.sax.SAXException) or not result.get("encoding")
    channel = result.get("feed") or {}
    title_detail = channel.get("title_detail") or {}
    raw = RawFeed(
        title=_str(channel.get("title")),
        title_html=title_detail.get("type") in _HTML_TYPES,
        link=_str(channel.get("link")),
        language=_str(channel.get("language")),
        entries=[_raw_entry(entry, loose=loose) for entry in result.get("entries") or ()],
    )
    return raw, warnings


def _raw_entry(entry: dict[str, Any], *, loose: bool) -> RawEntry:
    """A feedparser entry as a RawEntry (plain dict access: FeedParserDict's aliases would mislead)."""
    title_detail = dict.get(entry, "title_detail") or {}
    raw = RawEntry(
        id=_str(dict.get(entry, "id")),
        link=_str(dict.get(entry, "link")),
        title=_str(dict.get(entry, "title")),
        title_html=title_detail.get("type") in _HTML_TYPES,
        language=_str(dict.get(entry, "language")) or _str(title_detail.get("language")),
    )
    summary = _str(dict.get(entry, "summary"))
    contents = [c for c in dict.get(entry, "content") or () if isinstance(c, dict)]
    if summary:
        detail = dict.get(entry, "summary_detail") or (contents[0] if contents else {})
        raw.summary, raw.summary_html = summary, detail.get("type", "text/html") in _HTML_TYPES
    else:
        for content in contents:
            if _str(content.get("value")):
                raw.summary, raw.summary_html = content["value"], content.get("type") in _HTML_TYPES
                break
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = dict.get(entry, key)
        if isinstance(parsed, tuple):
            raw.published = datetime_from_struct(parsed)
            break
    detail = dict.get(entry, "author_detail") or {}
    raw.author = _str(detail.get("name")) or _str(detail.get("email")) or _str(dict.get(entry, "author"))
    if loose:
        raw.id = raw.id and unescape(raw.id, _XML_ENTITIES)
        raw.author = raw.author and unescape(raw.author, _XML_ENTITIES)
    return raw


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bozo_warnings(result: dict[str, Any], content_type: str | None) -> list[str]:
    exc = result.get("bozo_exception")
    if not result.get("bozo") or exc is None:
        return []
    if isinstance(exc, xml.sax.SAXParseException):
        return [f"not well-formed XML at line {exc.getLineNumber()}: {exc.getMessage()}; read leniently"]
    if isinstance(exc, CharacterEncodingOverride):
        if "us-ascii" in str(exc) and not (content_type and "charset" in content_type.lower()):
            return []  # RFC 3023's us-ascii default for text/* types: not the publisher's error
        return [f"character encoding: {exc}"]
    if isinstance(exc, NonXMLContentType):
        return []  # said once by _content_type_warnings, whichever parser reads the body
    return [f"{type(exc).__name__}: {exc}"]


def _content_type_warnings(content_type: str | None) -> list[str]:
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if not mime or mime.endswith(("/xml", "+xml", "json")) or mime in _FEED_TYPES:
        return []
    return [f"served as {mime}, not as a feed or XML media type"]


def describe_body(body: bytes, warnings: list[str] | tuple[str, ...] = ()) -> str:
    """What a body that held no feed looked like, in plain words (for ParseError and feed health)."""
    head = body[:4096]
    if not body.strip():
        return "empty body"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data (the body was not decompressed), not a feed"
    if _HTML_PAGE.match(head):
        title = _HTML_TITLE.search(head)
        named = f" titled {title.group(1).decode('utf-8', 'replace').strip()!r}" if title else ""
        return f"HTML page{named}, not a feed"
    if looks_like_json(body):
        return "JSON document, not a JSON Feed"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not start.startswith(b"<"):
        text = start[:200].decode("utf-8", "replace")
        if "\ufffd" in text or not all(c.isprintable() or c.isspace() for c in text):
            return "binary data, not a feed"
        return f"text, not a feed: {' '.join(text.split())[:60]!r}"
    malformed = next((w for w in warnings if w.startswith("not well-formed XML")), None)
    if malformed:
        return malformed.removesuffix("; read leniently")
    root = _XML_ROOT.search(head, prolog(head)[0])
    if root and root.group(1).rpartition(b":")[2] not in (b"rss", b"feed", b"RDF", b"channel"):
        return f"XML document with root element <{root.group(1).decode('ascii', 'replace')}>, not a feed"
    return "a feed with no entries and no title"
