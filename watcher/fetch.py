"""Fetch feeds over one shared ``httpx.AsyncClient``; every failure comes back as a value.

``Fetcher.fetch()`` does a conditional GET (If-None-Match / If-Modified-Since → ``not_modified``),
follows at most ``max_redirects`` redirects by hand, checking each hop, caps the body while it streams
(on Content-Length up front and on the decoded bytes, so a gzip bomb stops at the cap), holds each
request to a total deadline (httpx has none: a server trickling a byte a second would hold it forever),
and bounds concurrency per host and overall (so ``gather()`` over many feeds never hits ``PoolTimeout``).

A redirect from a public address into loopback, private, link-local or reserved space is refused, also
when DNS changes between our check and the connect (the peer address actually used is checked too). A
feed configured with a private address is the user's choice: redirects from private hosts are followed.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Self

from watcher.httpclient import httpx
from watcher.inflate import ACCEPT_ENCODING, DecodeError, decoder
from watcher.models import FetchResult
from watcher.netaddr import Resolver, getaddrinfo, ip_of, is_public
from watcher.units import format_duration

__all__ = ["ACCEPT", "Fetcher", "backoff_delay", "parse_retry_after"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DRAIN_LIMIT = 64 * 1024  # bytes of a redirect or error body read so its connection can be reused


class _Failure(Exception):
    """Internal: a fetch ended in failure; ``message`` is what the user reads."""

    def __init__(self, message: str, *, http_status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.url: str | None = None  # the hop it happened on


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(
    failures: int,
    interval: float,
    *,
    retry_after: float | None = None,
    cap: float = 6 * 3600,
    jitter: float = 0.2,
) -> float:
    """Seconds until the next try after ``failures`` failures in a row.

    ``interval`` after 0 or 1 failures, doubling with each further one, stretched by up to ``jitter``
    (a fraction) so feeds that failed together do not retry together; never sooner than ``retry_after``;
    never more than ``cap`` (a Retry-After of days must not silence a feed for days).
    """
    base = max(0.0, interval) * 2.0 ** min(max(failures - 1, 0), 60)
    delay = min(base, cap) * (1.0 + random.uniform(0.0, max(0.0, jitter)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}".removesuffix(".0") + " MB"
    if n >= 1000:
        return f"{n / 1000:.1f}".removesuffix(".0") + " KB"
    return f"{n} bytes"


def _peer(response: httpx.Response) -> str | None:
    """The IP address the response actually came from (None through a transport with no socket)."""
    stream = response.extensions.get("network_stream")
    addr = stream.get_extra_info("server_addr") if stream is not None else None
    return str(addr[0]) if isinstance(addr, tuple) and addr else None


def _status_words(response: httpx.Response) -> str:
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason_phrase
    return f"HTTP {response.status_code} {phrase}".rstrip()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes, with exception groups flattened."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.append(e)
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return seen


@dataclass(frozen=True, slots=True)
class _Hop:
    """One request's outcome: a redirect (``location``), or the final answer."""

    status: int
    peer: str | None
    location: str | None = None
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None


class Fetcher:
    """Fetches feeds; one instance (one connection pool) per process. Also an async context manager.

    ``resolve`` replaces DNS for the redirect check only (tests use it to give a fake host a public address).
    """

    def __init__(
        self,
        *,
        user_agent: str,
        connect_timeout: float = 10,
        read_timeout: float = 20,
        deadline: float = 60,
        max_bytes: int = 10_000_000,
        max_connections: int = 20,
        per_host: int = 2,
        max_redirects: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._per_host = max(1, per_host)
        self._max_redirects = max(0, max_redirects)
        self._resolve: Resolver = resolve or getaddrinfo
        self._slots = asyncio.Semaphore(max(1, max_connections))  # never more requests than connections
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._client = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(
                connect=connect_timeout, read=read_timeout, write=read_timeout, pool=deadline
            ),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            trust_env=False,  # proxy settings belong in our config, not in the environment
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def fetch(
        self, feed: str, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` for ``feed``. Never raises for network, HTTP or content problems.

        The result's ``etag``/``last_modified`` are the validators to send next time: the response's,
        else (on 304 without them, or on error) the ones given.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with self._slots:
                hop, final = await self._follow(url, headers, loop)
        except _Failure as failure:
            return FetchResult(
                feed=feed, url=failure.url or url, status="error", http_status=failure.http_status,
                error=failure.message, retry_after=failure.retry_after, etag=etag,
                last_modified=last_modified, elapsed=loop.time() - started,
            )  # fmt: skip
        if hop.status == 304:
            return FetchResult(
                feed=feed, url=final, status="not_modified", http_status=304, content_type=hop.content_type,
                etag=hop.etag or etag, last_modified=hop.last_modified or last_modified,
                elapsed=loop.time() - started,
            )  # fmt: skip
        return FetchResult(
            feed=feed, url=final, status="ok", http_status=hop.status, body=hop.body,
            content_type=hop.content_type, etag=hop.etag, last_modified=hop.last_modified,
            elapsed=loop.time() - started,
        )  # fmt: skip

    async def _follow(
        self, url: str, headers: dict[str, str], loop: asyncio.AbstractEventLoop
    ) -> tuple[_Hop, str]:
        """Request ``url``, following redirects; the final hop and its URL, or ``_Failure``."""
        current = _parse_url(url)
        seen = {str(current)}
        from_public = False  # the previous hop was public: this one may not be private
        deadline_at: float | None = None  # set when the first hop gets its host slot
        for redirects in range(self._max_redirects + 1):
            try:
                hop, public, deadline_at = await self._attempt(
                    current, headers, from_public, deadline_at, loop
                )
                if hop.location is None:
                    return hop, str(current)
                target = _redirect_target(current, hop, seen, last=redirects == self._max_redirects,
                                          limit=self._max_redirects)  # fmt: skip
            except _Failure as failure:
                failure.url = str(current)
                raise
            seen.add(str(target))
            from_public = public
            current = target
        raise AssertionError("unreachable: the last hop returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        url: httpx.URL,
        headers: dict[str, str],
        from_public: bool,
        deadline_at: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> tuple[_Hop, bool, float]:
        """One hop within the deadline: the answer, whether its peer is public, and the deadline."""
        key = f"{url.host}:{url.port}"
        slot = self._hosts.get(key) or self._hosts.setdefault(key, asyncio.Semaphore(self._per_host))
        try:
            if deadline_at is None:
                await slot.acquire()  # waiting for a busy host does not eat into the deadline
                deadline_at = loop.time() + self._deadline
            else:
                async with asyncio.timeout_at(deadline_at):
                    await slot.acquire()
            try:
                async with asyncio.timeout_at(deadline_at):
                    if from_public:
                        await self._refuse_private(url)
                    hop = await self._hop(url, headers, from_public)
                    public = hop.location is not None and await self._is_public_hop(url, hop.peer)
            finally:
                slot.release()
        except TimeoutError:
            raise _Failure(f"timed out after {format_duration(self._deadline)} (total deadline)") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise _Failure(self._describe(exc, url)) from None
        return hop, public, deadline_at

    async def _hop(self, url: httpx.URL, headers: dict[str, str], from_public: bool) -> _Hop:
        async with self._client.stream("GET", url, headers=headers) as response:
            peer = _peer(response)
            if from_public and peer is not None and not is_public(peer):  # DNS changed since our check
                raise _Failure(f"redirect to private address {peer} refused")
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("location")
                await _drain(response)
                if not location:
                    raise _Failure(f"{_status_words(response)} without a Location header", http_status=status)
                return _Hop(status, peer, location=location)
            validators = {
                "etag": response.headers.get("etag"),
                "last_modified": response.headers.get("last-modified"),
            }
            if status == 304:
                await response.aread()  # unread, the connection would be closed instead of reused
                return _Hop(304, peer, content_type=response.headers.get("content-type"), **validators)
            if not 200 <= status < 300:
                await _drain(response)
                retry = (
                    parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
                )
                raise _Failure(_status_words(response), http_status=status, retry_after=retry)
            body = await self._read_body(response)
            return _Hop(
                status, peer, body=body, content_type=response.headers.get("content-type"), **validators
            )

    async def _read_body(self, response: httpx.Response) -> bytes:
        """The decoded body, refused as soon as it passes ``max_bytes`` (declared or decoded)."""
        too_big = f"body larger than {_size(self._max_bytes)}"
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise _Failure(
                f"{too_big} (Content-Length: {_size(int(declared))})", http_status=response.status_code
            )
        try:
            decode = decoder(response.headers.get("content-encoding", "")).decode
        except DecodeError as exc:
            raise _Failure(str(exc), http_status=response.status_code) from None
        if response.is_stream_consumed:  # a response built in memory (httpx.MockTransport), decoded already
            if len(response.content) > self._max_bytes:
                raise _Failure(too_big, http_status=response.status_code)
            return response.content
        parts: list[bytes] = []
        total = 0
        async for raw in response.aiter_raw():
            try:
                data = decode(raw, self._max_bytes - total)
            except DecodeError as exc:
                raise _Failure(str(exc), http_status=response.status_code) from None
            total += len(data)
            if total > self._max_bytes:
                raise _Failure(too_big, http_status=response.status_code)
            parts.append(data)
        return b"".join(parts)

    async def _addresses(self, url: httpx.URL) -> list[str]:
        if ip_of(url.host) is not None:
            return [url.host]
        return list(await self._resolve(url.host, url.port or (443 if url.scheme == "https" else 80)))

    async def _refuse_private(self, url: httpx.URL) -> None:
        """Before following a redirect from a public host: refuse if the target is not public."""
        try:
            addresses = await self._addresses(url)
        except OSError:
            raise _Failure(f"cannot resolve host {url.host}") from None
        if not addresses:
            raise _Failure(f"cannot resolve host {url.host}")
        for address in addresses:
            if not is_public(address):
                raise _Failure(f"redirect to private address {address} refused")

    async def _is_public_hop(self, url: httpx.URL, peer: str | None) -> bool:
        """Whether the host that answered is public; when unknown, assume so (the strict choice)."""
        if peer is not None:
            return is_public(peer)
        try:
            addresses = await self._addresses(url)
        except OSError:
            return True
        return not addresses or any(is_public(a) for a in addresses)

    def _describe(self, exc: Exception, url: httpx.URL) -> str:
        """Plain words for a transport error."""
        if isinstance(exc, httpx.ConnectTimeout):
            return f"connect timed out after {format_duration(self._connect_timeout)}"
        if isinstance(exc, httpx.ReadTimeout):
            return f"timed out after {format_duration(self._read_timeout)}"
        if isinstance(exc, httpx.WriteTimeout):
            return f"timed out after {format_duration(self._read_timeout)} sending the request"
        if isinstance(exc, httpx.PoolTimeout):
            return f"no free connection within {format_duration(self._deadline)}"
        causes = _chain(exc)
        if any(isinstance(c, socket.gaierror) for c in causes):
            return f"cannot resolve host {url.host}"
        if any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "connection refused"
        tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        if tls is not None:
            return f"TLS error: {getattr(tls, 'verify_message', None) or tls.reason or tls}"
        root = next((c for c in reversed(causes) if isinstance(c, OSError) and c.strerror), None)
        detail = (
            root.strerror.lower() if root is not None and root.strerror else str(exc) or type(exc).__name__
        )
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect: {detail}"
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"bad HTTP response: {exc}"
        if isinstance(exc, httpx.ReadError):
            return f"connection lost while reading: {detail}"
        if isinstance(exc, httpx.WriteError):
            return f"connection lost while sending: {detail}"
        return f"{type(exc).__name__}: {detail}"


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise _Failure(f"unsupported URL scheme {parsed.scheme!r} (only http and https)")
    if not parsed.host:
        raise _Failure(f"invalid URL {url!r}: no host")
    return parsed


def _redirect_target(current: httpx.URL, hop: _Hop, seen: set[str], *, last: bool, limit: int) -> httpx.URL:
    """Where a redirect leads, or ``_Failure`` when it may not be followed."""
    assert hop.location is not None
    if last:
        raise _Failure(f"more than {limit} redirects", http_status=hop.status)
    try:
        target = current.join(hop.location)
    except httpx.InvalidURL:
        raise _Failure(f"redirect to an invalid URL {hop.location!r}", http_status=hop.status) from None
    if target.scheme not in ("http", "https") or not target.host:
        raise _Failure(f"redirect to unsupported URL {hop.location!r}", http_status=hop.status)
    if str(target) in seen:
        raise _Failure(f"redirect loop: {target} was already visited", http_status=hop.status)
    return target


async def _drain(response: httpx.Response) -> None:
    """Read a small unwanted body so the connection goes back to the pool; give up on a large one."""
    if response.is_stream_consumed:
        return
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > _DRAIN_LIMIT:
            break
