"""A loopback feed farm for the benchmarks: N distinct feeds built from the real feed corpus.

Feed ``i`` is corpus file ``order[i % F]`` (the well-formed and malformed RSS/Atom/RDF files of
``fastfeedparser-data/benchmark_data``; the JSON feed is left out), with every ``<guid>``/``<id>`` given
the suffix ``-f<i>`` so that each feed's items are its own. The order interleaves file sizes, so any
prefix of the feeds (the subset a slow peer polls) has the corpus's mix of sizes.

Feeds are spread over ``hosts`` loopback addresses (127.0.2.1, 127.0.2.2, ...), as real feeds live on
many hosts. Every answer carries ``ETag`` and ``Last-Modified``; a conditional GET of an unchanged feed
gets ``304``. Bodies are gzip-compressed (level 1, nginx's default) when the client accepts it. Each
feed request waits a random delay in ``[latency_min, latency_max]`` seconds, as remote servers do.

Control API (JSON, on the control address printed at start):
``GET /_farm/feeds`` (the URLs), ``GET /_farm/stats``, ``GET /_farm/items?among=N`` (items in the
first N), ``POST /_farm/latency?min=&max=``,
``POST /_farm/reset``, ``POST /_farm/mutate?percent=5&among=200&seed=1`` (adds one new item to that
share of the first ``among`` feeds), ``POST /_farm/inject?feed=7`` with a JSON body
``{"title", "summary"}`` (adds one item now; answers with its guid, link and wall-clock time).

Run: ``python bench/farm.py --feeds 1000 --latency 0.05-0.3`` (prints one JSON line when ready).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import gzip
import json
import os
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("WATCHER_SHARED", HERE.parents[1] / "shared"))
CORPUS = SHARED / "data" / "fastfeedparser-data" / "benchmark_data"
HEADLINES = SHARED / "data" / "sept2025" / "entries.jsonl"

_ITEM_AT = {
    "rss": re.compile(rb"<item[\s>]"),
    "rdf": re.compile(rb"<item[\s>]"),
    "atom": re.compile(rb"<entry[\s>]"),
}
_ANY_ITEM = re.compile(rb"<(?:item|entry)[\s>]")
_END_AT = {"rss": b"</channel>", "rdf": b"</rdf:RDF>", "atom": b"</feed>"}
_CONTENT_TYPE = {
    "rss": "application/rss+xml",
    "rdf": "application/rdf+xml",
    "atom": "application/atom+xml",
}
_REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 404: "Not Found"}


@dataclass(frozen=True, slots=True)
class Source:
    """One corpus file: its name, kind and bytes."""

    name: str
    kind: str  # rss | atom | rdf
    data: bytes


def _kind(data: bytes) -> str | None:
    head = data[:4096]
    if b"<rdf:RDF" in head:
        return "rdf"
    if re.search(rb"<feed[\s>]", head):
        return "atom"
    if re.search(rb"<rss[\s>]", head):
        return "rss"
    return None


def load_sources(corpus: Path = CORPUS) -> list[Source]:
    """The corpus's XML feeds, ordered so that any prefix interleaves small and large files."""
    if not corpus.is_dir():
        raise SystemExit(f"feed corpus not found: {corpus} (set WATCHER_SHARED to the shared dir)")
    found = []
    for path in sorted(corpus.iterdir()):
        data = path.read_bytes()
        kind = _kind(data)
        if kind is not None:
            found.append(Source(path.name, kind, data))
    by_size = sorted(found, key=lambda s: (len(s.data), s.name))
    n = len(by_size)
    step = next(k for k in range(int(n * 0.618), n) if _gcd(k, n) == 1)  # golden-ratio stride
    return [by_size[(i * step) % n] for i in range(n)]


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def healthy_feeds(n: int, sources: list[Source] | None = None) -> list[int]:
    """Feeds (of the first ``n``) whose document is well-formed XML and takes new items."""
    from xml.etree import ElementTree

    srcs = sources if sources is not None else load_sources()
    good = set()
    for k, s in enumerate(srcs):
        try:
            ElementTree.fromstring(s.data)
        except ElementTree.ParseError:
            continue
        if _insert_point(s.kind, s.data) is not None:
            good.add(k)
    return [i for i in range(n) if i % len(srcs) in good]


def load_headlines(path: Path = HEADLINES) -> list[dict[str, str]]:
    """Real headlines of the parade week: the new items that mutations add."""
    if not path.exists():
        return [{"title": f"Farm headline {i}", "summary": "", "link": ""} for i in range(100)]
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class FeedDoc:
    """One served feed: its base document, the items added since, and the HTTP validators."""

    index: int
    source: Source
    base: bytes
    insert_at: int | None  # where new items go; None: this document takes no new items
    added: list[bytes] = field(default_factory=list)  # newest first
    version: int = 0
    modified: float = 0.0
    body: bytes = b""
    gz: bytes = b""
    etag: str = ""
    items: int = 0  # <item>/<entry> elements in the body

    def build(self, *, compress: bool) -> None:
        if self.added and self.insert_at is not None:
            cut = self.insert_at
            self.body = self.base[:cut] + b"".join(self.added) + self.base[cut:]
        else:
            self.body = self.base
        self.gz = gzip.compress(self.body, 1, mtime=0) if compress else b""
        self.etag = f'"f{self.index}-v{self.version}"'
        self.items = len(_ANY_ITEM.findall(self.body))


def _rewrite(data: bytes, index: int) -> bytes:
    """Make a corpus file feed ``index``'s own: suffix every guid and Atom id."""
    tag = f"-f{index}".encode()
    return data.replace(b"</guid>", tag + b"</guid>").replace(b"</id>", tag + b"</id>")


def _insert_point(kind: str, data: bytes) -> int | None:
    m = _ITEM_AT[kind].search(data)
    if m is not None:
        return m.start()
    end = data.rfind(_END_AT[kind])
    return end if end >= 0 else None


def _xml(text: str) -> str:
    return escape(text)


def item_xml(kind: str, *, guid: str, title: str, summary: str, link: str, when: float) -> bytes:
    """One new item in the feed's own dialect, ASCII with character references (fits any encoding)."""
    if kind == "atom":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        text = (
            f'<entry><title>{_xml(title)}</title><link rel="alternate" href={quoteattr(link)}/>'
            f"<id>{_xml(guid)}</id><published>{stamp}</published><updated>{stamp}</updated>"
            f"<summary>{_xml(summary)}</summary></entry>\n"
        )
    elif kind == "rdf":
        text = (
            f"<item rdf:about={quoteattr(link)}><title>{_xml(title)}</title><link>{_xml(link)}</link>"
            f"<description>{_xml(summary)}</description></item>\n"
        )
    else:
        text = (
            f"<item><title>{_xml(title)}</title><link>{_xml(link)}</link>"
            f'<guid isPermaLink="false">{_xml(guid)}</guid>'
            f"<pubDate>{email.utils.formatdate(when, usegmt=True)}</pubDate>"
            f"<description>{_xml(summary)}</description></item>\n"
        )
    return text.encode("ascii", "xmlcharrefreplace")


class Farm:
    """The feeds and their state; thread-safe enough for one server loop plus control calls."""

    def __init__(
        self,
        *,
        feeds: int = 1000,
        hosts: int = 100,
        latency: tuple[float, float] = (0.0, 0.0),
        compress: bool = True,
        sources: list[Source] | None = None,
        seed: int = 1,
    ) -> None:
        self.sources = sources if sources is not None else load_sources()
        self.headlines = load_headlines()
        self.n = feeds
        self.hosts = max(1, min(hosts, 250, feeds))
        self.latency = latency
        self.compress = compress
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stats: dict[str, int] = {}
        self.docs: list[FeedDoc] = []
        self.ports: list[int] = []  # per host, set by the server
        self._headline = 0
        self._serial = 0
        self.reset()

    def reset(self) -> None:
        """Every feed back to its corpus document (version 0)."""
        started = time.time()
        docs = []
        for i in range(self.n):
            src = self.sources[i % len(self.sources)]
            base = _rewrite(src.data, i)
            docs.append(FeedDoc(i, src, base, _insert_point(src.kind, base), modified=started - 86400))
        with ThreadPoolExecutor(max_workers=2) as pool:  # zlib releases the GIL
            list(pool.map(lambda d: d.build(compress=self.compress), docs))
        with self.lock:
            self.docs = docs
            self._headline = 0
            self.stats = {"requests": 0, "ok": 0, "not_modified": 0, "not_found": 0, "bytes": 0}

    def host(self, i: int) -> str:
        return f"127.0.2.{1 + i % self.hosts}"

    def urls(self) -> list[str]:
        return [f"http://{self.host(i)}:{self.ports[i % self.hosts]}/feeds/{i}" for i in range(self.n)]

    def delay(self) -> float:
        lo, hi = self.latency
        return self.rng.uniform(lo, hi) if hi > 0 else 0.0

    def add_item(self, i: int, *, title: str, summary: str, now: float | None = None) -> dict[str, Any]:
        """Add one new item at the top of feed ``i``; return its guid, link and time."""
        doc = self.docs[i]
        if doc.insert_at is None:
            raise ValueError(f"feed {i} ({doc.source.name}) takes no new items")
        when = time.time() if now is None else now
        self._serial += 1
        guid = f"urn:farm:f{i}:n{self._serial}"
        link = f"http://{self.host(i)}/news/f{i}/n{self._serial}"
        doc.added.insert(0, item_xml(doc.source.kind, guid=guid, title=title, summary=summary,
                                     link=link, when=when))  # fmt: skip
        doc.version += 1
        doc.modified = when
        doc.build(compress=self.compress)
        return {"feed": i, "guid": guid, "link": link, "title": title, "at": when}

    def mutate(self, percent: float, among: int | None = None, seed: int = 1) -> list[int]:
        """Add one real headline to ``percent``% of the first ``among`` feeds (those that take items)."""
        pool = [d.index for d in self.docs[: among or self.n] if d.insert_at is not None]
        count = max(1, round(len(pool) * percent / 100)) if percent > 0 else 0
        chosen = sorted(random.Random(seed).sample(pool, min(count, len(pool))))
        now = time.time()
        with self.lock:
            for i in chosen:
                h = self.headlines[self._headline % len(self.headlines)]
                self._headline += 1
                self.add_item(i, title=h["title"], summary=h.get("summary", ""), now=now)
        return chosen

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a GET of ``path``."""
        with self.lock:
            self.stats["requests"] += 1
            m = re.fullmatch(r"/feeds/(\d+)", path)
            if m is None or int(m.group(1)) >= self.n:
                self.stats["not_found"] += 1
                return 404, {"Content-Type": "text/plain"}, b"no such feed\n"
            doc = self.docs[int(m.group(1))]
            validators = {
                "ETag": doc.etag,
                "Last-Modified": email.utils.formatdate(doc.modified, usegmt=True),
            }
            if _unchanged(doc, headers):
                self.stats["not_modified"] += 1
                return 304, validators, b""
            self.stats["ok"] += 1
            out = {"Content-Type": _CONTENT_TYPE[doc.source.kind], **validators}
            body = doc.body
            if doc.gz and "gzip" in headers.get("accept-encoding", ""):
                out["Content-Encoding"] = "gzip"
                out["Vary"] = "Accept-Encoding"
                body = doc.gz
            self.stats["bytes"] += len(body)
            return 200, out, body


def _unchanged(doc: FeedDoc, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:
        return doc.etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
    ims = headers.get("if-modified-since")
    if ims is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(ims).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    return int(doc.modified) <= since


# ── the server ───────────────────────────────────────────────────────────────────────────────


class _Http(asyncio.Protocol):
    """A small HTTP/1.1 keep-alive server connection: requests answered in order, after the delay."""

    def __init__(self, farm: Farm, control: bool) -> None:
        self.farm = farm
        self.control = control
        self.buf = bytearray()
        self.queue: deque[tuple[str, str, dict[str, str], bytes]] = deque()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536 and self.transport is not None:
                    self.transport.close()
                break
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buf) < end + 4 + length:
                break
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            method, _, rest = lines[0].partition(" ")
            target, _, version = rest.rpartition(" ")
            if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
                headers["connection"] = "close"
            self.queue.append((method, target, headers, body))
        self._next()

    def _next(self) -> None:
        if self.busy or not self.queue:
            return
        self.busy = True
        request = self.queue.popleft()
        delay = 0.0 if self.control else self.farm.delay()
        loop = asyncio.get_running_loop()
        if delay > 0:
            loop.call_later(delay, self._respond, request)
        else:
            loop.call_soon(self._respond, request)

    def _respond(self, request: tuple[str, str, dict[str, str], bytes]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        method, target, headers, body = request
        try:
            if self.control:
                status, out, payload = _control(self.farm, method, target, body)
            else:
                status, out, payload = self.farm.answer(urlsplit(target).path, headers)
        except Exception as exc:  # a bad control call must not kill the farm
            status, out, payload = 400, {"Content-Type": "text/plain"}, f"{exc}\n".encode()
        close = headers.get("connection", "").lower() == "close"
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
        head += [f"{k}: {v}" for k, v in out.items()]
        head.append(f"Content-Length: {len(payload)}")
        if close:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        self.transport.writelines([data, payload] if payload and method != "HEAD" else [data])
        self.busy = False
        if close:
            self.transport.close()
        else:
            self._next()


def _control(farm: Farm, method: str, target: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(target)
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    result: Any
    if parts.path == "/_farm/feeds":
        result = farm.urls()
    elif parts.path == "/_farm/items":
        result = sum(d.items for d in farm.docs[: int(q.get("among", farm.n))])
    elif parts.path == "/_farm/stats":
        with farm.lock:
            result = dict(farm.stats)
    elif parts.path == "/_farm/latency" and method == "POST":
        farm.latency = (float(q.get("min", 0)), float(q.get("max", q.get("min", 0))))
        result = {"latency": farm.latency}
    elif parts.path == "/_farm/reset" and method == "POST":
        farm.reset()
        result = {"feeds": farm.n}
    elif parts.path == "/_farm/mutate" and method == "POST":
        among = int(q["among"]) if "among" in q else None
        result = farm.mutate(float(q.get("percent", 5)), among, int(q.get("seed", 1)))
    elif parts.path == "/_farm/inject" and method == "POST":
        spec = json.loads(body or b"{}")
        with farm.lock:
            result = farm.add_item(int(q["feed"]), title=spec["title"], summary=spec.get("summary", ""))
    else:
        return 404, {"Content-Type": "text/plain"}, b"unknown control call\n"
    return 200, {"Content-Type": "application/json"}, json.dumps(result).encode()


@dataclass
class Served:
    """A running farm: its control URL and the servers (closed with ``close()``)."""

    control: str
    servers: list[asyncio.Server]

    def close(self) -> None:
        for s in self.servers:
            s.close()


async def serve(farm: Farm, control_port: int = 0) -> Served:
    """Start the feed listeners (one per loopback host) and the control listener on 127.0.0.1."""
    loop = asyncio.get_running_loop()
    servers = []
    farm.ports = []
    for h in range(farm.hosts):
        srv = await loop.create_server(lambda: _Http(farm, False), farm.host(h), 0, backlog=1024)
        servers.append(srv)
        farm.ports.append(srv.sockets[0].getsockname()[1])
    ctl = await loop.create_server(lambda: _Http(farm, True), "127.0.0.1", control_port)
    servers.append(ctl)
    return Served(f"http://127.0.0.1:{ctl.sockets[0].getsockname()[1]}", servers)


class ThreadedFarm:
    """A farm served from a background thread (for tests and in-process measurements)."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="feed-farm")
        self.served: Served | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.served = self.loop.run_until_complete(serve(self.farm))
        self._ready.set()
        self.loop.run_forever()
        self.served.close()
        for s in self.served.servers:
            self.loop.run_until_complete(s.wait_closed())
        self.loop.close()

    def __enter__(self) -> ThreadedFarm:
        self._thread.start()
        self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def control(self) -> str:
        assert self.served is not None
        return self.served.control


def parse_latency(text: str) -> tuple[float, float]:
    """``0.1`` or ``0.05-0.3`` (seconds) → (min, max)."""
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def iter_urls(control: str) -> Iterator[str]:  # pragma: no cover - convenience for scripts
    import urllib.request

    with urllib.request.urlopen(control + "/_farm/feeds") as r:
        yield from json.load(r)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=100, help="loopback addresses the feeds spread over")
    ap.add_argument("--latency", default="0", help="seconds per request: 0.1 or a range 0.05-0.3")
    ap.add_argument("--no-gzip", action="store_true", help="never compress bodies")
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--exclude", default="", help="comma list of corpus files to leave out")
    args = ap.parse_args(argv)
    leave_out = set(filter(None, args.exclude.split(",")))
    sources = [s for s in load_sources() if s.name not in leave_out]
    farm = Farm(feeds=args.feeds, hosts=args.hosts, latency=parse_latency(args.latency),
                compress=not args.no_gzip, sources=sources)  # fmt: skip

    async def run() -> None:
        served = await serve(farm, args.control_port)
        print(json.dumps({"control": served.control, "feeds": farm.n, "pid": os.getpid()}), flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
