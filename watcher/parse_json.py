"""JSON Feed 1.0/1.1 (https://jsonfeed.org) into a RawFeed; feedparser does not read it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from watcher.errors import ParseError
from watcher.normalize import RawEntry, RawFeed

_VERSION_PREFIX = "https://jsonfeed.org/version/"


def looks_like_json(body: bytes) -> bool:
    """True when the body starts (after a BOM and whitespace) with ``{``."""
    return body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def read_json_feed(body: bytes, *, feed: str) -> tuple[RawFeed, list[str]]:
    """The entries of a JSON Feed, with warnings for items it had to skip.

    Raises ParseError for JSON that is not valid or not a JSON Feed.
    """
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(feed, f"JSON document that does not parse: {exc}") from exc
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_VERSION_PREFIX):
        raise ParseError(feed, "JSON document, not a JSON Feed")
    items = doc.get("items")
    raw = RawFeed(
        title=_str(doc.get("title")),
        link=_str(doc.get("home_page_url")),
        language=_str(doc.get("language")),
    )
    skipped = 0
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            raw.entries.append(_entry(item))
        else:
            skipped += 1
    warnings = [f"skipped {skipped} JSON Feed items that were not objects"] if skipped else []
    return raw, warnings


def _entry(item: dict[str, Any]) -> RawEntry:
    entry = RawEntry(
        id=_str(item.get("id")) or (str(item["id"]) if isinstance(item.get("id"), int) else None),
        link=_str(item.get("url")) or _str(item.get("external_url")),
        title=_str(item.get("title")),
        title_html=False,
        language=_str(item.get("language")),
        author=_author(item),
    )
    if summary := _str(item.get("summary")):
        entry.summary, entry.summary_html = summary, False
    elif html := _str(item.get("content_html")):
        entry.summary, entry.summary_html = html, True
    else:
        entry.summary, entry.summary_html = _str(item.get("content_text")), False
    for key in ("date_published", "date_modified"):
        if moment := _date(item.get(key)):
            entry.published = moment
            break
    return entry


def _author(item: dict[str, Any]) -> str | None:
    authors = item.get("authors")
    author = authors[0] if isinstance(authors, list) and authors else item.get("author")
    return _str(author.get("name")) if isinstance(author, dict) else None


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
