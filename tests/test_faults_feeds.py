"""Feeds that misbehave, served for real on loopback (tests/faultfeeds.py): whatever one feed does, the
others are polled on time, the feed's row says what is wrong in plain words, and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from faultfeeds import HEADLINE, NOW, install, item, pathological_dir, rss, write_config
from feedserver import FeedServer, blackhole, refused_url

from watcher.config import load_config
from watcher.daemon import load_rules, poll_once
from watcher.errors import ParseError
from watcher.fetch import Fetcher
from watcher.parse import parse_feed
from watcher.pipeline import Pipeline
from watcher.store import Store, from_iso

SCREENED = (
    "removed entity declarations from the document type (an internal DTD subset); "
    "references to those entities stay unexpanded"
)

# feed → (last_status, last_error, last_warning, items stored) after one poll
EXPECTED: dict[str, tuple[str, str | None, str | None, int]] = {
    "ok-a": ("ok", None, None, 1),
    "ok-b": ("ok", None, None, 1),
    "connect-timeout": ("error", "connect timed out after 1s", None, 0),
    "refused": ("error", "connection refused", None, 0),
    "status-500": ("error", "HTTP 500 Internal Server Error", None, 0),
    "status-502": ("error", "HTTP 502 Bad Gateway", None, 0),
    "status-503": ("error", "HTTP 503 Service Unavailable", None, 0),
    "status-404": ("error", "HTTP 404 Not Found", None, 0),
    "rate-limited": ("error", "HTTP 429 Too Many Requests", None, 0),
    "rate-limited-bare": ("error", "HTTP 429 Too Many Requests", None, 0),
    "redirect-loop": ("error", "redirect loop: SERVER/loop-a was already visited", None, 0),
    "slow-loris": ("error", "timed out after 3s (total deadline)", None, 0),
    "too-big": ("error", "body larger than 5 MB (Content-Length: 50 MB)", None, 0),
    "too-big-chunked": ("error", "body larger than 5 MB", None, 0),
    "gzip-bomb": ("error", "body larger than 5 MB", None, 0),
    "html-page": ("error", "HTML page titled '503 Service Temporarily Unavailable', not a feed", None, 0),
    "empty-body": ("error", "empty body", None, 0),
    "billion-laughs": ("ok", None, SCREENED, 1),
    "quadratic": (
        "ok",
        None,
        SCREENED + "; not well-formed XML at line 1: undefined entity; read leniently",
        1,
    ),
    "external-entity": ("ok", None, SCREENED, 1),
    "truncated": (
        "ok",
        None,
        "not well-formed XML at line 1: no element found; read leniently; "
        "1 entries had no title, summary or link and were skipped",
        2,
    ),
    "wrong-charset": (
        "ok",
        None,
        "character encoding: document declared as utf-8, but parsed as windows-1252",
        1,
    ),
    "no-charset": ("ok", None, None, 1),
    "empty-feed": ("ok", None, None, 0),
    "duplicate-guids": ("ok", None, "1 entries repeated the id of an earlier entry and were skipped", 2),
    "no-ids-no-dates": ("ok", None, None, 2),
    "far-future": ("ok", None, None, 1),
    "ten-thousand": ("ok", None, None, 10_000),
    "huge-title": ("ok", None, None, 1),
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Path, FeedServer, FeedServer]]:
    """Every fault on one server, the two healthy control feeds on another (another host, as in life)."""
    with FeedServer() as faults, FeedServer() as good, blackhole() as hole:
        feeds = install(faults, tmp_path)
        for name in ("ok-a", "ok-b"):
            good.set(f"/{name}.xml", rss(name, [item(f"{name}-1", f"Control story of {name}")]))
            feeds[name] = good.url(f"/{name}.xml")
        feeds["connect-timeout"] = hole
        feeds["refused"] = refused_url()
        yield write_config(tmp_path, feeds), faults, good


def health(database: Path, base: str) -> dict[str, tuple[str, str | None, str | None, int]]:
    with sqlite3.connect(database) as db:
        counts = dict(db.execute("SELECT feed, count(*) FROM items GROUP BY feed").fetchall())
        return {
            name: (status, error.replace(base, "SERVER") if error else None, warning, counts.get(name, 0))
            for name, status, error, warning in db.execute(
                "SELECT name, last_status, last_error, last_warning FROM feeds"
            )
        }


@pytest.mark.slow
def test_one_poll_of_every_misbehaving_feed_says_what_is_wrong(
    world: tuple[Path, FeedServer, FeedServer],
) -> None:
    config, faults, _ = world
    report = asyncio.run(poll_once(load_config(config)))
    assert {p.feed: p.status for p in report.polls} == {
        name: "error" if error else "ok" for name, (_, error, _, _) in EXPECTED.items()
    }
    database = config.parent / "watcher.db"
    assert health(database, faults.base) == EXPECTED

    with sqlite3.connect(database) as db:
        rows = {
            (feed, key): (title, published, known)
            for feed, key, title, published, known in db.execute(
                "SELECT feed, key, title, published, published_known FROM items WHERE feed != 'ten-thousand'"
            )
        }
        first_seen = db.execute("SELECT first_seen FROM items WHERE feed = 'far-future'").fetchone()[0]
        dump = "\n".join(str(r) for r in db.execute("SELECT * FROM items"))
    # entities declared by the feed stay unexpanded, local files and URLs are never read
    assert rows["external-entity", "xxe"][0] == "leak &file; &web;"
    assert rows["billion-laughs", "bomb"][0] == "lol &lol9;"
    assert "TOP-SECRET-CONTENT" not in dump and "leaked" not in dump
    assert faults.hits("/canary") == 0
    # a date in the year 2999 becomes the first-seen time, marked unknown
    assert rows["far-future", "f1"] == ("From the year 2999", first_seen, 0)
    # a 1 MB title is cut to 1,000 characters
    assert rows["huge-title", "h1"][0] == "A" * 999 + "…"
    # no id and no date: keyed by link (else a hash), dated when first seen
    assert rows["no-ids-no-dates", "https://news.example/only-link"] == ("Only a link", first_seen, 0)
    # no charset anywhere: read as UTF-8
    assert rows["no-charset", "n1"][0] == "Путин и Ким Чен Ын на параде в Пекине"
    # what came before the cut is kept
    assert rows["truncated", "t0"][0] == "Story 0 before the cut"


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")  # pragma: no cover


@pytest.mark.slow
def test_the_daemon_keeps_polling_on_time_through_every_fault(
    world: tuple[Path, FeedServer, FeedServer],
) -> None:
    config, faults, good = world
    stderr = config.parent / "daemon.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)], stderr=err)
    try:
        polled: list[float] = []
        started = time.monotonic()
        while time.monotonic() - started < 14:
            if good.hits("/ok-a.xml") > len(polled):
                polled.append(time.monotonic())
            assert proc.poll() is None, stderr.read_text()
            time.sleep(0.02)
        peak_kb = _peak_rss_kb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = stderr.read_text()
    # the healthy feed, polled every second, was never held up by more than a second and a half
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(polled)]
    assert len(polled) >= 11 and max(gaps) <= 2.5, gaps
    # memory: one daemon process (parse_workers: 0 parses in-process) after a 500 MB gzip bomb, a
    # quadratic blow-up (324 MB in feedparser alone), billion laughs and 50 MB bodies
    assert peak_kb < 250_000, f"peak RSS {peak_kb / 1024:.0f} MB"
    print(
        f"\nfeed faults: {len(EXPECTED) - 2} faulty feeds beside 2 healthy ones for 14 s; the healthy feed"
        f" polled {len(polled)} times, longest gap {max(gaps):.1f}s (interval 1s); daemon peak RSS"
        f" {peak_kb / 1024:.0f} MB"
    )
    # each fault is on its feed's row in the same plain words as after one poll; failures are counted
    now = datetime.now(UTC)
    database = config.parent / "watcher.db"
    assert health(database, faults.base) == {
        name: ("not_modified" if status == "ok" else status, *rest)  # later polls of an ok feed: 304s
        for name, (status, *rest) in EXPECTED.items()
    }
    with sqlite3.connect(database) as db:
        failures = dict(db.execute("SELECT name, consecutive_failures FROM feeds").fetchall())
        next_fetch = dict(db.execute("SELECT name, next_fetch_at FROM feeds").fetchall())
    assert all(
        failures[n] >= 2 for n, (_, error, _, _) in EXPECTED.items() if error and n != "rate-limited"
    ), failures
    # Retry-After: 120 is honoured (one request, the next one two minutes out); without it, backoff
    assert (failures["rate-limited"], faults.hits("/429")) == (1, 1)
    assert (from_iso(next_fetch["rate-limited"]) - now).total_seconds() > 100
    assert faults.hits("/429-bare") <= 6 < good.hits("/ok-a.xml")
    assert faults.hits("/canary") == 0
    before_stop = log.split(" stopping")[0]
    assert "Traceback" not in before_stop and " ERROR " not in before_stop, before_stop[-3000:]


# -- a public feed redirected into the private network -----------------------------------------

PUBLIC_HOST = "feeds.example.com"


class OnePublicHost(httpx.AsyncBaseTransport):
    """The internet has one host here, ``feeds.example.com``, whose /feed redirects to ``location``;
    every other request goes through a real transport (the loopback server). No public address
    exists on a test machine, so this is the one transport double (as in test_fetch.py)."""

    def __init__(self, location: str) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self._location = location

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_HOST:
            return httpx.Response(302, headers={"Location": self._location})
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


async def public_dns(host: str, port: int) -> list[str]:
    return {PUBLIC_HOST: ["93.184.215.14"], "localhost": ["127.0.0.1"]}.get(host, [])


@pytest.mark.anyio
async def test_a_public_feed_redirected_into_the_private_network_is_refused_and_recorded(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set("/admin", rss("Router admin", [item("r1", HEADLINE)]))
    feed_server.set("/mine", rss("My own feed", [item("m1", "Local story")]))
    config = write_config(tmp_path, {"evil": f"http://{PUBLIC_HOST}/feed", "mine": feed_server.url("/mine")})
    loaded = load_config(config)
    transport = OnePublicHost(feed_server.url("/admin"))
    with Store.open(loaded.database) as store:
        async with Fetcher(user_agent="watcher-test", transport=transport, resolve=public_dns) as fetcher:
            pipeline = Pipeline(loaded=loaded, store=store, rules=load_rules(loaded), fetcher=fetcher)
            pipeline.sync_feeds()
            reports = await pipeline.poll_all()
        assert [(r.feed, r.status, r.error) for r in reports] == [
            ("evil", "error", "redirect to private address 127.0.0.1 refused"),
            ("mine", "ok", None),  # a private address the user configured is the user's choice
        ]
        rows = {f["name"]: (f["last_status"], f["last_error"]) for f in store.feeds()}
    assert rows == {"evil": ("error", "redirect to private address 127.0.0.1 refused"), "mine": ("ok", None)}
    assert feed_server.hits("/admin") == 0


# -- the defusedxml bombs, each as a feed body --------------------------------------------------


def _defused_files() -> list[Path]:
    folder = pathological_dir()
    return sorted(folder.glob("*.xml")) if folder.is_dir() else []


@pytest.mark.corpus
@pytest.mark.parametrize("path", _defused_files() or [None], ids=lambda p: p.name if p else "absent")
def test_pathological_xml_is_never_expanded_or_fetched(path: Path | None) -> None:
    if path is None:
        pytest.skip("needs /work/shared/data (the shared corpus)")
    body = path.read_bytes()
    try:
        parsed = parse_feed(body, feed="bomb", url="http://127.0.0.1:9/feed", now=NOW)
    except ParseError as exc:
        assert exc.message  # refused as not a feed, in words
        return
    text = " ".join(f"{i.title} {i.summary}" for i in parsed.items) + parsed.title
    assert len(text) < 10_000
    assert "1234567890" * 3 not in text and "B" * 10_000 not in text
