"""From a parsed entry to an :class:`~watcher.models.Item`: stable key, canonical link, plain text, UTC dates.

Both parse paths (the lxml fast path and feedparser) hand a :class:`RawEntry` to :func:`normalize_entry`,
so whichever parser read a feed, the items come out the same. Normalizing is idempotent: an Item turned
back into a RawEntry (:func:`raw_from_item`) normalizes to itself.
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
import time
from calendar import timegm
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from feedparser.html import _cp1252 as _CP1252
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from watcher.models import Item, ParsedFeed

TITLE_LIMIT = 1_000
SUMMARY_LIMIT = 2_000
AUTHOR_LIMIT = 200
KEY_LIMIT = 512
FUTURE_TOLERANCE = timedelta(minutes=10)

# Query parameters that only track the reader: dropped from links. Names compare case-insensitively.
TRACKING_PREFIXES = ("utm_", "at_", "ns_", "pk_", "mtm_", "hsa_", "_hs")
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "igshid", "mc_cid", "mc_eid", "ocid", "cmpid", "icid", "mkt_tok", "oly_anon_id",
        "oly_enc_id", "vero_id", "wt.mc_id", "wt_mc_id", "s_cid", "smid", "ito", "rss_source",
        "cmp", "__twitter_impression", "spm", "ref_src", "ref_url", "maca", "traffic_source",
    }
)  # fmt: skip

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# A space before block-level tags, so that "<p>a</p><p>b</p>" reads "a b", not "ab".
_BLOCK_TAG = re.compile(
    r"<(?=/?(?:p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|blockquote|pre|section|article"
    r"|header|footer|aside|nav|figure|figcaption|address|main)[\s/>])",
    re.IGNORECASE,
)
_DROPPED_TAGS = ("script", "style", "template", "noscript", "head")
_DROPPED = re.compile(r"<(?:script|style|template|noscript|head|title|meta|link|base)", re.IGNORECASE)
_SIMPLE_LINK = re.compile(
    r"(https?)://([a-z0-9.-]+)(/[^\x00-\x20\x7f#?\[\]\\]*)?(?:\?([^\x00-\x20\x7f#\[\]\\]*))?"
)
_LANGUAGE = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8})*")
_local = threading.local()  # lxml parsers must not be shared between threads


@dataclass(slots=True)
class RawEntry:
    """One entry as a parser read it: strings as found (HTML or not), links already resolved by the parser."""

    id: str | None = None
    link: str | None = None
    title: str | None = None
    title_html: bool = False
    summary: str | None = None
    summary_html: bool = True
    published: datetime | None = None
    language: str | None = None
    author: str | None = None


@dataclass(slots=True)
class RawFeed:
    """A feed document as a parser read it: feed-level title, link, language and the entries in order."""

    title: str | None = None
    title_html: bool = False
    link: str | None = None
    language: str | None = None
    entries: list[RawEntry] = field(default_factory=list)


def normalize_feed(
    raw: RawFeed, *, feed: str, url: str, now: datetime, parser: str, warnings: list[str]
) -> ParsedFeed:
    """A ParsedFeed of normalized items. Entries that repeat an earlier key, or hold no title, summary or
    link (a feed cut short leaves one), are dropped with a warning."""
    items: list[Item] = []
    keys: set[str] = set()
    repeated = empty = 0
    for entry in raw.entries:
        item = normalize_entry(entry, feed=feed, base_url=url, language=raw.language, now=now)
        if not (item.title or item.summary or item.link):
            empty += 1
        elif item.key in keys:
            repeated += 1
        else:
            keys.add(item.key)
            items.append(item)
    if repeated:
        warnings = [*warnings, f"{repeated} entries repeated the id of an earlier entry and were skipped"]
    if empty:
        warnings = [*warnings, f"{empty} entries had no title, summary or link and were skipped"]
    return ParsedFeed(
        feed=feed,
        title=plain_text(raw.title, html=raw.title_html, limit=TITLE_LIMIT),
        link=canonical_link(raw.link or "", url),
        language=normalize_language(raw.language),
        items=tuple(items),
        warnings=tuple(warnings),
        parser=parser,
    )


def datetime_from_struct(parsed: time.struct_time | tuple[int, ...] | None) -> datetime | None:
    """A UTC datetime from feedparser's UTC ``struct_time``; None when absent or out of range."""
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        return None


def normalize_entry(raw: RawEntry, *, feed: str, base_url: str, language: str | None, now: datetime) -> Item:
    """Normalize one entry. ``language`` is the feed's (for entries that name none); ``now`` is first-seen."""
    title = plain_text(raw.title, html=raw.title_html, limit=TITLE_LIMIT)
    summary = plain_text(raw.summary, html=raw.summary_html, limit=SUMMARY_LIMIT)
    link = canonical_link(raw.link or "", base_url)
    published, known = utc_published(raw.published, now)
    return Item(
        feed=feed,
        key=item_key(raw.id, link, title, summary),
        link=link,
        title=title,
        summary=summary,
        published=published,
        published_known=known,
        language=normalize_language(raw.language) or normalize_language(language),
        author=plain_text(raw.author, html=False, limit=AUTHOR_LIMIT) or None,
    )


def raw_from_item(item: Item) -> RawEntry:
    """The RawEntry that normalizes back to ``item`` (for re-normalizing stored items)."""
    return RawEntry(
        id=item.key,
        link=item.link,
        title=item.title,
        title_html=False,
        summary=item.summary,
        summary_html=False,
        published=item.published if item.published_known else None,
        language=item.language,
        author=item.author,
    )


def item_key(entry_id: str | None, link: str, title: str, summary: str = "") -> str:
    """The entry's id as given, else its canonical link, else a hash of its title (or, for an entry with
    neither title nor link, as RSS allows, of its summary)."""
    key = _clean(entry_id or "").strip()
    if not key:
        key = link
    if not key:
        basis = f"{title}\n{link}" if title else f"\n\n{summary}"
        return "sha1:" + hashlib.sha1(basis.encode()).hexdigest()  # noqa: S324 - an id, not a secret
    if len(key) > KEY_LIMIT:
        return "sha1:" + hashlib.sha1(key.encode()).hexdigest()  # noqa: S324
    return key


def canonical_link(link: str, base: str = "") -> str:
    """An absolute http(s) link without fragment or tracking parameters; '' when there is none.

    >>> canonical_link("/a?utm_source=rss&id=3#top", "https://Example.org/feed")
    'https://example.org/a?id=3'
    """
    link = _clean(link).strip()
    if not link:
        return ""
    simple = _SIMPLE_LINK.fullmatch(link)
    if simple:  # the common shape, answered without urllib (same result)
        scheme, host, path, query = simple.groups()
        if query:
            query = "&".join(p for p in query.split("&") if p and not _is_tracking(p))
        built = f"{scheme}://{host}{path or '/'}{'?' + query if query else ''}"
        return built.rstrip()  # white space left before a dropped query or fragment
    try:
        if base and not link.lower().startswith(("http://", "https://")):
            link = urljoin(_clean(base).strip(), link)
        parts = urlsplit(link)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return ""
        userinfo, at, hostport = parts.netloc.rpartition("@")
        hostport = hostport.lower()
        if (scheme, hostport.rpartition(":")[2]) in (("http", "80"), ("https", "443")):
            hostport = hostport.rpartition(":")[0]
        query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p))
        return urlunsplit((scheme, userinfo + at + hostport, parts.path or "/", query, "")).rstrip()
    except ValueError:  # e.g. an unclosed IPv6 bracket or a bad port
        return ""


def _is_tracking(param: str) -> bool:
    name = param.split("=", 1)[0].lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def plain_text(value: str | None, *, html: bool, limit: int) -> str:
    """Text without markup or entities (when ``html``), controls removed, whitespace folded, capped.

    A long value is first read from its start only (2 × limit characters, then 8 ×, cut before a tag):
    when that already gives more than ``limit`` characters of text, the rest cannot change the result.
    """
    if not value:
        return ""
    for window in (2 * limit, 8 * limit):
        if len(value) <= window + window // 4:
            break
        cut = value.rfind("<", window // 2, window) if html else -1
        head = _plain(value[: cut if cut > 0 else window], html=html)
        if head.rfind(" ") > limit:  # the last word may be cut short; everything before it is final
            return _cap(head, limit)
    return _cap(_plain(value, html=html), limit)


def _plain(value: str, *, html: bool) -> str:
    text = html_to_text(_clean(value)) if html else value
    if text.isprintable():  # no controls and no white space but ' ': folding is all there is to do
        if "  " in text or text[:1] == " " or text[-1:] == " ":
            return " ".join(text.split())
        return text
    return " ".join(_clean(text).split())


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ", limit - 100)
    if space > 0:
        cut = cut[:space]
    return cut.rstrip() + "…"


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment (scripts and styles dropped, blocks apart), not yet folded."""
    if "<" not in markup:
        return html.unescape(markup) if "&" in markup else markup
    return _parse_text(_BLOCK_TAG.sub(" <", markup))


def _parse_text(markup: str) -> str:
    try:
        try:
            root = etree.fromstring(markup, _html_parser(""))
        except ValueError:  # lxml refuses str input that carries an encoding declaration
            root = etree.fromstring(markup.encode("utf-8", "replace"), _html_parser("utf-8"))
    except etree.LxmlError:
        return ""
    if root is None:
        return ""
    if _DROPPED.search(markup):
        etree.strip_elements(root, *_DROPPED_TAGS, with_tail=False)
    text: str = etree.tostring(root, method="text", encoding="unicode")
    return text


def _html_parser(encoding: str) -> Any:
    parsers: dict[str, Any] = _local.__dict__.setdefault("parsers", {})
    parser = parsers.get(encoding)
    if parser is None:
        parser = parsers[encoding] = etree.HTMLParser(
            encoding=encoding or None,
            remove_comments=True,
            remove_pis=True,
            no_network=True,
            default_doctype=False,
        )
    return parser


def utc_published(published: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """(UTC time, known). Missing → (now, False); far future → (now, False); slightly ahead → now."""
    now = _utc(now)
    if published is None:
        return now, False
    published = _utc(published)
    if published > now + FUTURE_TOLERANCE:
        return now, False
    return min(published, now), True


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize_language(language: str | None) -> str | None:
    """'en_US ' → 'en-us'; None when it does not look like a language tag."""
    if not language:
        return None
    tag = language.strip().replace("_", "-").lower()
    return tag if len(tag) <= 35 and _LANGUAGE.fullmatch(tag) else None


def _clean(text: str) -> str:
    """C1 controls read as Windows-1252 (as browsers and feedparser do), other controls dropped."""
    if not text.isprintable() and _CONTROL.search(text):  # isprintable: a quick "nothing to do"
        text = _CONTROL.sub("", text.translate(_CP1252))
    return text
