"""A real HTTP/1.1 server on 127.0.0.1 for tests and benchmarks, with routes you change while it runs.

    with FeedServer() as server:                      # or the ``feed_server`` fixture (conftest.py)
        server.set("/rss", body=RSS)                  # 200, ETag from the body, answers 304 to a match
        url = server.url("/rss")
        ...
        server.hits("/rss"), server.not_modified("/rss"), server.requests("/rss")[-1]["if-none-match"]

Routes (``set`` replaces a path's route; the next request sees it):
    set(path, body, status=, headers=, content_type=, etag=, last_modified=, delay=, trickle=, gzip=,
        chunked=, drop_after=, size=)
    sequence(path, [dict(status=500), dict(body=RSS)])   # one per request, the last one repeats
    redirect(path, to, status=302), rate_limited(path, retry_after=...), unavailable(path, retry_after=...),
    slow_loris(path, body, every=1.0), huge(path, size), gzip_bomb(path, decoded=...), html_page(path)
Faults outside a route: ``refused_url()`` (nothing listens) and ``blackhole()`` (connects hang).
Counters: ``hits``, ``not_modified``, ``requests`` (headers, lower-case names), ``max_in_flight``
(most requests served at once, per path or overall), ``connections`` (TCP connections accepted).
Unknown paths get 404. The server runs in daemon threads; ``close()`` cuts open connections.
"""

from __future__ import annotations

import contextlib
import functools
import gzip as gzip_module
import hashlib
import socket
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

_FILLER = b"<!-- padding padding padding padding padding padding padding padding padding -->\n"


@dataclass(frozen=True)
class Route:
    """How one path answers. Build it with :meth:`FeedServer.set`; fields as its arguments."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0
    trickle: float | None = None
    gzip: bool = False
    chunked: bool = False
    drop_after: int | None = None
    size: int | None = None  # serve this many filler bytes instead of ``body`` (never held in memory)


@dataclass
class _Path:
    routes: list[Route]
    served: int = 0


class FeedServer:
    """See the module docstring. ``FeedServer()`` starts listening at once on a free loopback port."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paths: dict[str, _Path] = {}
        self._hits: Counter[str] = Counter()
        self._not_modified: Counter[str] = Counter()
        self._requests: dict[str, list[dict[str, str]]] = {}
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._sockets: set[socket.socket] = set()
        self.connections = 0
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="feedserver", daemon=True
        )
        self._thread.start()

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, wake trickling and delayed handlers, and close every open connection."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._httpd.shutdown()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- routes ----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base + (path if path.startswith("/") else "/" + path)

    def set(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "application/rss+xml; charset=utf-8",
        etag: bool | str = True,
        last_modified: str | None = None,
        delay: float = 0.0,
        trickle: float | None = None,
        gzip: bool = False,
        chunked: bool = False,
        drop_after: int | None = None,
        size: int | None = None,
    ) -> Route:
        """Make ``path`` answer with this from the next request on.

        etag: True → a strong ETag from the body's hash; a string → that ETag; False → none.
        last_modified: an HTTP date sent as Last-Modified (``http_date()`` makes one).
        A 200 route answers 304 when If-None-Match matches its ETag or, without If-None-Match,
        If-Modified-Since is not older than its Last-Modified.
        delay: seconds before the status line. trickle: seconds between single body bytes (slow loris).
        gzip: compress when the request accepts gzip. chunked: no Content-Length, chunked encoding.
        drop_after: send a full Content-Length but close the connection after this many body bytes.
        size: serve ``size`` filler bytes streamed from a small buffer instead of ``body``.
        """
        route = self._route(body, status=status, headers=headers, content_type=content_type, etag=etag,
                            last_modified=last_modified, delay=delay, trickle=trickle, gzip=gzip,
                            chunked=chunked, drop_after=drop_after, size=size)  # fmt: skip
        with self._lock:
            self._paths[path] = _Path([route])
        return route

    def sequence(self, path: str, answers: list[dict[str, Any]]) -> None:
        """Answer successive requests with ``set(path, **answer)`` in turn; the last one repeats."""
        if not answers:
            raise ValueError("sequence() needs at least one answer")
        routes = [self._route(**answer) for answer in answers]
        with self._lock:
            self._paths[path] = _Path(routes)

    def remove(self, path: str) -> None:
        """Make ``path`` answer 404 again."""
        with self._lock:
            self._paths.pop(path, None)

    def redirect(self, path: str, to: str, *, status: int = 302) -> None:
        """Redirect ``path`` to ``to`` (a path on this server or an absolute URL)."""
        location = self.url(to) if to.startswith("/") else to
        self.set(path, f"<a href='{location}'>moved</a>", status=status, headers={"Location": location},
                 content_type="text/html", etag=False)  # fmt: skip

    def rate_limited(self, path: str, *, retry_after: str | int | None = 120, status: int = 429) -> None:
        """429 Too Many Requests (or ``status``) with ``Retry-After`` (seconds or an HTTP date) if given."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self.set(path, "slow down", status=status, headers=headers, content_type="text/plain", etag=False)

    def unavailable(self, path: str, *, retry_after: str | int | None = None) -> None:
        """503 Service Unavailable, with ``Retry-After`` if given."""
        self.rate_limited(path, retry_after=retry_after, status=503)

    def slow_loris(
        self, path: str, body: bytes | str = b"<rss>" + b" " * 200 + b"</rss>", *, every: float = 1.0
    ) -> None:
        """Send headers at once, then the body one byte every ``every`` seconds."""
        self.set(path, body, trickle=every, etag=False)

    def huge(self, path: str, size: int, *, content_length: bool = True) -> None:
        """A ``size``-byte body, declared in Content-Length or (``content_length=False``) chunked."""
        self.set(path, size=size, chunked=not content_length, etag=False)

    def gzip_bomb(self, path: str, *, decoded: int = 100_000_000) -> int:
        """A gzip body that inflates to ``decoded`` bytes; returns its compressed size."""
        compressed = gzip_bytes(decoded)
        self.set(path, compressed, headers={"Content-Encoding": "gzip"}, etag=False)
        return len(compressed)

    def html_page(
        self, path: str, *, status: int = 200, title: str = "503 Service Temporarily Unavailable"
    ) -> None:
        """An HTML page (as proxies and captive portals send) where a feed should be."""
        body = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        self.set(path, body, status=status, content_type="text/html; charset=utf-8", etag=False)

    # -- what happened ---------------------------------------------------------------------------

    def hits(self, path: str) -> int:
        """Requests received for ``path`` (query strings ignored)."""
        with self._lock:
            return self._hits[path]

    def not_modified(self, path: str) -> int:
        """Requests for ``path`` answered 304."""
        with self._lock:
            return self._not_modified[path]

    def requests(self, path: str) -> list[dict[str, str]]:
        """Headers of each request for ``path``, oldest first, names lower-cased; ``:path`` holds the target."""
        with self._lock:
            return [dict(h) for h in self._requests.get(path, [])]

    def max_in_flight(self, path: str | None = None) -> int:
        """Most requests being served at the same moment, for ``path`` or for the whole server."""
        with self._lock:
            return self._max_in_flight[path or "*"]

    def reset_counts(self) -> None:
        """Forget hits, 304s, recorded requests, concurrency peaks and the connection count."""
        with self._lock:
            self._hits.clear()
            self._not_modified.clear()
            self._requests.clear()
            self._max_in_flight.clear()
            self.connections = 0

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _route(
        body: bytes | str = b"",
        *,
        etag: bool | str = True,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> Route:
        data = body.encode() if isinstance(body, str) else body
        if etag is True:
            tag: str | None = '"' + hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16] + '"'
        elif etag is False:
            tag = None
        else:
            tag = etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'
        return Route(body=data, etag=tag, headers=dict(headers or {}), **fields)

    def _next_route(self, path: str, headers: dict[str, str]) -> Route | None:
        with self._lock:
            self._hits[path] += 1
            self._requests.setdefault(path, []).append(headers)
            for key in (path, "*"):
                self._in_flight[key] += 1
                self._max_in_flight[key] = max(self._max_in_flight[key], self._in_flight[key])
            slot = self._paths.get(path)
            if slot is None:
                return None
            route = slot.routes[min(slot.served, len(slot.routes) - 1)]
            slot.served += 1
            return route

    def _done(self, path: str) -> None:
        with self._lock:
            for key in (path, "*"):
                self._in_flight[key] -= 1

    def _serve(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        headers[":path"] = handler.path
        route = self._next_route(path, headers)
        try:
            if route is None:
                _respond(handler, Route(body=b"not found", status=404, content_type="text/plain"))
                return
            if route.delay and self._stop.wait(route.delay):
                handler.close_connection = True
                return
            if route.status == 200 and _matches(route, headers):
                with self._lock:  # counted before the answer leaves, so a client that got it sees the count
                    self._not_modified[path] += 1
                _respond_304(handler, route)
            else:
                _respond(handler, _encoded(route, headers), stop=self._stop)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            handler.close_connection = True
        finally:
            self._done(path)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FeedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up are normal here; anything else still prints."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        owner = self.server.owner
        with owner._lock:
            owner.connections += 1
            owner._sockets.add(self.connection)

    def finish(self) -> None:
        owner = self.server.owner
        with owner._lock:
            owner._sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self.server.owner._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read counters, not access logs."""


def _matches(route: Route, headers: dict[str, str]) -> bool:
    """Whether a conditional request may be answered 304 (RFC 9110: If-None-Match wins)."""
    inm = headers.get("if-none-match")
    if inm is not None:
        if route.etag is None:
            return False
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or route.etag.removeprefix("W/") in tags
    ims = headers.get("if-modified-since")
    if ims is None or route.last_modified is None:
        return False
    try:
        return parsedate_to_datetime(ims) >= parsedate_to_datetime(route.last_modified)
    except (TypeError, ValueError):
        return False


def _encoded(route: Route, headers: dict[str, str]) -> Route:
    if route.gzip and "gzip" in headers.get("accept-encoding", ""):
        return replace(route, body=gzip_module.compress(route.body), gzip=False,
                       headers={**route.headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})  # fmt: skip
    return route


def _validators(route: Route) -> dict[str, str]:
    out = {}
    if route.etag is not None:
        out["ETag"] = route.etag
    if route.last_modified is not None:
        out["Last-Modified"] = route.last_modified
    return out


def _respond_304(handler: _Handler, route: Route) -> None:
    handler.send_response(304)
    for name, value in _validators(route).items():
        handler.send_header(name, value)
    handler.end_headers()


def _chunks(route: Route) -> Iterator[bytes]:
    if route.size is None:
        yield route.body
        return
    block = _FILLER * (65536 // len(_FILLER))
    left = route.size
    while left > 0:
        yield block[:left]
        left -= len(block)


def _respond(handler: _Handler, route: Route, *, stop: threading.Event | None = None) -> None:
    length = route.size if route.size is not None else len(route.body)
    handler.send_response(route.status)
    if route.content_type:
        handler.send_header("Content-Type", route.content_type)
    for name, value in {**_validators(route), **route.headers}.items():
        handler.send_header(name, value)
    if route.chunked:
        handler.send_header("Transfer-Encoding", "chunked")
    else:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.flush()
    sent = 0
    for chunk in _chunks(route):
        if route.drop_after is not None and sent + len(chunk) >= route.drop_after:
            _write(handler, route, chunk[: route.drop_after - sent])
            handler.close_connection = True
            return
        if route.trickle is not None:
            for i in range(len(chunk)):
                _write(handler, route, chunk[i : i + 1])
                if stop is not None and stop.wait(route.trickle):
                    handler.close_connection = True
                    return
        else:
            _write(handler, route, chunk)
        sent += len(chunk)
    if route.chunked:
        handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def _write(handler: _Handler, route: Route, data: bytes) -> None:
    if not data:
        return
    if route.chunked:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    else:
        handler.wfile.write(data)
    handler.wfile.flush()


def http_date(timestamp: float) -> str:
    """An HTTP date (``Wed, 03 Sep 2025 09:00:00 GMT``) for a Unix time."""
    return formatdate(timestamp, usegmt=True)


@functools.lru_cache(maxsize=8)
def gzip_bytes(decoded: int) -> bytes:
    """gzip of ``decoded`` zero bytes, built a megabyte at a time (100 MB compresses to ~100 KB)."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(min(decoded, 1 << 20))
    parts = []
    left = decoded
    while left > 0:
        parts.append(z.compress(block[:left]))
        left -= len(block)
    parts.append(z.flush())
    return b"".join(parts)


def refused_url(path: str = "/feed") -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@contextlib.contextmanager
def blackhole(path: str = "/feed") -> Iterator[str]:
    """A loopback URL whose TCP connects hang (the listen backlog is full and never accepted): a
    real connect timeout without a network."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        for s in fillers:
            s.close()
        listener.close()
