"""The lxml fast path: well-formed RSS 2.0/0.9x, RSS 1.0 (RDF) and Atom 1.0, read as feedparser reads them.

It is strict. Whatever it does not clearly understand (a body that is not well-formed UTF-8 XML, a
DOCTYPE, an unknown root, an entry with two authors of different kinds, a link nested in an unknown
element, an odd content type...) makes :func:`read_xml` return a reason instead of a feed, and the
caller falls back to feedparser. Where it accepts, it yields the RawEntries feedparser yields: it
follows feedparser's rules (watcher/parse_rules.py), and tests/test_parse_corpus.py compares the two on
every file of the real corpus.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from feedparser.urls import _urljoin, make_safe_absolute_uri
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from watcher.normalize import RawEntry, RawFeed
from watcher.parse_rules import (
    CONTENT_TYPES,
    HTML_TYPES,
    EntryState,
    Refused,
    Text,
    attributes,
    join_url,
    kind_of,
    leaf_text,
    parse_date,
    refuse,
    repair,
)
from watcher.screen import prolog

ATOM = "http://www.w3.org/2005/Atom"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS10 = "http://purl.org/rss/1.0/"
RSS090 = "http://my.netscape.com/rdf/simple/0.9/"
_ATOM_FEED, _RDF_ROOT = f"{{{ATOM}}}feed", f"{{{RDF}}}RDF"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
_BARE_DOCTYPE = re.compile(rb"<!DOCTYPE\s+[A-Za-z_:][\w.:-]*\s*>")
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_local = threading.local()


def read_xml(body: bytes, *, url: str, content_type: str | None = None) -> RawFeed | str:
    """The feed in ``body``, or the reason (a short phrase) why the fast path leaves it to feedparser."""
    try:
        return _read(body, url, content_type)
    except Refused as refused:
        return str(refused)


def _parser() -> Any:
    parser = getattr(_local, "parser", None)
    if parser is None:  # lxml parsers must not be shared between threads
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )  # not collect_ids=False: with it, lxml 6 tries to load external DTDs
    return parser


def _read(body: bytes, url: str, content_type: str | None) -> RawFeed:
    if content_type and (m := _CHARSET.search(content_type)) and m.group(1).lower() not in _UTF8:
        refuse(f"HTTP charset {m.group(1)}")
    head = body[:4]
    if b"\x00" in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        refuse("UTF-16/32 body")
    for start, end in prolog(body)[1]:  # feedparser drops DOCTYPEs; only a bare one may be ignored here
        if not _BARE_DOCTYPE.fullmatch(body, start, end):
            refuse("DOCTYPE with an external DTD or an internal subset")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        refuse(f"not well-formed: {exc}")
    except ValueError as exc:
        refuse(f"unreadable: {exc}")
    info = root.getroottree().docinfo
    if (info.encoding or "utf-8").lower() not in _UTF8:
        refuse(f"encoded as {info.encoding}")
    if info.xml_version not in ("1.0", None):
        refuse(f"XML version {info.xml_version}")
    namespaces = set(root.nsmap.values())
    if root.tag == "rss":
        return _Reader(url, atom=False).rss(root)
    if root.tag == _ATOM_FEED:
        if {RSS10, RSS090} & namespaces:
            refuse("Atom feed declaring an RSS 1.0 namespace")
        return _Reader(url, atom=True).atom(root)
    if root.tag == _RDF_ROOT:
        if ATOM in namespaces or not {RSS10, RSS090} & namespaces:
            refuse("RDF root with unexpected namespaces")
        return _Reader(url, atom=False).rdf(root)
    refuse(f"root element {root.tag}")


class _Reader:
    """One document's reading: the feed URL, the base URIs seen, and whether it is Atom."""

    def __init__(self, url: str, *, atom: bool) -> None:
        self.url = url
        self.is_atom = atom
        self.has_content = False  # feedparser's hasContent: set at feed level, it leaks into the next entry
        self._bases: dict[tuple[str, str | None], str] = {}

    def base(self, parent: str, el: Any) -> str:
        """The base URI inside ``el`` (feedparser re-joins it at every element, honouring xml:base)."""
        given = None
        if el.keys():  # most elements have no attributes: two lookups saved
            given = el.get(_XML_BASE)
            if given is None:
                given = el.get("base")
        key = (parent, given)
        base = self._bases.get(key)
        if base is None:
            target = parent if given is None else given
            base = (make_safe_absolute_uri(parent, target) or parent) if parent else _urljoin(parent, target)
            self._bases[key] = base
        return base

    @staticmethod
    def lang(parent: str | None, el: Any) -> str | None:
        if not el.keys():
            return parent
        given = el.get(_XML_LANG)
        if given is None:
            given = el.get("lang")
        if given is None:
            return parent
        return given or None

    # -- the three formats ----------------------------------------------------------------------------------

    def rss(self, root: Any) -> RawFeed:
        base, lang = self.base(self.url, root), self.lang(None, root)
        feed = RawFeed(language=lang)
        channel = None
        for child in root:
            if child.tag == "channel" and channel is None:
                channel = child
                self.channel(child, self.base(base, child), self.lang(lang, child), feed)
            elif kind_of(child)[0] == "ignore":
                self.check_nested(child, "the rss element")
            else:
                refuse(f"{child.tag} in the rss element")
        if channel is None:
            refuse("rss without a channel")
        return feed

    def atom(self, root: Any) -> RawFeed:
        base, lang = self.base(self.url, root), self.lang(None, root)
        feed = RawFeed(language=lang)
        self.channel(root, base, lang, feed)
        return feed

    def rdf(self, root: Any) -> RawFeed:
        base, lang = self.base(self.url, root), self.lang(None, root)
        feed = RawFeed()  # feedparser takes no language from xml:lang on rdf:RDF
        channel = None
        for child in root:
            kind = kind_of(child)[0]
            if kind == "entry":
                feed.entries.append(self.entry(child, base, lang))
            elif kind == "channel" and channel is None and child.tag != _ATOM_FEED:
                channel = child
                self.channel(child, self.base(base, child), self.lang(lang, child), feed)
            elif kind == "ignore":
                self.check_nested(child, "rdf:RDF")
            elif kind != "skip":
                refuse(f"{child.tag} in rdf:RDF")
        return feed

    def channel(self, channel: Any, base: str, lang: str | None, feed: RawFeed) -> None:
        """Feed-level title, link and language, and the entries, from a channel (or an Atom feed)."""
        title_closed = False  # feedparser stops taking feed titles after an entry, image or textinput
        summary_seen = False
        for child in channel:
            kind, name = kind_of(child)
            if kind == "entry":
                feed.entries.append(self.entry(child, base, lang))
                title_closed = True
            elif kind == "title":
                if title_closed:
                    refuse("feed title after the entries")
                value, html = self.content(child, "text/plain")
                if not feed.title:
                    feed.title, feed.title_html = value, html
            elif kind == "link":
                link = self.link(child, self.base(base, child), entry=False)
                if link is not None:
                    feed.link = link
            elif kind == "id":
                value, is_link = self.guid(child, self.base(base, child))
                if is_link and feed.link is None:
                    feed.link = value
            elif kind == "language":
                feed.language = leaf_text(child)
            elif kind == "skip":
                title_closed = True
            elif kind == "summary":  # a feed-level description after a summary counts as content
                if name != "abstract" and summary_seen and not self.has_content:
                    self.has_content = True
                elif name in ("summary", "itunes_summary"):
                    summary_seen = True
            elif kind in ("ignore", "name", "email", "author", "published", "updated", "created"):
                if len(child):
                    self.check_nested(child, "the feed")
            elif kind not in ("opaque", "source"):
                refuse(f"{child.tag} in the feed")

    # -- one entry ------------------------------------------------------------------------------------------

    def entry(self, item: Any, parent_base: str, parent_lang: str | None) -> RawEntry:
        base, lang = self.base(parent_base, item), self.lang(parent_lang, item)
        entry = RawEntry()
        if item.attrib:
            attrs = attributes(item)
            if "lastmod" in attrs or "href" in attrs:
                refuse("CDF attributes on an entry")
            entry.id = attrs.get("rdf:about") or None
        state = EntryState()
        state.has_content, self.has_content = self.has_content, False
        self.walk(item, 1, base, lang, entry, state)
        state.finish(entry)
        return entry

    def walk(
        self, parent: Any, depth: int, base: str, lang: str | None, entry: RawEntry, st: EntryState
    ) -> None:
        """Read an entry's elements in document order; below the top level only texts may hide."""
        for child in parent:
            kind, name = kind_of(child)
            if kind == "ignore" or kind == "name" or kind == "email":
                if len(child):
                    self.walk(child, depth + 1, base, self.lang(lang, child), entry, st)
            elif kind == "title":
                st.title(*self.content(child, "text/plain"), self.lang(lang, child), depth, name)
            elif kind == "summary":
                st.summary(self.text_of, child, name, depth)
            elif kind == "content":
                st.content(self.text_of, child, name)
            elif kind == "opaque":
                pass
            elif depth > 1:
                refuse(f"{child.tag} nested in an entry")
            elif kind == "link":
                link = self.link(child, self.base(base, child), entry=True)
                if link is not None:
                    entry.link = link
            elif kind == "id":
                entry.id, is_link = self.guid(child, self.base(base, child))
                if is_link and entry.link is None:
                    entry.link = entry.id
            elif kind in ("published", "updated", "created"):
                st.dates[kind] = parse_date(leaf_text(child))  # the last one wins, as in feedparser
            elif kind == "author":
                st.author(child)
            elif kind == "language":
                entry.language = leaf_text(child)
            elif kind == "source":
                st.source_seen = True
            elif name == "image" and not len(child):
                st.title_depth = -1  # feedparser's image handling forgets the title seen so far
            else:
                refuse(f"{child.tag} in an entry")

    def content(self, el: Any, default: str) -> tuple[str, bool]:
        """(value, is_html) of a title, summary or content element, as feedparser's pop() gives it."""
        return self.text_of(el, default).resolve()

    def text_of(self, el: Any, default: str) -> Text:
        """A title, summary or content element, checked now and read (stripped, repaired) on demand."""
        declared = default
        if el.attrib:
            attrs = attributes(el)
            if "mode" in attrs or "src" in attrs:
                refuse("content with a mode or src attribute")
            declared = attrs.get("type", declared)
        ctype = CONTENT_TYPES.get(declared)
        if ctype is None:
            refuse(f"content type {declared!r}")
        if ctype == "application/xhtml+xml":
            if not self.is_atom:
                refuse("XHTML content outside Atom")
        elif len(el):
            refuse(f"child elements in {el.tag}")
        return Text(el, ctype, guess=ctype == "text/plain" and not self.is_atom)

    def link(self, el: Any, base: str, *, entry: bool) -> str | None:
        """The link an element sets (None when it sets none), resolved as feedparser resolves it."""
        attrs = attributes(el) if el.attrib else {}
        if "url" in attrs or "uri" in attrs:
            refuse("link with a url or uri attribute")
        if "href" in attrs:
            rel = attrs.setdefault("rel", "alternate")
            ctype = attrs.get("type", "application/atom+xml" if rel == "self" else "text/html")
            if rel == "alternate" and CONTENT_TYPES.get(ctype, ctype) in HTML_TYPES:
                return join_url(base, attrs["href"])
            return None
        if len(el):
            refuse("link with child elements")
        raw = (el.text or "").strip()
        value = repair(join_url(base, raw)) if raw else ""
        if entry:
            value = value.replace("&amp;", "&")
        return _LINK_ENTITY.sub(r"&\g<1>", value)

    def guid(self, el: Any, base: str) -> tuple[str, bool]:
        """(id, whether it doubles as the link) of a guid or Atom id."""
        is_link = attributes(el).get("ispermalink", "true") == "true" if el.attrib else True
        if len(el):
            refuse("id with child elements")
        raw = (el.text or "").strip()
        return repair(join_url(base, raw) if raw and is_link else raw), is_link

    def check_nested(self, el: Any, where: str) -> None:
        """Refuse when an element we skip holds one that feedparser would read into the entry or feed.

        A name or email outside an author is harmless; opaque content and sources are not looked into.
        """
        for child in el:
            kind = kind_of(child)[0]
            if kind in ("opaque", "source"):
                continue
            if kind not in ("ignore", "name", "email"):
                refuse(f"{child.tag} nested in {where}")
            if len(child):
                self.check_nested(child, where)
