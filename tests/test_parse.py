"""parse_feed on small excerpts of real feeds (tests/fixtures/feeds) and on bodies built to misbehave."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.errors import ParseError
from watcher.models import Item, ParsedFeed
from watcher.normalize import datetime_from_struct, normalize_feed
from watcher.parse import parse_feed, prepare, read_feedparser
from watcher.parse_lxml import read_xml
from watcher.parse_rules import join_url, parse_date

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
URL = "https://example.org/feed"


def parse(name: str, **kwargs: object) -> ParsedFeed:
    return parse_feed((FIXTURES / name).read_bytes(), feed="t", url=URL, now=NOW, **kwargs)  # type: ignore[arg-type]


def both_paths(body: bytes, url: str = URL) -> tuple[ParsedFeed, ParsedFeed]:
    """The fast path's and feedparser's readings of one body (the fast path must accept it)."""
    body, content_type, _ = prepare(body)
    fast = read_xml(body, url=url, content_type=content_type)
    assert not isinstance(fast, str), fast
    slow, _ = read_feedparser(body, url=url, content_type=content_type)
    return (
        normalize_feed(fast, feed="t", url=url, now=NOW, parser="lxml", warnings=[]),
        normalize_feed(slow, feed="t", url=url, now=NOW, parser="feedparser", warnings=[]),
    )


def rss(items: str, channel: str = "<title>Wire</title><link>https://wire.example/</link>") -> bytes:
    return f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>{channel}{items}</channel></rss>".encode()


# -- real feeds, whole values ---------------------------------------------------------------------------------


def test_rss_2_0_bbc_asia() -> None:
    parsed = parse("bbc-asia-2025-09-01.rss")
    assert (parsed.title, parsed.link, parsed.language, parsed.parser, parsed.warnings) == (
        "BBC News - Asia", "https://feeds.bbci.co.uk/news/world/asia/rss.xml", "en-gb", "lxml", ()
    )  # fmt: skip
    assert len(parsed.items) == 3
    assert parsed.items[1] == Item(
        feed="t",
        key="https://www.bbc.com/news/articles/c78z2p6gg1zo?at_medium=RSS&at_campaign=rss",
        link="https://www.bbc.com/news/articles/c78z2p6gg1zo",
        title="North Korea's Kim leaves for China in armoured train",
        summary="The train is said to have a restaurant onboard serving French wines and dishes like fresh lobster.",
        published=datetime(2025, 9, 1, 14, 40, 47, tzinfo=UTC),
        language="en-gb",
    )


def test_atom_quartzlibrary() -> None:
    parsed = parse("quartzlibrary.atom")
    assert (parsed.title, parsed.link, parsed.language, parsed.parser) == (
        "QuartzLibrary", "https://quartzlibrary.com/", None, "lxml"
    )  # fmt: skip
    assert parsed.items[0] == Item(
        feed="t",
        key="https://quartzlibrary.com/edit/",
        link="https://quartzlibrary.com/edit/",
        title="Effects of [n] edits on GWAS scores",
        summary="A while ago I wondered something along the lines of: If you were to pick the highest impact "
        "edits from a GWAS, what would they look like? Specifically, the following seemed interesting:",
        published=datetime(2025, 5, 25, 18, 54, tzinfo=UTC),  # <published>, not the later <updated>
        author="quartzlibrary",
    )


def test_rdf_deutsche_welle() -> None:
    parsed = parse("dw-rdf.rdf")
    assert (parsed.title, parsed.link, len(parsed.items)) == (
        "Deutsche Welle",
        "https://www.dw.com/english/",
        3,
    )
    assert parsed.items[0] == Item(
        feed="t",
        key="https://www.dw.com/en/france-arrests-nine-in-right-wing-activist-s-death/a-75995188?maca=en-rss-en-all-1573-rdf",
        link="https://www.dw.com/en/france-arrests-nine-in-right-wing-activist-s-death/a-75995188",
        title="France arrests nine in right-wing activist's death",
        summary="Far-right activist Quentin Deranque was killed last week, seemingly in a clash with the far left.",
        published=datetime(2026, 2, 18, 0, 15, tzinfo=UTC),
        language="en",
    )


def test_rdf_in_latin1() -> None:
    parsed = parse("davidbau-latin1.rdf")
    assert (parsed.title, parsed.language, parsed.parser, parsed.warnings) == (
        "davidbau.com",
        "en-us",
        "lxml",
        (),
    )
    assert parsed.items[1].title == "My Family's Classical Chinese Genealogy"
    assert parsed.items[1].author == "David"


def test_windows_1251() -> None:
    parsed = parse("ibash-windows-1251.rss")
    assert parsed.items[0] == Item(
        feed="t",
        key="http://ibash.org.ru/quote.php?id=17703",
        link="http://ibash.org.ru/quote.php?id=17703",
        title="Цитата #17703",
        summary="xxx: есть у кого жаба программер xxx: кот немного пхп знает? yyy: то что кот PHP немного "
        "знает, я бы ещё может поверил yyy: но вот жаба-программер - это ты по-моему загнул",
        published=datetime(2018, 3, 21, 7, 27, 32, tzinfo=UTC),
        language="ru",
    )


@pytest.mark.parametrize("name", ["simplepie-utf16le.rss", "simplepie-utf16be.rss"])
def test_utf16_without_byte_order_mark(name: str) -> None:
    parsed = parse(name)
    assert parsed.title == "Test feed"
    assert parsed.items == (
        Item(
            feed="t",
            key="http://example.net/tests/#1.1",
            link="http://example.net/tests/",
            title="Test feed title 1",
            summary="Test feed description 1",
            published=NOW,
            published_known=False,
        ),
    )


def test_junk_after_the_root_element_is_read_leniently_with_a_warning() -> None:
    parsed = parse("junk-after-root.rss")
    assert parsed.parser == "feedparser"
    assert parsed.warnings == ("not well-formed XML at line 72: junk after document element; read leniently",)
    assert parsed.items == (
        Item(
            feed="t",
            key="https://blog.kroy.io/?p=1169",
            link="https://blog.kroy.io/2021/06/29/vyos-and-mikrotik-vlan-a-rama/",
            title="VyOS and Mikrotik – VLAN-a-rama",
            summary="For the novice networker, VLANs are easily one of the most misunderstood concepts. In this "
            "post, I’ll go over some basics and demonstrate how to make the jump from separate…",
            published=datetime(2021, 6, 29, 19, 12, 19, tzinfo=UTC),
            language="en-us",
            author="Kroy",
        ),
    )


def test_an_undefined_entity_is_read_leniently_with_a_warning() -> None:
    parsed = parse("undefined-entity.atom")
    assert parsed.parser == "feedparser"
    assert parsed.warnings == ("not well-formed XML at line 22: undefined entity; read leniently",)
    assert [item.title for item in parsed.items] == [
        "Optimizing Python application's Docker image with strip",
        "Re&colon; Double-entry accounting at scale",  # the undefined entity stays as written
    ]


MALFORMED = ["junk-after-root.rss", "undefined-entity.atom"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.name not in MALFORMED))
def test_fast_path_and_feedparser_agree_on_each_well_formed_fixture(name: str) -> None:
    fast, slow = both_paths((FIXTURES / name).read_bytes())
    assert fast.items == slow.items
    assert (fast.title, fast.link, fast.language) == (slow.title, slow.link, slow.language)


@pytest.mark.parametrize("name", MALFORMED)
def test_the_fast_path_leaves_malformed_fixtures_to_feedparser(name: str) -> None:
    body, content_type, _ = prepare((FIXTURES / name).read_bytes())
    assert read_xml(body, url=URL, content_type=content_type).startswith("not well-formed")  # type: ignore[union-attr]


# -- what the body held when there is no feed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b" \r\n\t ", "empty body"),
        (b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body>busy</body></html>",
         "HTML page titled '503 Service Unavailable', not a feed"),
        (b"<html><body><p>Sorry</p></body></html>", "HTML page, not a feed"),
        (b"<?xml version='1.0'?><rss><chan", "not well-formed XML at line 1: unclosed token"),
        (b"<?xml version='1.0'?><opml version='2.0'><body/></opml>", "XML document with root element <opml>, "
         "not a feed"),
        (b'{"status": "error"}', "JSON document, not a JSON Feed"),
        (b"Service Unavailable\r\nPlease retry later", "text, not a feed: 'Service Unavailable Please retry later'"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip-compressed data (the body was not decompressed), not a feed"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data, not a feed"),
        (b"{not json", "JSON document that does not parse: Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)"),
        (b"<?xml version='1.0'?><rss version='2.0'><channel></channel></rss>", "a feed with no entries and no "
         "title"),
    ],
    ids=["empty", "blank", "html-503", "html", "truncated", "opml", "json", "text", "gzip", "png", "bad-json",
         "empty-channel"],
)  # fmt: skip
def test_no_feed_raises_parse_error_saying_what_the_body_was(body: bytes, message: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_feed(body, feed="broken", url=URL, now=NOW)
    assert (raised.value.feed, raised.value.message) == ("broken", message)


def test_a_feed_with_a_title_and_no_items_is_not_an_error() -> None:
    parsed = parse_feed(rss(""), feed="quiet", url=URL, now=NOW)
    assert (parsed.title, parsed.items) == ("Wire", ())


# -- entries that misbehave --------------------------------------------------------------------------------


def test_items_without_ids_or_dates_and_with_future_dates() -> None:
    future = format_datetime(NOW + timedelta(days=365 * 20))
    body = rss(
        "<item><title>No id, no date</title></item>"
        "<item><title>Link only</title><link>/world/1?utm_source=rss</link></item>"
        f"<item><guid isPermaLink='false'>f</guid><title>From the future</title><pubDate>{future}</pubDate></item>"
        "<item><guid isPermaLink='false'>g</guid><title>Bad date</title><pubDate>yesterday-ish</pubDate></item>"
    )
    items = parse_feed(body, feed="t", url="https://wire.example/rss", now=NOW).items
    assert [(i.key[:5], i.link, i.published, i.published_known) for i in items] == [
        ("sha1:", "", NOW, False),
        ("https", "https://wire.example/world/1", NOW, False),
        ("f", "", NOW, False),
        ("g", "", NOW, False),
    ]
    assert items[1].key == "https://wire.example/world/1"


def test_a_truncated_feed_yields_the_items_before_the_cut_with_the_same_keys() -> None:
    whole = (FIXTURES / "bbc-asia-2025-09-01.rss").read_bytes()
    cut = whole[: whole.index(b"<title>BBC reports") + 30]  # in the third item's title
    truncated = parse_feed(cut, feed="t", url=URL, now=NOW)
    assert truncated.parser == "feedparser"
    assert truncated.warnings == (
        "not well-formed XML at line 22: no element found; read leniently",
        "1 entries had no title, summary or link and were skipped",
    )
    assert truncated.items == parse_feed(whole, feed="t", url=URL, now=NOW).items[:2]


def test_duplicate_guids_keep_the_first_with_a_warning() -> None:
    body = rss(
        "".join(f"<item><guid isPermaLink='false'>same</guid><title>{t}</title></item>" for t in "ABC")
    )
    parsed = parse_feed(body, feed="t", url=URL, now=NOW)
    assert [i.title for i in parsed.items] == ["A"]
    assert parsed.warnings == ("2 entries repeated the id of an earlier entry and were skipped",)


def test_a_one_megabyte_title_is_capped_at_a_word() -> None:
    title = "Beijing parade " * 70_000
    (item,) = parse_feed(rss(f"<item><guid>g</guid><title>{title}</title></item>"), feed="t", url=URL).items
    assert len(item.title) <= 1_000 and item.title.endswith("…")
    assert title.startswith(item.title.removesuffix("…") + " ")


def test_ten_thousand_items() -> None:
    body = rss(
        "".join(
            f"<item><guid isPermaLink='false'>{n}</guid><title>Item {n}</title></item>" for n in range(10_000)
        )
    )
    parsed = parse_feed(body, feed="t", url=URL, now=NOW)
    assert (len(parsed.items), parsed.items[-1].title, parsed.parser) == (10_000, "Item 9999", "lxml")


def test_relative_links_resolve_against_the_feed_url_and_xml_base() -> None:
    body = (
        b"<feed xmlns='http://www.w3.org/2005/Atom' xml:base='https://blog.example/posts/'><title>B</title>"
        b"<entry><id>urn:1</id><title>a</title><link href='one.html#top'/></entry>"
        b"<entry xml:base='/archive/'><id>urn:2</id><title>b</title><link href='two.html'/></entry></feed>"
    )
    fast, slow = both_paths(body)
    assert [i.link for i in fast.items] == [
        "https://blog.example/posts/one.html",
        "https://blog.example/archive/two.html",
    ]
    assert fast.items == slow.items


def test_a_html_title_in_rss_is_recognised_as_feedparser_does() -> None:
    body = rss(
        "<item><guid>1</guid><title>Kim &amp;amp; Xi &lt;em&gt;meet&lt;/em&gt;</title></item>"
        "<item><guid>2</guid><title>Q&amp;A: 2 &lt; 3</title></item>"
    )
    fast, slow = both_paths(body)
    assert [i.title for i in fast.items] == ["Kim & Xi meet", "Q&A: 2 < 3"]
    assert fast.items == slow.items


def test_content_type_charset_wins_over_the_declaration_as_in_feedparser() -> None:
    body = "<?xml version='1.0' encoding='utf-8'?><rss><channel><title>Café</title></channel></rss>".encode(
        "latin-1"
    )
    parsed = parse_feed(
        body, feed="t", url=URL, content_type="application/rss+xml; charset=iso-8859-1", now=NOW
    )
    assert parsed.title == "Café"


def test_a_feed_served_as_html_still_parses_and_says_how_it_was_served() -> None:
    parsed = parse_feed(rss("<item><guid>1</guid><title>t</title></item>"), feed="t", url=URL,
                        content_type="text/html; charset=utf-8", now=NOW)  # fmt: skip
    assert (parsed.parser, parsed.warnings) == (
        "lxml",
        ("served as text/html, not as a feed or XML media type",),
    )


def test_a_malformed_feed_served_as_html_without_charset_warns_only_of_what_matters() -> None:
    body = "<rss version='2.0'><channel><title>Café & co</title><item><guid>1</guid><title>é</title></item>"
    parsed = parse_feed(body.encode(), feed="t", url=URL, content_type="text/html", now=NOW)
    assert (parsed.parser, parsed.title, [i.title for i in parsed.items]) == (
        "feedparser",
        "Café & co",
        ["é"],
    )
    assert parsed.warnings == (
        "served as text/html, not as a feed or XML media type",
        "not well-formed XML at line 1: not well-formed (invalid token); read leniently",
    )


def test_json_feed() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "home_page_url": "https://j.example/",'
        b' "language": "en", "items": [{"id": 1, "url": "https://j.example/1?utm_source=x",'
        b' "title": "One", "content_html": "<p>Hello <b>there</b></p>", "date_published": "2025-09-03T09:00:00+08:00",'
        b' "authors": [{"name": "Ann"}]}, "not an item"]}'
    )
    parsed = parse_feed(body, feed="j", url="https://j.example/feed.json", now=NOW)
    assert parsed == ParsedFeed(
        feed="j",
        title="J",
        link="https://j.example/",
        language="en",
        items=(
            Item(
                feed="j",
                key="1",
                link="https://j.example/1",
                title="One",
                summary="Hello there",
                published=datetime(2025, 9, 3, 1, 0, tzinfo=UTC),
                language="en",
                author="Ann",
            ),
        ),
        warnings=("skipped 1 JSON Feed items that were not objects",),
        parser="jsonfeed",
    )


# -- the fast path refuses what it does not clearly understand ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<?xml version='1.0'?><rss><channel><title>x</title>", "not well-formed"),
        (b"<?xml version='1.0' encoding='iso-8859-1'?><rss><channel/></rss>", "encoded as iso-8859-1"),
        (b"<!DOCTYPE rss SYSTEM 'http://x.invalid/rss.dtd'><rss><channel/></rss>", "DOCTYPE with an external DTD"),
        (b"<feed xmlns='http://purl.org/atom/ns#'/>", "root element {http://purl.org/atom/ns#}feed"),
        (b"<rss><channel><item><image>i</image><image><url>u</url></image></item></channel></rss>", "image in an entry"),
        (b"<rss><channel><item><author>a@b.example</author><author><name>n</name></author></item></channel></rss>",
         "authors given both as text and as elements"),
        (b"<rss><channel><item><description><p>raw</p></description></item></channel></rss>",
         "child elements in description"),
        (b"<rss><channel><item><x:wrap xmlns:x='urn:x'><link>l</link></x:wrap></item></channel></rss>",
         "link nested in an entry"),
    ],
)  # fmt: skip
def test_the_fast_path_refuses(body: bytes, reason: str) -> None:
    refused = read_xml(body, url=URL)
    assert isinstance(refused, str) and refused.startswith(reason)


# -- running in a process pool ------------------------------------------------------------------------------


def test_parse_feed_runs_in_a_process_pool() -> None:
    body = (FIXTURES / "bbc-asia-2025-09-01.rss").read_bytes()
    assert pickle.loads(pickle.dumps(parse_feed)) is parse_feed
    with ProcessPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(parse_feed, body, feed="t", url=URL, now=NOW).result(timeout=60)
    assert remote == parse_feed(body, feed="t", url=URL, now=NOW)


# -- the shortcuts the fast path takes give feedparser's answers ----------------------------------------------

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]
rfc822 = st.builds(
    lambda wd, d, m, y, h, mi, s, tz: f"{wd}{d:02d} {m} {y} {h:02d}:{mi:02d}:{s:02d} {tz}",
    st.sampled_from(["", "Tue, ", "Wednesday, ", "Sun "]),
    st.integers(0, 35), st.sampled_from(_MONTHS), st.integers(1, 9999), st.integers(0, 25),
    st.integers(0, 61), st.integers(0, 61),
    st.sampled_from(["GMT", "UT", "UTC", "Z", "gmt", "+0000", "-0500", "+05:30", "+1400", "-9959", "EST"]),
)  # fmt: skip
w3dtf = st.builds(
    lambda y, m, d, h, mi, s, frac, tz: f"{y:04d}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{tz}",
    st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61),
    st.integers(0, 61), st.sampled_from(["", ".5", ".999999"]),
    st.sampled_from(["Z", "z", "+00:00", "-05:30", "+14:00", "+0100", ""]),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.one_of(rfc822, w3dtf, st.text(max_size=40)))
def test_date_shortcut_matches_feedparser(text: str) -> None:
    from feedparser.datetimes import _parse_date

    assert parse_date(text) == datetime_from_struct(_parse_date(text))


url_parts = (
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    st.from_regex(r"[A-Za-z0-9._-]{0,12}(:[0-9]{0,5})?", fullmatch=True),
)


@settings(max_examples=500, deadline=None)
@given(
    st.builds(lambda s, h, rest: f"{s}://{h}{rest}", *url_parts, st.text(max_size=30)) | st.text(max_size=30),
    st.sampled_from(["", URL, "https://a.example/x/y?q=1#f", "feed://b.example/"]),
)
def test_url_shortcut_matches_feedparser(uri: str, base: str) -> None:
    from feedparser.urls import _urljoin

    assert join_url(base, uri) == _urljoin(base, uri)
