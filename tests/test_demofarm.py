"""The demo's feed farm: real HTTP on loopback, real RSS, a replay clock, conditional GETs."""

from __future__ import annotations

import calendar
import io
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import httpx
import pytest
from ruamel.yaml import YAML

from watcher.demofarm import DemoFarm, FarmStats, demo_config_text, load_week, parse_week
from watcher.units import parse_duration

SLUGS = [
    "bbc-asia",
    "aljazeera",
    "nyt-world",
    "wapo-world",
    "nbc-world",
    "sky-world",
    "japantoday",
    "cna",
    "guardian-world",
]
START = datetime(2025, 9, 1, tzinfo=UTC)


def shared_dir() -> Path:
    return Path(os.environ.get("WATCHER_SHARED", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="module")
def farm() -> Iterator[DemoFarm]:
    with DemoFarm() as f:
        yield f


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


def parse(resp: httpx.Response) -> feedparser.FeedParserDict:
    return feedparser.parse(
        io.BytesIO(resp.content),
        response_headers={"content-location": str(resp.url), "content-type": resp.headers["content-type"]},
    )


# -- the bundled week ---------------------------------------------------------------------------------
def test_bundled_week_has_the_nine_sources_and_every_entry_without_descriptions() -> None:
    raw = json.loads(resources.files("watcher").joinpath("data/demo/week.json").read_text("utf-8"))
    assert [s["slug"] for s in raw["sources"]] == SLUGS
    assert sum(len(s["entries"]) for s in raw["sources"]) == 1745
    keys = {frozenset(e) for s in raw["sources"] for e in s["entries"]}
    assert keys == {frozenset({"id", "published", "title", "link"})}
    size = resources.files("watcher").joinpath("data/demo/week.json").read_bytes()
    assert len(size) < 600_000

    week = load_week()
    assert (week.start, week.end, week.days) == (START, START + timedelta(days=7), 7)
    bbc = week.source("bbc-asia")
    assert (bbc.title, bbc.name, bbc.publisher, bbc.language) == (
        "BBC News - Asia",
        "BBC News Asia",
        "BBC News",
        "en-gb",
    )
    for src in week.sources:
        assert all(week.start <= e.published < week.end for e in src.entries)
        assert [e.published for e in src.entries] == sorted(e.published for e in src.entries)


@pytest.mark.corpus
def test_bundled_week_keeps_titles_links_and_dates_of_the_shared_corpus_exactly() -> None:
    path = shared_dir() / "data" / "sept2025" / "entries.jsonl"
    if not path.exists():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    corpus = {
        e["id"]: (e["source"], e["title"], e["link"], datetime.fromisoformat(e["published"]), e["language"])
        for e in map(json.loads, path.read_text("utf-8").splitlines())
    }
    ours = {
        e.id: (s.slug, e.title, e.link, e.published, e.language)
        for s in load_week().sources
        for e in s.entries
    }
    assert ours == corpus


# -- serving ------------------------------------------------------------------------------------------
def test_feeds_are_empty_before_the_week_and_valid_rss(client: httpx.Client) -> None:
    with DemoFarm() as farm:
        resp = client.get(farm.url("bbc-asia"))
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/rss+xml; charset=utf-8"
        parsed = parse(resp)
        assert (parsed.bozo, parsed.version, parsed.feed.title, parsed.entries) == (
            0,
            "rss20",
            "BBC News - Asia",
            [],
        )


def test_items_appear_as_the_clock_advances_newest_first(farm: DemoFarm, client: httpx.Client) -> None:
    bbc = load_week().source("bbc-asia")
    farm.set_day(1)
    day1 = [e for e in bbc.entries if e.published < START + timedelta(days=1)]
    parsed = parse(client.get(farm.url("bbc-asia")))
    assert parsed.bozo == 0
    got = [
        (e.title, e.link, e.id, datetime.fromtimestamp(calendar.timegm(e.published_parsed), UTC))
        for e in parsed.entries
    ]
    assert got == [(e.title, e.link, e.link, e.published) for e in reversed(day1)]
    assert [(e.title, e.link) for e in farm.visible("bbc-asia")] == [
        (e.title, e.link) for e in reversed(day1)
    ]

    # One second after the next item's publication, it is on top.
    nxt = bbc.entries[len(day1)]
    farm.advance_to(nxt.published - timedelta(seconds=1))
    assert parse(client.get(farm.url("bbc-asia"))).entries[0].title == day1[-1].title
    farm.advance_to(nxt.published)
    assert parse(client.get(farm.url("bbc-asia"))).entries[0].title == nxt.title


def test_a_busy_feed_keeps_only_its_latest_fifty_items(farm: DemoFarm, client: httpx.Client) -> None:
    farm.set_day(7)
    cna = load_week().source("cna")
    titles = [e.title for e in parse(client.get(farm.url("cna"))).entries]
    assert titles == [e.title for e in reversed(cna.entries[-50:])]


def test_unchanged_feed_answers_304_to_etag_and_to_if_modified_since(client: httpx.Client) -> None:
    with DemoFarm(clock=START + timedelta(days=2)) as farm:
        first = client.get(farm.url("japantoday"))
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        again = client.get(farm.url("japantoday"), headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
        dated = client.get(farm.url("japantoday"), headers={"If-Modified-Since": modified})
        assert dated.status_code == 304

        # An hour in which Japan Today published something: new body, new validators.
        jt = load_week().source("japantoday")
        farm.advance_to(next(e.published for e in jt.entries if e.published > farm.clock))
        changed = client.get(farm.url("japantoday"), headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert len(parse(changed).entries) == len(parse(first).entries) + 1
        stale = client.get(farm.url("japantoday"), headers={"If-Modified-Since": modified})
        assert stale.status_code == 200
        assert farm.stats() == FarmStats(requests=5, sent=3, not_modified=2, not_found=0)


def test_body_is_gzipped_when_asked_and_unknown_paths_are_404(farm: DemoFarm, client: httpx.Client) -> None:
    farm.set_day(3)
    zipped = client.get(farm.url("nyt-world"))  # httpx asks for gzip and decodes it
    plain = client.get(farm.url("nyt-world"), headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.content == plain.content
    assert client.get(f"{farm.base_url}/nope.xml").status_code == 404
    assert client.get(f"{farm.base_url}/").status_code == 404


def test_markup_in_titles_and_links_is_escaped_and_control_characters_dropped(client: httpx.Client) -> None:
    week = parse_week(
        {
            "start": "2025-09-01T00:00:00Z",
            "end": "2025-09-02T00:00:00Z",
            "sources": [
                {
                    "slug": "odd",
                    "title": "Q&A <News>",
                    "name": "Odd",
                    "publisher": "Odd",
                    "feed_url": "https://example.org/rss?a=1&b=2",
                    "language": "en",
                    "tags": ["test"],
                    "entries": [
                        {
                            "id": "odd-1",
                            "published": "2025-09-01T10:00:00Z",
                            "title": "AT&T <b>not bold</b> ]]> \x01end",
                            "link": "https://example.org/a?x=1&y=<2>",
                        }
                    ],
                }
            ],
        }
    )
    with DemoFarm(week, clock=week.end) as farm:
        body = client.get(farm.url("odd")).content
    channel = ElementTree.fromstring(body).find("channel")  # strict XML: no recovery
    assert channel is not None
    assert (channel.findtext("title"), channel.findtext("link")) == (
        "Q&A <News>",
        "https://example.org/rss?a=1&b=2",
    )
    items = [(i.findtext("title"), i.findtext("link"), i.findtext("guid")) for i in channel.iter("item")]
    link = "https://example.org/a?x=1&y=<2>"
    assert items == [("AT&T <b>not bold</b> ]]> end", link, link)]


def test_a_real_title_with_an_ampersand_arrives_intact(farm: DemoFarm, client: httpx.Client) -> None:
    (eggplants,) = [e for e in load_week().source("cna").entries if "R&D" in e.title]
    farm.advance_to(eggplants.published)
    top = parse(client.get(farm.url("cna"))).entries[0]
    assert (top.title, top.link) == (eggplants.title, eggplants.link)
    assert top.title.endswith("Somma’s R&D kitchen")


def test_the_clock_refuses_naive_times_and_days_outside_the_week() -> None:
    farm = DemoFarm()
    with pytest.raises(ValueError, match="time zone"):
        farm.advance_to(datetime(2025, 9, 3))
    with pytest.raises(ValueError, match=r"0\.\.7"):
        farm.set_day(8)
    farm.set_day(7)
    assert farm.clock == datetime(2025, 9, 8, tzinfo=UTC)


def test_ticks_cover_the_week_and_end_on_its_end() -> None:
    week = load_week()
    assert list(week.ticks(timedelta(days=2))) == [START + timedelta(days=d) for d in (2, 4, 6, 7)]
    assert len(list(week.ticks(timedelta(hours=3)))) == 56


# -- the demo config ----------------------------------------------------------------------------------
def test_demo_config_points_one_feed_per_source_at_the_farm(farm: DemoFarm, client: httpx.Client) -> None:
    text = demo_config_text(farm.base_url, "/tmp/d b/demo.db", "/x/watchlist.yaml")
    config = YAML(typ="safe").load(text)
    assert {k: v for k, v in config.items() if k != "feeds"} == {
        "database": "/tmp/d b/demo.db",
        "watchlist": "/x/watchlist.yaml",
        "alert_max_age": "3650d",
        "poll": {"interval": "1s", "jitter": "0s"},
        "channels": {"console": {"url": "console://"}},
    }
    assert config["feeds"][0] == {
        "name": "bbc-asia",
        "url": f"{farm.base_url}/bbc-asia.xml",
        "interval": "1s",
        "tags": ["uk", "world", "asia"],
        "publisher": "BBC News",
    }
    assert [f["name"] for f in config["feeds"]] == SLUGS
    farm.set_day(7)
    assert [client.get(f["url"]).status_code for f in config["feeds"]] == [200] * 9


# -- the curated real feed list (in config/watcher.yaml) -------------------------------------------------
def test_curated_feed_list_is_complete_and_well_formed() -> None:
    path = Path(__file__).resolve().parents[1] / "config" / "watcher.yaml"
    feeds = YAML(typ="safe").load(path.read_text("utf-8"))["feeds"]
    assert len(feeds) >= 20
    names = [f["name"] for f in feeds]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n) for n in names)
    assert {frozenset(f) for f in feeds} == {
        frozenset({"name", "url", "interval", "tags", "publisher", "tier"})
    }
    assert all(f["url"].startswith(("https://", "http://")) and "127.0.0.1" not in f["url"] for f in feeds)
    assert all(300 <= parse_duration(f["interval"]) <= 1800 for f in feeds)
    assert {f["tier"] for f in feeds} == {"primary", "secondary"}
    primary_countries = {f["tags"][0] for f in feeds if f["tier"] == "primary"}
    assert primary_countries >= {"korea", "japan", "china", "russia", "us"}
