"""feedparser's reading rules, reproduced for the lxml fast path (watcher/parse_lxml.py).

feedparser decides, element by element, what an entry's title, summary, link, id, date and author are.
These are its decisions, written out: how elements are named (namespace prefix + local name,
lowercased), which names it treats as titles, summaries and contents, which of two titles wins, how
RSS authors are split, how its URL joining and date parsing behave, and how it repairs text that was
mis-decoded. Anything outside these rules makes the fast path refuse (:func:`refuse`).
"""

from __future__ import annotations

import re
import xml.sax.saxutils
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from watcher.normalize import RawEntry, datetime_from_struct

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
CONTENT_TYPES = {
    "text": "text/plain",
    "plain": "text/plain",
    "text/plain": "text/plain",
    "html": "text/html",
    "text/html": "text/html",
    "xhtml": "application/xhtml+xml",
    "application/xhtml+xml": "application/xhtml+xml",
}
NAMESPACES = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_looks_like_html = _FeedParserMixin.looks_like_html


def looks_like_html(text: str) -> bool:
    """feedparser's guess whether a text/plain RSS field is really HTML (it needs a tag or an entity)."""
    return ("<" in text or "&" in text) and bool(_looks_like_html(text))


_C1 = re.compile("[\x80-\x9f]")
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# Shapes for which feedparser's URL joining and date parsing give a known answer, computed directly.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[^\x00-\x20\x7f#?;\[\]]*)?"
    r"(?:\?[^\x00-\x20\x7f#\[\]]+)?(?:#[^\x00-\x20\x7f\[\]]+)?"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_RFC822 = re.compile(
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?(\d{1,2})\s+([a-z]{3})[a-z]*\s+(\d{4})\s+"
    r"(\d{2}):(\d{2}):(\d{2})\s+(?:(gmt|ut|utc|z)|([+-])(\d{2}):?(\d{2}))",
    re.IGNORECASE,
)
_W3DTF = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)

# feedparser's element names (namespace prefix + "_" + lowercased local name) → what they mean here.
KINDS: dict[str, str] = {
    **dict.fromkeys(("title", "dc_title", "media_title"), "title"),
    **dict.fromkeys(
        ("description", "summary", "abstract", "dc_description", "media_description", "itunes_summary"),
        "summary",
    ),
    **dict.fromkeys(("content", "content_encoded"), "content"),
    **dict.fromkeys(("guid", "id"), "id"),
    "link": "link",
    **dict.fromkeys(("published", "pubdate", "issued", "dcterms_issued"), "published"),
    **dict.fromkeys(("updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"), "updated"),
    **dict.fromkeys(("created", "dcterms_created"), "created"),
    **dict.fromkeys(("author", "managingeditor", "dc_creator", "dc_author", "itunes_author"), "author"),
    **dict.fromkeys(("language", "dc_language"), "language"),
    **dict.fromkeys(("name", "itunes_name"), "name"),
    **dict.fromkeys(("email", "itunes_email"), "email"),
    **dict.fromkeys(("item", "entry"), "entry"),
    **dict.fromkeys(("channel", "feed"), "channel"),
    **dict.fromkeys(("image", "textinput"), "skip"),
    "source": "source",
    # content elements whose insides feedparser does not dispatch and whose values we do not read
    **dict.fromkeys(
        ("rights", "copyright", "dc_rights", "subtitle", "tagline", "itunes_subtitle", "info"), "opaque"
    ),
    # elements that change feedparser's state in ways not reproduced here
    **dict.fromkeys(("rss", "body", "xhtml_body", "fullitem", "feedburner_browserfriendly"), "refuse"),
    # feedparser stores unknown elements under their own name: these names would overwrite what we read
    **dict.fromkeys(
        ("title_detail", "summary_detail", "author_detail", "links", "authors", "guidislink", "date",
         "date_parsed", "published_parsed", "updated_parsed", "created_parsed", "modified_parsed",
         "issued_parsed", "contributors", "tags", "subtitle_detail", "href"),
        "refuse",
    ),
}  # fmt: skip
# the content type an element has when it names none (feedparser's defaults; the rest are text/plain)
DEFAULT_HTML = frozenset({"description", "dc_description", "media_description", "content_encoded"})
_KIND_BY_TAG: dict[Any, tuple[str, str]] = {}
_KIND_BY_TAG_AND_PREFIX: dict[Any, tuple[str, str]] = {}


class Refused(Exception):
    """The fast path declines a body; ``str(exc)`` says why."""


def refuse(reason: str) -> NoReturn:
    raise Refused(reason)


def kind_of(el: Any) -> tuple[str, str]:
    """(kind, feedparser's name) of an element; kind 'ignore' when it sets nothing we read."""
    tag = el.tag
    found = _KIND_BY_TAG.get(tag)
    if found is None:
        key = (tag, el.prefix)
        found = _KIND_BY_TAG_AND_PREFIX.get(key)
        if found is None:
            found, prefix_matters = classify(*key)
            cache: dict[Any, tuple[str, str]] = _KIND_BY_TAG_AND_PREFIX if prefix_matters else _KIND_BY_TAG
            if len(cache) > 10_000:  # a document of made-up names must not grow a worker's memory
                cache.clear()
            cache[key if prefix_matters else tag] = found
    return found


def classify(tag: Any, prefix: str | None) -> tuple[tuple[str, str], bool]:
    """((kind, name), whether the document's prefix mattered: it does for namespaces unknown to
    feedparser, whose elements it names by the prefix the document chose)."""
    if not isinstance(tag, str):  # an entity reference or another non-element node
        return ("refuse", ""), False
    namespace, _, local = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    lowered = namespace.lower()
    if "backend.userland.com/rss" in lowered:
        lowered = "http://backend.userland.com/rss"
    known = NAMESPACES.get(lowered)
    std = known if known is not None else (prefix or "")
    name = (std + "_" if std else "") + local.lower()
    return (KINDS.get(name, "ignore"), name), known is None


def leaf_text(el: Any) -> str:
    """An element's text as feedparser's pop() gives it: stripped, mis-decoded UTF-8 repaired."""
    if len(el):
        refuse(f"child elements in {el.tag}")
    return repair((el.text or "").strip())


def repair(text: str, *, c1: bool = True) -> str:
    """feedparser's repairs: UTF-8 that was read as Latin-1 is decoded again; C1 controls are read as
    Windows-1252 (``c1``; normalize does the same for titles and summaries)."""
    if not text.isascii():
        try:  # noqa: SIM105 - a hot path; contextlib.suppress costs more
            text = text.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        if c1 and _C1.search(text):
            text = text.translate(_cp1252)
    return text


def join_url(base: str, uri: str) -> str:
    """feedparser's ``_urljoin`` (the result is ``uri`` itself for a plain absolute http(s) URL)."""
    if _PLAIN_URL.fullmatch(uri):
        return uri
    joined: str = _urljoin(base, uri)
    return joined


def parse_date(text: str) -> datetime | None:
    """feedparser's date parsing, as UTC; common RFC 822 and W3C shapes are computed directly."""
    m = _RFC822.fullmatch(text) or _W3DTF.fullmatch(text)
    if m is None or (m.re is _RFC822 and m.group(2).lower() not in _MONTHS):
        return datetime_from_struct(_parse_date(text))
    if m.re is _RFC822:
        day, month, year, hour, minute, second, _, sign, tzh, tzm = m.groups()
        month = _MONTHS[month.lower()]
    else:
        year, month, day, hour, minute, second, _, sign, tzh, tzm = m.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
        if sign:
            offset = timedelta(hours=int(tzh), minutes=int(tzm))
            moment = moment - offset if sign == "+" else moment + offset
    except (ValueError, OverflowError):  # feedparser's other date handlers may still read it
        return datetime_from_struct(_parse_date(text))
    return moment


def attributes(el: Any) -> dict[str, str]:
    """Attributes keyed as feedparser keys them (lowercased, known namespaces prefixed)."""
    attrs: dict[str, str] = {}
    for key, value in el.attrib.items():
        if key.startswith("{"):
            namespace, _, local = key[1:].partition("}")
            prefix = NAMESPACES.get(namespace.lower(), "")
            key = (prefix + ":" if prefix else "") + local
        key = key.lower()
        attrs[key] = value.lower() if key in ("rel", "type") and value else value
    return attrs


def split_author(author: str) -> str | None:
    """feedparser's reading of an RSS author ('jo@example.org (Jo)' → 'Jo'): name, else email, else as is."""
    if not author:
        return None
    raw, email = author, None
    match = _EMAIL.search(author)
    if match:
        email = match.group(0)
        author = author.replace(email, "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
        author = author.strip()
        if author and author[0] == "(":
            author = author[1:]
        if author and author[-1] == ")":
            author = author[:-1]
        author = author.strip()
    return author or email or raw


_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)


def xhtml(el: Any) -> str:
    """Inline XHTML content as markup (feedparser rebuilds it its own way; only the text matters)."""
    parts = [xml.sax.saxutils.escape(el.text or "")]
    for child in el:
        parts.append(etree.tostring(child, encoding="unicode", with_tail=False))
        parts.append(xml.sax.saxutils.escape(child.tail or ""))
    return "".join(parts)


TextOf = Callable[[Any, str], "Text"]


class EntryState:
    """feedparser's per-entry bookkeeping for titles, summaries, contents and authors.

    Which of several titles wins depends on nesting depth and order (a media:title inside media:group
    loses to the entry's own title); a description that follows a summary becomes content; the first
    RSS author names the entry but the last Atom name does. These rules are feedparser's.
    """

    __slots__ = (
        "author_parts", "author_texts", "contents", "dates", "has_content", "source_seen", "summary_at",
        "summary_detail", "summary_present", "summary_value", "title_at", "title_depth", "title_detail",
        "title_value",
    )  # fmt: skip

    def __init__(self) -> None:
        self.title_depth = -1
        self.title_value: str | None = None
        self.title_at: int | None = None
        self.title_detail: tuple[bool, str | None] | None = None
        self.summary_present = False
        self.summary_value: Text | None = None
        self.summary_at: int | None = None
        self.summary_detail: Text | None = None
        self.has_content = False
        self.contents: list[Text] = []
        self.source_seen = False
        self.dates: dict[str, datetime | None] = {}
        self.author_texts: list[str] = []
        self.author_parts: dict[str, str] = {}

    def title(self, value: str, html: bool, lang: str | None, depth: int, name: str) -> None:
        if self.source_seen:
            refuse("a title after a source element")
        if -1 < self.title_depth <= depth:
            return
        if self.title_at is None or depth <= self.title_at:
            self.title_value, self.title_at = value, depth
        self.title_detail = (html, lang)
        if value and name != "media_title":  # feedparser lets a media:title yield to a later title
            self.title_depth = depth

    def summary(self, text_of: TextOf, el: Any, name: str, depth: int) -> None:
        if name != "abstract" and self.summary_present and not self.has_content:
            self.has_content = True  # feedparser reads it as content
            self.contents.append(text_of(el, "text/plain"))
            return
        text = text_of(el, "text/html" if name in DEFAULT_HTML else "text/plain")
        if self.summary_at is None or depth <= self.summary_at:
            self.summary_value, self.summary_at = text, depth
        self.summary_detail = text
        self.summary_present = True

    def content(self, text_of: TextOf, el: Any, name: str) -> None:
        self.has_content = True
        text = text_of(el, "text/html" if name in DEFAULT_HTML else "text/plain")
        self.contents.append(text)
        if not self.summary_present:
            self.summary_value, self.summary_present = text, True

    def author(self, el: Any) -> None:
        if not len(el):
            if self.author_parts:
                refuse("authors given both as text and as elements")
            self.author_texts.append(leaf_text(el))
            return
        if self.author_texts or (el.text or "").strip():
            refuse("authors given both as text and as elements")
        found = False
        for child in el:
            kind = kind_of(child)[0]
            if kind in ("name", "email"):
                self.author_parts[kind] = leaf_text(child)
                found = True
            elif kind != "ignore" or len(child):
                refuse(f"{child.tag} in an author")
        if not found:
            refuse("an author without name or email")

    def finish(self, entry: RawEntry) -> None:
        if self.title_detail is not None:
            entry.title, (entry.title_html, title_lang) = self.title_value, self.title_detail
            if entry.language is None:
                entry.language = title_lang
        if self.summary_value is not None and self.summary_value.present():
            detail = self.summary_detail or (self.contents[0] if self.contents else None)
            entry.summary = self.summary_value.resolve()[0]
            entry.summary_html = detail.resolve()[1] if detail else True
        else:
            chosen = next((text for text in self.contents if text.present()), None)
            if chosen is not None:
                entry.summary, entry.summary_html = chosen.resolve()
        entry.published = (
            self.dates.get("published") or self.dates.get("updated") or self.dates.get("created")
        )
        if self.author_texts:
            entry.author = next((split_author(t) for t in self.author_texts if t), None)
        elif self.author_parts:
            entry.author = self.author_parts.get("name") or self.author_parts.get("email") or None


class Text:
    """The text of a title, summary or content element, read only if it is used (contents run long).

    Its C1 control characters are left for normalize, which reads them as Windows-1252 like feedparser.
    """

    __slots__ = ("_stripped", "ctype", "el", "guess")

    def __init__(self, el: Any, ctype: str, *, guess: bool) -> None:
        self.el, self.ctype, self.guess = el, ctype, guess
        self._stripped: str | None = None

    def _value(self) -> str:
        if self._stripped is None:
            raw = xhtml(self.el) if self.ctype == "application/xhtml+xml" else self.el.text or ""
            self._stripped = raw.strip()
        return self._stripped

    def present(self) -> bool:
        """Whether the value is non-empty."""
        return bool(self._value())

    def resolve(self) -> tuple[str, bool]:
        """(value, is_html) as feedparser's pop() gives them."""
        value = self._value()
        ctype = "text/html" if self.guess and looks_like_html(value) else self.ctype
        return repair(value, c1=False), ctype != "text/plain"
