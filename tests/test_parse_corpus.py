"""parse_feed over the shared corpus of real feeds (../shared/data): every file, both parse paths.

- On every file of fastfeedparser-data/benchmark_data (200 real feeds), and of the other corpora, the
  lxml fast path either refuses or gives exactly the Items the feedparser path gives.
- Nothing raises but ParseError, over feedparser's own test corpus (current and historical), the W3C
  validator's test cases and the peer parsers' fixtures; the counts read are printed and held to a floor.
- A few real feeds and the six malformed ones are checked item by item.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from feedparser.datetimes import _parse_date
from feedparser.urls import _urljoin
from lxml import etree

from watcher.errors import ParseError
from watcher.models import Item
from watcher.normalize import datetime_from_struct, normalize_feed
from watcher.parse import parse_feed, prepare, read_feedparser
from watcher.parse_lxml import read_xml
from watcher.parse_rules import join_url, parse_date

pytestmark = pytest.mark.corpus

SHARED = Path(os.environ.get("WATCHER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data"
BENCHMARK = DATA / "fastfeedparser-data" / "benchmark_data"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def corpus(*parts: str) -> list[Path]:
    root = DATA.joinpath(*parts)
    if not root.is_dir():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.stat().st_size < 8 * 2**20)


def url_for(path: Path) -> str:
    return f"https://feeds.example/{path.name}"


@dataclass
class Tally:
    files: int = 0
    accepted: int = 0  # by the fast path
    items: int = 0
    parse_errors: int = 0
    mismatched: list[str] = field(default_factory=list)
    parsers: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        return (
            f"{self.files} files: fast path accepted {self.accepted}, {self.items} items read, "
            f"{self.parse_errors} ParseErrors, parsers {dict(self.parsers)}, mismatches {len(self.mismatched)}"
        )


def run(paths: list[Path]) -> Tally:
    """parse_feed on each file, and for each file the fast path accepts, feedparser's reading too."""
    tally = Tally()
    for path in paths:
        raw = path.read_bytes()
        tally.files += 1
        try:
            parsed = parse_feed(raw, feed="c", url=url_for(path), now=NOW)
        except ParseError:
            tally.parse_errors += 1
        else:
            tally.items += len(parsed.items)
            tally.parsers[parsed.parser] += 1
        if not raw.strip():
            continue
        body, content_type, _ = prepare(raw)
        fast = read_xml(body, url=url_for(path), content_type=content_type)
        if isinstance(fast, str):
            continue
        tally.accepted += 1
        slow, _ = read_feedparser(body, url=url_for(path), content_type=content_type)
        a = normalize_feed(fast, feed="c", url=url_for(path), now=NOW, parser="lxml", warnings=[])
        b = normalize_feed(slow, feed="c", url=url_for(path), now=NOW, parser="feedparser", warnings=[])
        if a.items != b.items or (a.title, a.link, a.language) != (b.title, b.link, b.language):
            tally.mismatched.append(str(path.relative_to(DATA)))
    return tally


# -- the fast path against feedparser, file by file -----------------------------------------------------------


@pytest.mark.slow
def test_every_benchmark_feed_reads_the_same_on_both_paths() -> None:
    tally = run(corpus("fastfeedparser-data", "benchmark_data"))
    print(f"\nfastfeedparser benchmark_data: {tally}")
    assert tally.mismatched == []
    assert tally.files == 200
    assert tally.accepted >= 190  # all but the malformed ones and the JSON Feed (194 when written)
    assert tally.parse_errors == 1  # 7ef13a42fa7e177a: beyond feedparser too
    assert tally.items >= 6_400


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parts", "min_files", "min_items", "min_accepted"),
    [
        # when written: 2107 files, 575 items, 957 accepted (most files are one-element fragments)
        (("feedparser-tests",), 2_100, 550, 900),
        (("feedparser-tests-historical",), 230, 10, 18),
        (("w3c-feedvalidator-testcases",), 2_150, 1_200, 1_600),
        (("peer-fixtures",), 1_400, 3_200, 500),
        (("real-news-multilingual",), 20, 4_800, 18),
        (("sept2025",), 60, 1_700, 60),
        (("fastfeedparser-data", "tests"), 28, 150, 8),
    ],
    ids=lambda v: "/".join(v) if isinstance(v, tuple) else None,
)
def test_every_file_of_a_corpus_parses_or_raises_parse_error(
    parts: tuple[str, ...], min_files: int, min_items: int, min_accepted: int
) -> None:
    tally = run(corpus(*parts))  # any exception but ParseError fails the test here
    print(f"\n{'/'.join(parts)}: {tally}")
    assert tally.mismatched == []
    assert tally.files >= min_files
    assert tally.items >= min_items
    assert tally.accepted >= min_accepted


def test_the_fast_paths_shortcuts_agree_with_feedparser_on_every_date_and_link_in_the_corpus() -> None:
    dates: set[str] = set()
    links: set[str] = set()
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    for path in corpus("fastfeedparser-data") + corpus("sept2025") + corpus("real-news-multilingual"):
        root = etree.fromstring(path.read_bytes(), parser) if path.read_bytes().lstrip()[:1] == b"<" else None
        for el in root.iter() if root is not None else ():
            if not isinstance(el.tag, str):
                continue
            name = el.tag.rpartition("}")[2].lower()
            text = (el.text or "").strip()
            if text and name in ("pubdate", "published", "updated", "date", "lastbuilddate", "modified"):
                dates.add(text)
            if text and name in ("link", "guid", "id"):
                links.add(text)
            if el.get("href"):
                links.add(el.get("href"))
    assert len(dates) > 5_000 and len(links) > 10_000
    assert [d for d in dates if parse_date(d) != datetime_from_struct(_parse_date(d))] == []
    for base in ("https://feeds.example/rss", ""):
        assert [u for u in links if join_url(base, u) != _urljoin(base, u)] == []


# -- real feeds, item by item ------------------------------------------------------------------------------


def read(name: str) -> tuple[str, tuple[Item, ...], tuple[str, ...]]:
    path = BENCHMARK / name
    if not path.is_file():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    parsed = parse_feed(path.read_bytes(), feed="c", url="https://feeds.example/rss", now=NOW)
    return parsed.parser, parsed.items, parsed.warnings


def test_bbc_news_rss() -> None:
    parser, items, warnings = read("1796df62c4a287cc")
    assert (parser, len(items), warnings) == ("lxml", 33, ())
    assert items[0] == Item(
        feed="c",
        key="https://www.bbc.com/news/articles/cp81l0e1eg5o#0",
        link="https://www.bbc.com/news/articles/cp81l0e1eg5o",
        title="US civil rights leader Jesse Jackson dies aged 84",
        summary="Tributes poured in from politicians who described Jackson as an agent of change and "
        "transformative leader.",
        published=datetime(2026, 2, 17, 18, 55, 33, tzinfo=UTC),
        language="en-gb",
    )


def test_nyt_world_rss_with_authors_and_media() -> None:
    parser, items, _ = read("78f77fae2e1ffc14")
    assert (parser, len(items)) == ("lxml", 57)
    assert items[0] == Item(
        feed="c",
        key="https://www.nytimes.com/2026/02/17/world/europe/trump-ukraine-war-putin.html",
        link="https://www.nytimes.com/2026/02/17/world/europe/trump-ukraine-war-putin.html",
        title="Trump Said He’d End the War in Ukraine in a Day. It’s Harder Than He Thought.",
        summary="Russian attacks and Ukrainian civilian deaths rose as President Trump’s peace talks dragged on "
        "during his first year back in the White House.",
        published=datetime(2026, 2, 17, 17, 49, 9, tzinfo=UTC),
        language="en-us",
        author="Kim Barker and Oleksandra Mykolyshyn",
    )


def test_al_jazeera_links_lose_their_tracking_parameter() -> None:
    _, items, _ = read("3f9eeff5039a008d")
    assert items[0].link == (
        "https://www.aljazeera.com/news/2026/2/18/stephen-colbert-says-cbs-barred-his-interview-with-texas-senate-candidate"
    )
    assert items[0].key == "https://www.aljazeera.com/?t=1771374614"


def test_youtube_atom_with_media_group() -> None:
    parser, items, _ = read("021a787a782817fc")
    assert (parser, len(items)) == ("lxml", 15)
    assert (items[0].key, items[0].title, items[0].author, items[0].published) == (
        "yt:video:z35j2WC1uLI", "A Rock Is Trapped Light", "Art of the Problem",
        datetime(2026, 2, 12, 21, 9, 23, tzinfo=UTC),
    )  # fmt: skip
    assert items[0].summary.startswith(
        "FULL VIDEO: https://www.youtube.com/watch?v=f8O3XMrC8hg For 2,600 years"
    )


def test_deutsche_welle_rdf() -> None:
    parser, items, _ = read("14dda539770f94e3")
    assert (parser, len(items)) == ("lxml", 141)
    assert (items[0].link, items[0].published, items[0].language) == (
        "https://www.dw.com/en/france-arrests-nine-in-right-wing-activist-s-death/a-75995188",
        datetime(2026, 2, 18, 0, 15, tzinfo=UTC),
        "en",
    )


@pytest.mark.parametrize(
    ("name", "count", "warning", "first"),
    [
        ("3d13901a267083a8", 56, "not well-formed XML at line 1176: undefined entity; read leniently",
         ("http://aivarsk.com/2025/12/07/tigerbeetle-blob-storage", "TigerBeetle as a file storage")),
        ("490dc9839ac777be", 40, "not well-formed XML at line 2052: not well-formed (invalid token); read leniently",
         ("tag:codearcana.com,2022-03-23:/posts/2022/03/23/an-ideal-platform-experience.html",
          "An Ideal Platform Experience")),
        ("705749c3b1bd02d8", 15, "not well-formed XML at line 45: not well-formed (invalid token); read leniently",
         ("https://web-oscard0m.vercel.app/blog/remix/nested-layouts-without-nested-urls",
          "How to use 'Nested Layouts' without 'Nested URLs' in Remix")),
        ("9e0834333e854116", 59, "character encoding: declared as UTF-16 or UTF-32 in one-byte text; read as utf-8",
         ("https://eliot-jones.com/2025/8/pdf-parsing-xref", "So you want to parse a PDF?")),
        ("b0e71155ca8a590c", 10, "not well-formed XML at line 6891: junk after document element; read leniently",
         ("https://blog.kroy.io/?p=1169", "VyOS and Mikrotik – VLAN-a-rama")),
    ],
)  # fmt: skip
def test_the_malformed_feeds_yield_what_can_be_read_with_a_warning(
    name: str, count: int, warning: str, first: tuple[str, str]
) -> None:
    _, items, warnings = read(name)
    assert (len(items), warnings, (items[0].key, items[0].title)) == (count, (warning,), first)


def test_the_badly_broken_feed_is_a_parse_error_in_plain_words() -> None:
    with pytest.raises(ParseError) as raised:
        read("7ef13a42fa7e177a")  # '<?xml?xml', 'rss:' prefixes bound to nothing, unquoted attributes
    assert raised.value.message == "not well-formed XML at line 3: not well-formed (invalid token)"


def test_the_malformed_utf16_declared_feed_still_goes_the_fast_way() -> None:
    parser, _, _ = read("9e0834333e854116")
    assert parser == "lxml"
