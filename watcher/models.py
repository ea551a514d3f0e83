"""Records passed between pipeline stages: frozen, slotted, keyword-only dataclasses.

feeds ──fetch──▶ FetchResult ──parse──▶ ParsedFeed(items: Item…) ──store──▶ StoredItem (new/edited)
      ──match──▶ Match(evidence: Evidence…) ──stories──▶ story id ──route──▶ Alert + deliveries (outbox)
      ──deliver──▶ channels
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

FetchStatus = Literal["ok", "not_modified", "error"]
Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """0 for info … 4 for critical; unknown severities rank as info."""
    try:
        return SEVERITIES.index(severity)  # type: ignore[arg-type,unused-ignore]
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """What one HTTP fetch of a feed gave. ``status`` 'error' carries ``error``; never raises."""

    feed: str
    url: str  # final URL, after redirects
    status: FetchStatus
    http_status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the server asked us to wait (429/503)
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One normalized feed entry. ``key`` is stable per feed: guid, else canonical link, else a hash."""

    feed: str
    key: str
    link: str
    title: str
    summary: str
    published: datetime  # timezone-aware UTC
    published_known: bool = True  # False when the feed gave no usable date (first-seen time used)
    language: str | None = None
    author: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    """A feed document read into normalized items, with any warnings (a malformed feed still yields)."""

    feed: str
    title: str
    link: str
    language: str | None
    items: tuple[Item, ...]
    warnings: tuple[str, ...] = ()
    parser: str = "feedparser"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredItem:
    """An item after the store: its row id and whether it was new or an edit of a known item."""

    id: int
    item: Item
    state: Literal["new", "edited", "seen", "duplicate"]  # duplicate: same title re-posted under a new id


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Why a term matched: which term, in which field, where, and a short snippet around it."""

    term: str  # the rule's term as written (phrase, entity name, regex)
    kind: Literal["phrase", "entity", "fuzzy", "regex"]
    field: str  # "title" or "summary"
    start: int  # offsets into the item's original field text
    end: int
    text: str  # the matched text as it stands in the item
    snippet: str  # up to ~120 characters around the match
    entity: str | None = None
    score: float | None = None  # fuzzy score 0-100


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One rule matching one item."""

    rule_id: str
    severity: Severity
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
