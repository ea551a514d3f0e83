"""The feed farm behind ``watcher demo``: a real HTTP server on loopback replaying the parade week.

The week (``watcher/data/demo/week.json``) holds the real headlines of 1–7 September 2025 from nine
news feeds: titles, links and dates, no descriptions. :class:`DemoFarm` serves one RSS 2.0 document
per source at ``/<slug>.xml`` with the items published up to its replay clock, newest first, and
answers conditional GETs (``ETag`` / ``Last-Modified``) with 304 while nothing new has appeared::

    with DemoFarm() as farm:
        farm.set_day(3)                     # everything published up to the end of Sept. 3
        text = demo_config_text(farm.base_url, "demo.db", "config/watchlist.yaml")
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, cast
from xml.sax.saxutils import escape, quoteattr

MAX_ITEMS = 50
"""Items per feed document, as a real feed keeps only its latest ones."""

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoEntry:
    """One headline of the week."""

    id: str
    title: str
    link: str
    published: datetime
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSource:
    """One feed of the week; ``entries`` are sorted oldest first."""

    slug: str
    title: str  # the feed's own <title>
    name: str  # display name, e.g. "BBC News Asia"
    publisher: str  # the organisation, e.g. "BBC News"
    feed_url: str  # where the real feed lives
    language: str
    tags: tuple[str, ...]
    entries: tuple[DemoEntry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoWeek:
    """The replayable week: ``start`` (inclusive) to ``end`` (exclusive), UTC."""

    start: datetime
    end: datetime
    sources: tuple[DemoSource, ...]

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def source(self, slug: str) -> DemoSource:
        for src in self.sources:
            if src.slug == slug:
                return src
        raise KeyError(slug)

    def ticks(self, step: timedelta) -> Iterator[datetime]:
        """Replay instants ``start + step``, ``start + 2*step`` … up to and including ``end``."""
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        t = self.start + step
        while t < self.end:
            yield t
            t += step
        yield self.end


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without a zone in demo data: {text!r}")
    return value


def parse_week(data: dict[str, Any]) -> DemoWeek:
    """Build a :class:`DemoWeek` from the JSON document written by ``bench/build_demo_data.py``."""
    sources = []
    for src in data["sources"]:
        lang = src["language"]
        entries = sorted(
            (
                DemoEntry(
                    id=e["id"],
                    title=e["title"],
                    link=e["link"],
                    published=_utc(e["published"]),
                    language=e.get("language", lang),
                )
                for e in src["entries"]
            ),
            key=lambda e: (e.published, e.id),
        )
        sources.append(
            DemoSource(
                slug=src["slug"],
                title=src["title"],
                name=src["name"],
                publisher=src["publisher"],
                feed_url=src["feed_url"],
                language=lang,
                tags=tuple(src["tags"]),
                entries=tuple(entries),
            )
        )
    return DemoWeek(start=_utc(data["start"]), end=_utc(data["end"]), sources=tuple(sources))


def load_week(path: Path | None = None) -> DemoWeek:
    """The bundled week (packaged with watcher), or the week stored at ``path``."""
    if path is None:
        return _bundled_week()
    return parse_week(json.loads(path.read_text(encoding="utf-8")))


@functools.cache
def _bundled_week() -> DemoWeek:
    text = resources.files("watcher").joinpath("data/demo/week.json").read_text(encoding="utf-8")
    return parse_week(json.loads(text))


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def render_rss(source: DemoSource, items: list[DemoEntry], *, base_url: str = "") -> bytes:
    """An RSS 2.0 document for ``items`` (given newest first), UTF-8 encoded."""
    newest = format_datetime(items[0].published, usegmt=True) if items else None
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"<title>{_text(source.title)}</title>",
        f"<link>{_text(source.feed_url)}</link>",
        f"<description>{_text(f'{source.name}: the Beijing parade week replayed by watcher demo')}"
        "</description>",
        f"<language>{_text(source.language)}</language>",
    ]
    if base_url:
        href = quoteattr(f"{base_url}/{source.slug}.xml")
        out.append(f'<atom:link href={href} rel="self" type="application/rss+xml"/>')
    if newest:
        out.append(f"<lastBuildDate>{newest}</lastBuildDate>")
    for e in items:
        out += [
            "<item>",
            f"<title>{_text(e.title)}</title>",
            f"<link>{_text(e.link)}</link>",
            f'<guid isPermaLink="true">{_text(e.link)}</guid>',
            f"<pubDate>{format_datetime(e.published, usegmt=True)}</pubDate>",
            "</item>",
        ]
    out += ["</channel>", "</rss>", ""]
    return "\n".join(out).encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Doc:
    body: bytes
    gzipped: bytes
    etag: str
    last_modified: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FarmStats:
    """Requests the farm has answered, by outcome."""

    requests: int
    sent: int  # 200 with a feed body
    not_modified: int  # 304
    not_found: int


class DemoFarm:
    """Serves the week's feeds on ``http://127.0.0.1:<port>/<slug>.xml`` as of a movable clock.

    The clock starts at the week's start (every feed empty). Use it as a context manager, or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self, week: DemoWeek | None = None, *, clock: datetime | None = None, max_items: int = MAX_ITEMS
    ) -> None:
        self.week = week if week is not None else load_week()
        self.max_items = max_items
        self._sources = {s.slug: s for s in self.week.sources}
        self._times = {s.slug: [e.published for e in s.entries] for s in self.week.sources}
        self._lock = threading.Lock()
        self._clock = self.week.start
        self._docs: dict[tuple[str, int], _Doc] = {}
        self._counts = {"requests": 0, "sent": 0, "not_modified": 0, "not_found": 0}
        self._server: _FarmServer | None = None
        self._thread: threading.Thread | None = None
        if clock is not None:
            self.advance_to(clock)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> DemoFarm:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._server is None:
            self._server = _FarmServer(("127.0.0.1", 0), _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="demo-farm", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> DemoFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the farm is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def slugs(self) -> list[str]:
        return list(self._sources)

    def url(self, slug: str) -> str:
        return f"{self.base_url}/{self._sources[slug].slug}.xml"

    # -- the replay clock --------------------------------------------------------------------------
    @property
    def clock(self) -> datetime:
        with self._lock:
            return self._clock

    def advance_to(self, when: datetime) -> None:
        """Set the replay clock: feeds show the items published at or before ``when`` (tz-aware)."""
        if when.tzinfo is None:
            raise ValueError("the replay clock needs a time zone (use UTC)")
        with self._lock:
            self._clock = when

    def set_day(self, day: int) -> None:
        """Show days 1..``day`` of the week in full (``0``: nothing yet; ``week.days``: all)."""
        if not 0 <= day <= self.week.days:
            raise ValueError(f"day must be 0..{self.week.days}")
        self.advance_to(self.week.start + timedelta(days=day))

    def visible(self, slug: str) -> list[DemoEntry]:
        """The items the feed shows now, newest first."""
        return self._visible(slug, self._count(slug))

    def stats(self) -> FarmStats:
        with self._lock:
            return FarmStats(**self._counts)

    # -- serving -----------------------------------------------------------------------------------
    def _count(self, slug: str) -> int:
        return bisect.bisect_right(self._times[slug], self.clock)

    def _visible(self, slug: str, count: int) -> list[DemoEntry]:
        entries = self._sources[slug].entries
        return list(reversed(entries[max(0, count - self.max_items) : count]))

    def _document(self, slug: str) -> _Doc:
        count = self._count(slug)
        with self._lock:
            doc = self._docs.get((slug, count))
        if doc is None:
            items = self._visible(slug, count)
            body = render_rss(self._sources[slug], items, base_url=self.base_url)
            modified = items[0].published if items else self.week.start
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            doc = _Doc(body, gzip.compress(body, mtime=0), etag, modified.replace(microsecond=0))
            with self._lock:
                self._docs[(slug, count)] = doc
        return doc

    def _note(self, outcome: str) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts[outcome] += 1


class _FarmServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], farm: DemoFarm) -> None:
        self.farm = farm
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (the daemon stopping) is not worth a traceback on the demo's screen."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server_version = "watcher-demo-farm"
    timeout = 30  # idle keep-alive connections end
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        farm = cast(_FarmServer, self.server).farm
        path = self.path.split("?", 1)[0]
        slug = path[1:-4] if path.startswith("/") and path.endswith(".xml") else ""
        if slug not in farm._sources:
            farm._note("not_found")
            self._send(404, b"no such feed\n", {"Content-Type": "text/plain; charset=utf-8"}, with_body)
            return
        doc = farm._document(slug)
        headers = {
            "Content-Type": "application/rss+xml; charset=utf-8",
            "ETag": doc.etag,
            "Last-Modified": format_datetime(doc.last_modified, usegmt=True),
            "Cache-Control": "no-cache",
        }
        if self._unchanged(doc):
            farm._note("not_modified")
            self._send(304, b"", headers, with_body=False)
            return
        farm._note("sent")
        body = doc.body
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body, headers["Content-Encoding"] = doc.gzipped, "gzip"
        headers["Vary"] = "Accept-Encoding"
        self._send(200, body, headers, with_body)

    def _unchanged(self, doc: _Doc) -> bool:
        tags = self.headers.get("If-None-Match")
        if tags is not None:
            return doc.etag in {t.strip().removeprefix("W/") for t in tags.split(",")} or tags.strip() == "*"
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                return doc.last_modified <= parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
        return False

    def _send(self, status: int, body: bytes, headers: dict[str, str], with_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints alerts, not access logs."""


def demo_config_text(
    farm_base_url: str, db_path: str, watchlist_path: str, *, week: DemoWeek | None = None
) -> str:
    """A ``watcher.yaml`` for the demo: one feed per source of the week, served by the farm."""
    week = week if week is not None else load_week()

    def q(value: str) -> str:  # a JSON string is a valid double-quoted YAML scalar
        return json.dumps(value, ensure_ascii=False)

    base = farm_base_url.rstrip("/")
    lines = [
        "# watcher demo: the Beijing parade week (1-7 Sept. 2025) replayed from a local feed farm",
        f"database: {q(db_path)}",
        f"watchlist: {q(watchlist_path)}",
        "alert_max_age: 3650d  # the week's items are from 2025: alert on them all",
        "poll:",
        "  interval: 1s",
        "  jitter: 0s",
        "feeds:",
    ]
    for src in week.sources:
        lines += [
            f"  - name: {src.slug}",
            f"    url: {q(f'{base}/{src.slug}.xml')}",
            "    interval: 1s",
            f"    tags: [{', '.join(src.tags)}]",
            f"    publisher: {q(src.publisher)}",
        ]
    lines += ["channels:", "  console:", '    url: "console://"', ""]
    return "\n".join(lines)
