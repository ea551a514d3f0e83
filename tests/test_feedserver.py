"""The loopback feed server itself (tests/feedserver.py): other tests and the benchmarks rely on it."""

from __future__ import annotations

import gzip
import threading
import time

import httpx
import pytest
from feedserver import FeedServer, gzip_bytes, http_date

LM = "Wed, 03 Sep 2025 09:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Modified-Since": LM}, 304),
        ({"If-Modified-Since": "Thu, 04 Sep 2025 00:00:00 GMT"}, 304),
        ({"If-Modified-Since": "Tue, 02 Sep 2025 00:00:00 GMT"}, 200),
        ({"If-None-Match": '"v1"'}, 304),
        ({"If-None-Match": 'W/"v1"'}, 304),
        ({"If-None-Match": '"v0", "v1"'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"v0"', "If-Modified-Since": LM}, 200),  # If-None-Match wins
        ({}, 200),
    ],
    ids=[
        "ims-equal",
        "ims-newer",
        "ims-older",
        "etag",
        "weak-etag",
        "etag-list",
        "star",
        "inm-wins",
        "plain",
    ],
)
def test_conditional_requests(feed_server: FeedServer, headers: dict[str, str], status: int) -> None:
    feed_server.set("/rss", "<rss/>", etag="v1", last_modified=LM)
    response = httpx.get(feed_server.url("/rss"), headers=headers)
    assert (response.status_code, response.headers["etag"], response.headers["last-modified"]) == (
        status,
        '"v1"',
        LM,
    )
    assert (feed_server.hits("/rss"), feed_server.not_modified("/rss")) == (1, int(status == 304))


def test_unknown_path_is_404_and_counted(feed_server: FeedServer) -> None:
    assert httpx.get(feed_server.url("/nope?x=1")).status_code == 404
    assert feed_server.hits("/nope") == 1
    assert feed_server.requests("/nope")[0][":path"] == "/nope?x=1"


def test_sequence_answers_in_turn_then_repeats_the_last(feed_server: FeedServer) -> None:
    feed_server.sequence(
        "/f", [{"status": 500}, {"status": 503, "headers": {"Retry-After": "5"}}, {"body": "ok"}]
    )
    with httpx.Client() as client:
        answers = [client.get(feed_server.url("/f")) for _ in range(4)]
    assert [(r.status_code, r.headers.get("retry-after")) for r in answers] == [
        (500, None), (503, "5"), (200, None), (200, None),
    ]  # fmt: skip


def test_huge_chunked_body_is_streamed_at_the_exact_size(feed_server: FeedServer) -> None:
    feed_server.huge("/big", 300_001, content_length=False)
    response = httpx.get(feed_server.url("/big"))
    assert (response.headers["transfer-encoding"], len(response.content)) == ("chunked", 300_001)


def test_gzip_only_when_accepted(feed_server: FeedServer) -> None:
    feed_server.set("/rss", "<rss>" + "x" * 1000 + "</rss>", gzip=True)
    plain = httpx.get(feed_server.url("/rss"), headers={"Accept-Encoding": "identity"})
    packed = httpx.get(feed_server.url("/rss"), headers={"Accept-Encoding": "gzip"})
    assert ("content-encoding" in plain.headers, packed.headers["content-encoding"]) == (False, "gzip")
    assert plain.content == packed.content  # httpx decodes the gzip one
    assert int(packed.headers["content-length"]) < 100


def test_gzip_bytes_inflate_to_the_size_asked() -> None:
    assert len(gzip.decompress(gzip_bytes(3_000_000))) == 3_000_000


def test_drop_after_cuts_the_body(feed_server: FeedServer) -> None:
    feed_server.set("/cut", "x" * 100, drop_after=10)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(feed_server.url("/cut"))


def test_keep_alive_and_counters(feed_server: FeedServer) -> None:
    feed_server.set("/a", "a")
    with httpx.Client() as client:
        for _ in range(3):
            client.get(feed_server.url("/a"))
    assert (feed_server.connections, feed_server.hits("/a"), feed_server.max_in_flight("/a")) == (1, 3, 1)
    feed_server.reset_counts()
    assert (feed_server.connections, feed_server.hits("/a"), feed_server.requests("/a")) == (0, 0, [])


def test_close_ends_a_trickling_response_promptly() -> None:
    server = FeedServer()
    server.slow_loris("/slow", every=1.0)
    outcome: list[str] = []

    def client() -> None:
        try:
            httpx.get(server.url("/slow"), timeout=30)
            outcome.append("complete")
        except httpx.HTTPError as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=client)
    thread.start()
    while server.hits("/slow") == 0:
        time.sleep(0.01)
    started = time.monotonic()
    server.close()
    thread.join(timeout=5)
    assert time.monotonic() - started < 3 and outcome == ["RemoteProtocolError"]


def test_http_date() -> None:
    assert http_date(1756890000) == "Wed, 03 Sep 2025 09:00:00 GMT"
