"""The feed farm behaves like a feed server: ``pytest bench/test_farm.py`` (not part of the main suite)."""

from __future__ import annotations

import gzip
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from farm import Farm, Source, ThreadedFarm

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire</title><link>http://example.org/</link>
<item><title>Old story</title><link>http://example.org/1</link><guid>http://example.org/1</guid></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title><id>urn:blog</id>
<entry><title>Old post</title><id>urn:post:1</id><link href="http://example.org/p1"/>
<updated>2025-09-01T00:00:00Z</updated></entry></feed>"""
SOURCES = [Source("wire", "rss", RSS), Source("blog", "atom", ATOM)]


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def farm() -> Iterator[ThreadedFarm]:
    with ThreadedFarm(Farm(feeds=4, hosts=2, sources=SOURCES, compress=True)) as served:
        yield served


def test_unchanged_feed_answers_304_to_either_validator(farm: ThreadedFarm) -> None:
    url = farm.farm.urls()[0]
    status, headers, body = get(url)
    assert (status, body) == (200, RSS.replace(b"</guid>", b"-f0</guid>"))
    assert get(url, **{"If-None-Match": headers["ETag"]})[0] == 304
    assert get(url, **{"If-Modified-Since": headers["Last-Modified"]})[0] == 304


def test_each_feed_has_items_of_its_own(farm: ThreadedFarm) -> None:
    urls = farm.farm.urls()
    ids = [[e.id for e in feedparser.parse(get(u)[2]).entries] for u in urls]
    assert ids == [
        ["http://example.org/1-f0"],
        ["urn:post:1-f1"],
        ["http://example.org/1-f2"],
        ["urn:post:1-f3"],
    ]


def test_mutation_adds_one_new_item_and_changes_the_validators(farm: ThreadedFarm) -> None:
    urls = farm.farm.urls()
    before = [get(u)[1]["ETag"] for u in urls]
    changed = farm.farm.mutate(100, among=2)
    assert changed == [0, 1]
    for i, url in enumerate(urls[:2]):
        status, headers, body = get(url, **{"If-None-Match": before[i]})
        entries = feedparser.parse(body).entries
        assert (status, len(entries), entries[0].title) == (200, 2, farm.farm.headlines[i]["title"])
        assert headers["ETag"] != before[i]
    assert get(urls[2], **{"If-None-Match": before[2]})[0] == 304


def test_bodies_are_gzipped_for_clients_that_ask(farm: ThreadedFarm) -> None:
    url = farm.farm.urls()[1]
    status, headers, body = get(url, **{"Accept-Encoding": "gzip"})
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == ATOM.replace(b"</id>", b"-f1</id>")


def test_injected_item_is_served_with_its_time(farm: ThreadedFarm) -> None:
    url = farm.farm.urls()[3]
    with farm.farm.lock:
        added = farm.farm.add_item(3, title="Kim Jong Un arrives in Beijing", summary="By armoured train.")
    entries = feedparser.parse(get(url)[2]).entries
    assert (entries[0].title, entries[0].id, entries[0].link) == (
        added["title"],
        added["guid"],
        added["link"],
    )
    assert added["at"] > 0
