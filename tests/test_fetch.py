"""The fetch stage against a real HTTP server on loopback (tests/feedserver.py).

The only transport double is in the private-address tests: no public host exists here, so a fake
public host ("feeds.example.com") is answered by ``httpx.MockTransport`` while every other request
goes through a real transport to the loopback server, and a resolver hook gives the fake host a
public address.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from feedserver import FeedServer, blackhole, refused_url

from watcher.fetch import Fetcher, backoff_delay, parse_retry_after
from watcher.httpclient import httpx  # the client watcher uses (httpx, or httpx2 if chosen)
from watcher.inflate import ACCEPT_ENCODING
from watcher.models import FetchResult

pytestmark = pytest.mark.anyio

UA = "watcher/0.1.0 (+https://github.com/watcher-project/watcher)"
RSS = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Wire</title>'
    b"<item><title>Xi, Putin and Kim watch the parade in Beijing</title><guid>a1</guid></item>"
    b"</channel></rss>"
)
LAST_MODIFIED = "Wed, 03 Sep 2025 09:00:00 GMT"
RSS_TYPE = "application/rss+xml; charset=utf-8"


def fetcher(**options: Any) -> Fetcher:
    return Fetcher(user_agent=UA, **options)


def settled(result: FetchResult) -> FetchResult:
    """The result without its timing, for whole-value comparison."""
    return replace(result, elapsed=0.0)


# -- plain and conditional GET ----------------------------------------------------------------


async def test_200_returns_body_validators_and_content_type(feed_server: FeedServer) -> None:
    route = feed_server.set("/rss", RSS, last_modified=LAST_MODIFIED)
    async with fetcher() as f:
        result = await f.fetch("wire", feed_server.url("/rss"))
    assert settled(result) == FetchResult(
        feed="wire", url=feed_server.url("/rss"), status="ok", http_status=200, body=RSS,
        content_type=RSS_TYPE, etag=route.etag, last_modified=LAST_MODIFIED,
    )  # fmt: skip
    seen = feed_server.requests("/rss")[0]
    assert (seen["user-agent"], seen["accept-encoding"]) == (UA, ACCEPT_ENCODING)
    assert "application/rss+xml" in seen["accept"]
    assert "if-none-match" not in seen and "if-modified-since" not in seen


async def test_etag_round_trip_answers_304_on_one_connection(feed_server: FeedServer) -> None:
    route = feed_server.set("/rss", RSS)
    async with fetcher() as f:
        first = await f.fetch("wire", feed_server.url("/rss"))
        again = [await f.fetch("wire", feed_server.url("/rss"), etag=first.etag) for _ in range(4)]
    assert first.etag == route.etag
    assert [settled(r) for r in again] == 4 * [
        FetchResult(
            feed="wire", url=feed_server.url("/rss"), status="not_modified", http_status=304, etag=route.etag
        )
    ]
    assert feed_server.requests("/rss")[1]["if-none-match"] == route.etag
    assert (feed_server.hits("/rss"), feed_server.not_modified("/rss")) == (5, 4)
    assert feed_server.connections == 1  # the 304s were read, so the connection was reused


async def test_last_modified_round_trip_answers_304(feed_server: FeedServer) -> None:
    feed_server.set("/rss", RSS, etag=False, last_modified=LAST_MODIFIED)
    async with fetcher() as f:
        first = await f.fetch("wire", feed_server.url("/rss"))
        second = await f.fetch("wire", feed_server.url("/rss"), last_modified=first.last_modified)
    assert (first.status, first.etag, first.last_modified) == ("ok", None, LAST_MODIFIED)
    assert (second.status, second.body, second.last_modified) == ("not_modified", b"", LAST_MODIFIED)
    assert feed_server.requests("/rss")[1]["if-modified-since"] == LAST_MODIFIED
    assert feed_server.not_modified("/rss") == 1


async def test_changed_feed_answers_200_with_new_etag(feed_server: FeedServer) -> None:
    old = feed_server.set("/rss", RSS)
    new = feed_server.set("/rss", RSS.replace(b"a1", b"a2"))
    async with fetcher() as f:
        result = await f.fetch("wire", feed_server.url("/rss"), etag=old.etag, last_modified=LAST_MODIFIED)
    assert (result.status, result.etag, result.body) == ("ok", new.etag, RSS.replace(b"a1", b"a2"))
    assert feed_server.requests("/rss")[0]["if-none-match"] == old.etag


# -- content codings and the size cap ---------------------------------------------------------


async def test_gzip_body_is_decoded(feed_server: FeedServer) -> None:
    body = RSS * 50
    feed_server.set("/rss", body, gzip=True)  # compressed because the request accepts gzip
    async with fetcher() as f:
        result = await f.fetch("wire", feed_server.url("/rss"))
    assert (result.status, result.body) == ("ok", body)
    assert "gzip" in feed_server.requests("/rss")[0]["accept-encoding"]


@pytest.mark.parametrize("raw", [False, True], ids=["zlib-deflate", "raw-deflate"])
async def test_deflate_body_is_decoded(feed_server: FeedServer, raw: bool) -> None:
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    feed_server.set("/rss", z.compress(RSS) + z.flush(), headers={"Content-Encoding": "deflate"})
    async with fetcher() as f:
        result = await f.fetch("wire", feed_server.url("/rss"))
    assert (result.status, result.body) == ("ok", RSS)


async def test_brotli_body_is_decoded_when_installed(feed_server: FeedServer) -> None:
    brotli = pytest.importorskip("brotli", reason="brotli not installed: br is then not requested")
    if "br" not in ACCEPT_ENCODING:
        pytest.skip("installed brotli cannot bound its output (needs 1.2+): br is not requested")
    feed_server.set("/rss", brotli.compress(RSS), headers={"Content-Encoding": "br"})
    feed_server.set(
        "/bomb", brotli.compress(bytes(50_000_000), quality=5), headers={"Content-Encoding": "br"}
    )
    async with fetcher(max_bytes=1_000_000) as f:
        result = await f.fetch("wire", feed_server.url("/rss"))
        bomb = await f.fetch("bomb", feed_server.url("/bomb"))
    assert (result.status, result.body) == ("ok", RSS)
    assert (bomb.status, bomb.error) == ("error", "body larger than 1 MB")


async def test_corrupt_gzip_is_an_error(feed_server: FeedServer) -> None:
    feed_server.set("/rss", RSS, headers={"Content-Encoding": "gzip"})
    async with fetcher() as f:
        result = await f.fetch("wire", feed_server.url("/rss"))
    assert (result.status, result.error) == ("error", "cannot decode gzip body (Error -3 while decompressing data: "
                                             "incorrect header check)")  # fmt: skip


async def test_body_at_the_cap_is_accepted(feed_server: FeedServer) -> None:
    feed_server.huge("/big", 100_000, content_length=False)
    async with fetcher(max_bytes=100_000) as f:
        result = await f.fetch("big", feed_server.url("/big"))
    assert (result.status, len(result.body)) == ("ok", 100_000)


async def test_declared_content_length_over_cap_is_refused_before_reading(feed_server: FeedServer) -> None:
    feed_server.huge("/big", 2_000_000)
    async with fetcher(max_bytes=1_000_000) as f:
        result = await f.fetch("big", feed_server.url("/big"))
    assert (result.status, result.http_status, result.error, result.body) == (
        "error", 200, "body larger than 1 MB (Content-Length: 2 MB)", b"",
    )  # fmt: skip


async def test_streamed_body_over_cap_is_refused(feed_server: FeedServer) -> None:
    feed_server.huge("/big", 3_000_000, content_length=False)  # chunked: no length to check up front
    async with fetcher(max_bytes=1_000_000) as f:
        result = await f.fetch("big", feed_server.url("/big"))
    assert (result.status, result.error) == ("error", "body larger than 1 MB")


async def test_gzip_bomb_stops_at_the_cap(feed_server: FeedServer) -> None:
    compressed = feed_server.gzip_bomb("/bomb", decoded=50_000_000)
    assert compressed < 100_000  # small on the wire, 50 MB decoded
    async with fetcher(max_bytes=1_000_000) as f:
        result = await f.fetch("bomb", feed_server.url("/bomb"))
    assert (result.status, result.error) == ("error", "body larger than 1 MB")


# -- time limits ------------------------------------------------------------------------------


async def test_deadline_ends_a_trickling_response(feed_server: FeedServer) -> None:
    feed_server.slow_loris("/slow", every=0.2)  # one byte every 0.2 s never trips the read timeout
    started = time.monotonic()
    async with fetcher(read_timeout=5, deadline=1) as f:
        result = await f.fetch("slow", feed_server.url("/slow"))
    waited = time.monotonic() - started
    assert (result.status, result.error) == ("error", "timed out after 1s (total deadline)")
    assert waited < 4  # deadline 1 s; a generous margin: this checks behaviour, not speed


async def test_read_timeout(feed_server: FeedServer) -> None:
    feed_server.set("/late", RSS, delay=3)
    async with fetcher(read_timeout=0.3, deadline=10) as f:
        result = await f.fetch("late", feed_server.url("/late"))
    assert (result.status, result.error) == ("error", "timed out after 300ms")


async def test_connect_timeout() -> None:
    with blackhole() as url:
        async with fetcher(connect_timeout=0.3) as f:
            result = await f.fetch("hole", url)
    assert (result.status, result.error, result.url) == ("error", "connect timed out after 300ms", url)


async def test_connection_refused() -> None:
    url = refused_url()
    async with fetcher() as f:
        result = await f.fetch("down", url)
    assert settled(result) == FetchResult(feed="down", url=url, status="error", error="connection refused")


async def test_unresolvable_host() -> None:
    async with fetcher() as f:
        result = await f.fetch("typo", "http://no-such-host.invalid/feed")
    assert (result.status, result.error) == ("error", "cannot resolve host no-such-host.invalid")


async def test_unsupported_scheme() -> None:
    async with fetcher() as f:
        result = await f.fetch("local", "file:///etc/passwd")
    assert (result.status, result.error) == ("error", "unsupported URL scheme 'file' (only http and https)")


async def test_connection_closed_mid_body(feed_server: FeedServer) -> None:
    feed_server.set("/cut", RSS, drop_after=40)
    async with fetcher() as f:
        result = await f.fetch("cut", feed_server.url("/cut"))
    assert result.status == "error"
    assert result.error is not None and result.error.startswith("bad HTTP response: ")


# -- HTTP errors and Retry-After --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "HTTP 500 Internal Server Error"), (502, "HTTP 502 Bad Gateway"), (404, "HTTP 404 Not Found")],
)
async def test_http_error_status(feed_server: FeedServer, status: int, words: str) -> None:
    feed_server.set("/err", "<html>oops</html>", status=status, headers={"Retry-After": "60"})
    async with fetcher() as f:
        result = await f.fetch("err", feed_server.url("/err"), etag='"old"')
    assert settled(result) == FetchResult(
        feed="err", url=feed_server.url("/err"), status="error", http_status=status, error=words, etag='"old"'
    )  # Retry-After is read only from 429 and 503; the validators given are kept for next time


async def test_503_with_retry_after_seconds(feed_server: FeedServer) -> None:
    feed_server.unavailable("/busy", retry_after=120)
    async with fetcher() as f:
        result = await f.fetch("busy", feed_server.url("/busy"))
    assert (result.error, result.http_status, result.retry_after) == (
        "HTTP 503 Service Unavailable",
        503,
        120.0,
    )


async def test_429_with_retry_after_date(feed_server: FeedServer) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    feed_server.rate_limited("/busy", retry_after=format_datetime(when, usegmt=True))
    async with fetcher() as f:
        result = await f.fetch("busy", feed_server.url("/busy"))
    assert (result.error, result.http_status) == ("HTTP 429 Too Many Requests", 429)
    assert result.retry_after is not None and 590 <= result.retry_after <= 600


async def test_429_without_retry_after(feed_server: FeedServer) -> None:
    feed_server.rate_limited("/busy", retry_after=None)
    async with fetcher() as f:
        result = await f.fetch("busy", feed_server.url("/busy"))
    assert (result.error, result.retry_after) == ("HTTP 429 Too Many Requests", None)


async def test_error_pages_are_read_so_the_connection_is_reused(feed_server: FeedServer) -> None:
    feed_server.html_page("/busy", status=503)
    async with fetcher() as f:
        for _ in range(5):
            assert (await f.fetch("busy", feed_server.url("/busy"))).http_status == 503
    assert (feed_server.hits("/busy"), feed_server.connections) == (5, 1)


async def test_failure_then_recovery(feed_server: FeedServer) -> None:
    feed_server.sequence("/flaky", [{"status": 500}, {"status": 502}, {"body": RSS}])
    async with fetcher() as f:
        results = [await f.fetch("flaky", feed_server.url("/flaky")) for _ in range(3)]
    assert [(r.status, r.http_status) for r in results] == [("error", 500), ("error", 502), ("ok", 200)]


def test_parse_retry_after() -> None:
    now = datetime(2025, 9, 3, 9, 0, tzinfo=UTC)
    assert [
        parse_retry_after(v, now=now)
        for v in [
            "120",
            " 0 ",
            "Wed, 03 Sep 2025 09:05:00 GMT",
            "Wed, 03 Sep 2025 08:00:00 GMT",
            "soon",
            "",
            None,
        ]
    ] == [120.0, 0.0, 300.0, 0.0, None, None, None]


# -- redirects --------------------------------------------------------------------------------


async def test_follows_five_redirects(feed_server: FeedServer) -> None:
    for i in range(5):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}", status=(301, 302, 303, 307, 308)[i])
    feed_server.set("/r5", RSS)
    async with fetcher() as f:
        result = await f.fetch("moved", feed_server.url("/r0"))
    assert (result.status, result.url, result.body) == ("ok", feed_server.url("/r5"), RSS)
    assert [feed_server.hits(f"/r{i}") for i in range(6)] == [1] * 6


async def test_relative_location(feed_server: FeedServer) -> None:
    feed_server.set("/old/feed", status=301, headers={"Location": "../new/feed.xml"}, etag=False)
    feed_server.set("/new/feed.xml", RSS)
    async with fetcher() as f:
        result = await f.fetch("moved", feed_server.url("/old/feed"))
    assert (result.status, result.url) == ("ok", feed_server.url("/new/feed.xml"))


async def test_too_many_redirects(feed_server: FeedServer) -> None:
    for i in range(6):
        feed_server.redirect(f"/r{i}", f"/r{i + 1}")
    feed_server.set("/r6", RSS)
    async with fetcher() as f:
        result = await f.fetch("moved", feed_server.url("/r0"))
    assert (result.status, result.error, result.url) == (
        "error",
        "more than 5 redirects",
        feed_server.url("/r5"),
    )
    assert feed_server.hits("/r6") == 0


async def test_redirect_loop(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/b")
    feed_server.redirect("/b", "/a")
    async with fetcher() as f:
        result = await f.fetch("loop", feed_server.url("/a"))
    assert (result.status, result.error) == (
        "error",
        f"redirect loop: {feed_server.url('/a')} was already visited",
    )
    assert (feed_server.hits("/a"), feed_server.hits("/b")) == (1, 1)


async def test_redirect_without_location(feed_server: FeedServer) -> None:
    feed_server.set("/r", status=302, etag=False)
    async with fetcher() as f:
        result = await f.fetch("moved", feed_server.url("/r"))
    assert (result.status, result.error) == ("error", "HTTP 302 Found without a Location header")


# -- redirects into private address space -----------------------------------------------------

PUBLIC = {"feeds.example.com": "93.184.215.14", "cdn.example.net": "151.101.1.69"}


class FakeInternet(httpx.AsyncBaseTransport):
    """``PUBLIC`` hosts answer from ``routes`` (path → (status, Location)); the rest go to the real
    loopback server. ``rebind`` names a host whose "DNS" says public but whose TCP lands on loopback."""

    def __init__(
        self, server: FeedServer, routes: dict[str, tuple[int, str]], rebind: str | None = None
    ) -> None:
        self._server = server
        self._real = httpx.AsyncHTTPTransport()
        self._fake = httpx.MockTransport(self._answer)
        self._routes = routes
        self._rebind = rebind
        self.fake_hits: list[str] = []

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.fake_hits.append(str(request.url))
        status, location = self._routes.get(request.url.path, (200, ""))
        if status == 200:
            return httpx.Response(200, content=RSS, headers={"Content-Type": "application/rss+xml"})
        return httpx.Response(status, headers={"Location": location})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self._rebind:
            request.url = request.url.copy_with(host="127.0.0.1", port=self._server.port)
            return await self._real.handle_async_request(request)
        if request.url.host in PUBLIC:
            return await self._fake.handle_async_request(request)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def fake_dns(host: str, port: int) -> list[str]:
    names = {**PUBLIC, "localhost": "127.0.0.1", "rebind.example": "93.184.215.14"}
    if host not in names:
        raise OSError(f"unknown host {host}")
    return [names[host]]


@pytest.mark.parametrize(
    ("target", "refused"),
    [("http://127.0.0.1:{port}/internal", "127.0.0.1"), ("http://localhost:{port}/internal", "127.0.0.1"),
     ("http://10.0.0.1/admin", "10.0.0.1"), ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
     ("http://[::1]:{port}/internal", "::1"), ("http://[::ffff:127.0.0.1]:{port}/internal", "::ffff:127.0.0.1")],
    ids=["loopback", "localhost", "private", "link-local-metadata", "ipv6-loopback", "ipv4-mapped"],
)  # fmt: skip
async def test_redirect_from_public_host_to_private_address_is_refused(
    feed_server: FeedServer, target: str, refused: str
) -> None:
    feed_server.set("/internal", "secret")
    location = target.format(port=feed_server.port)
    internet = FakeInternet(feed_server, {"/feed": (302, location)})
    async with fetcher(transport=internet, resolve=fake_dns) as f:
        result = await f.fetch("evil", "http://feeds.example.com/feed")
    assert settled(result) == FetchResult(
        feed="evil", url=location, status="error", error=f"redirect to private address {refused} refused"
    )
    assert feed_server.hits("/internal") == 0  # refused before any request was sent


async def test_redirect_between_public_hosts_is_followed(feed_server: FeedServer) -> None:
    internet = FakeInternet(feed_server, {"/feed": (301, "http://cdn.example.net/rss")})
    async with fetcher(transport=internet, resolve=fake_dns) as f:
        result = await f.fetch("moved", "http://feeds.example.com/feed")
    assert (result.status, result.url, result.body) == ("ok", "http://cdn.example.net/rss", RSS)


async def test_private_feed_may_redirect_out_and_the_public_hop_may_not_redirect_back(
    feed_server: FeedServer,
) -> None:
    feed_server.redirect("/start", "http://feeds.example.com/hop")  # loopback → public: the user's choice
    feed_server.set("/internal", "secret")
    internet = FakeInternet(feed_server, {"/hop": (302, feed_server.url("/internal"))})
    async with fetcher(transport=internet, resolve=fake_dns) as f:
        result = await f.fetch("mixed", feed_server.url("/start"))
    assert (result.status, result.error) == ("error", "redirect to private address 127.0.0.1 refused")
    assert internet.fake_hits == ["http://feeds.example.com/hop"]
    assert feed_server.hits("/internal") == 0


async def test_dns_rebinding_is_caught_by_the_peer_address(feed_server: FeedServer) -> None:
    feed_server.set("/internal", "secret")
    internet = FakeInternet(
        feed_server, {"/feed": (302, "http://rebind.example/internal")}, rebind="rebind.example"
    )
    async with fetcher(transport=internet, resolve=fake_dns) as f:
        result = await f.fetch("evil", "http://feeds.example.com/feed")
    assert (result.status, result.error, result.body) == (
        "error",
        "redirect to private address 127.0.0.1 refused",
        b"",
    )


# -- concurrency ------------------------------------------------------------------------------


async def test_per_host_limit_bounds_concurrent_requests() -> None:
    with FeedServer() as one, FeedServer() as two:
        for server in (one, two):
            server.set("/rss", RSS, delay=0.1)
        async with fetcher(per_host=2, max_connections=20) as f:
            urls = [one.url("/rss")] * 6 + [two.url("/rss")] * 6
            results = await asyncio.gather(*(f.fetch("x", u) for u in urls))
        assert [r.status for r in results] == ["ok"] * 12
        assert (one.max_in_flight(), two.max_in_flight()) == (2, 2)


async def test_global_limit_bounds_concurrent_requests(feed_server: FeedServer) -> None:
    feed_server.set("/rss", RSS, delay=0.05)
    async with fetcher(per_host=50, max_connections=3) as f:
        results = await asyncio.gather(*(f.fetch("x", feed_server.url("/rss")) for _ in range(12)))
    assert [r.status for r in results] == ["ok"] * 12
    assert feed_server.max_in_flight() == 3


async def test_many_feeds_gathered_wait_their_turn_without_pool_timeout(feed_server: FeedServer) -> None:
    for i in range(30):
        feed_server.set(f"/feed{i}", RSS, delay=0.03)
    # 30 requests of 30 ms through 2 connections take ~0.45 s, nearly twice the deadline: a wait for a
    # free connection must not count against it (httpx alone gives PoolTimeout here).
    async with fetcher(max_connections=2, per_host=50, deadline=0.25) as f:
        results = await asyncio.gather(
            *(f.fetch(f"feed{i}", feed_server.url(f"/feed{i}")) for i in range(30))
        )
    assert [(r.status, r.error) for r in results] == [("ok", None)] * 30
    assert feed_server.max_in_flight() == 2


async def test_waiting_for_a_busy_host_does_not_count_against_the_deadline(feed_server: FeedServer) -> None:
    feed_server.set("/rss", RSS, delay=0.15)
    async with fetcher(per_host=1, deadline=0.3) as f:
        results = await asyncio.gather(*(f.fetch("x", feed_server.url("/rss")) for _ in range(4)))
    assert [r.status for r in results] == ["ok"] * 4  # the last one waited ~0.45 s for its turn


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_from_the_interval_up_to_the_cap() -> None:
    delays = [backoff_delay(n, 300, jitter=0) for n in range(9)]
    assert delays == [300, 300, 600, 1200, 2400, 4800, 9600, 19200, 21600]
    assert backoff_delay(10_000, 300, jitter=0) == 6 * 3600


def test_backoff_honours_retry_after_within_the_cap() -> None:
    assert backoff_delay(1, 300, retry_after=7200, jitter=0) == 7200
    assert backoff_delay(5, 300, retry_after=60, jitter=0) == 4800  # never sooner than the backoff
    assert backoff_delay(1, 300, retry_after=30 * 86400, jitter=0) == 6 * 3600
    assert backoff_delay(1, 300, retry_after=7200, cap=3600, jitter=0) == 3600


def test_backoff_jitter_stretches_up_to_a_fifth() -> None:
    delays = {backoff_delay(3, 300) for _ in range(200)}
    assert min(delays) >= 1200 and max(delays) <= 1440
    assert len(delays) > 100  # feeds that failed together spread out
