"""Normalization of parsed entries into Items: keys, canonical links, plain text, dates, languages."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.models import Item, ParsedFeed
from watcher.normalize import (
    SUMMARY_LIMIT,
    TITLE_LIMIT,
    RawEntry,
    RawFeed,
    canonical_link,
    item_key,
    normalize_entry,
    normalize_feed,
    normalize_language,
    plain_text,
    raw_from_item,
    utc_published,
)

NOW = datetime(2025, 9, 3, 9, 0, tzinfo=UTC)
FEED_URL = "https://news.example/world/rss.xml"


def normalize(raw: RawEntry, language: str | None = None) -> Item:
    return normalize_entry(raw, feed="bbc-asia", base_url=FEED_URL, language=language, now=NOW)


def test_a_typical_news_entry_becomes_a_clean_item() -> None:
    raw = RawEntry(
        id="https://www.bbc.com/news/articles/c78z2p6gg1zo?at_medium=RSS&at_campaign=rss",
        link="https://www.bbc.com/news/articles/c78z2p6gg1zo?at_medium=RSS&at_campaign=rss",
        title="North Korea&#39;s Kim leaves for China in <b>armoured</b> train",
        title_html=True,
        summary="<p>The train is said to have a restaurant onboard</p><p>serving French wines.</p>",
        published=datetime(2025, 9, 1, 14, 40, 47, tzinfo=UTC),
        author="jo@bbc.example (Jo Smith)",
    )
    assert normalize(raw, language="en-GB") == Item(
        feed="bbc-asia",
        key="https://www.bbc.com/news/articles/c78z2p6gg1zo?at_medium=RSS&at_campaign=rss",
        link="https://www.bbc.com/news/articles/c78z2p6gg1zo",
        title="North Korea's Kim leaves for China in armoured train",
        summary="The train is said to have a restaurant onboard serving French wines.",
        published=datetime(2025, 9, 1, 14, 40, 47, tzinfo=UTC),
        published_known=True,
        language="en-gb",
        author="jo@bbc.example (Jo Smith)",
    )


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://x.example/a?utm_source=rss&utm_medium=feed&id=7", "https://x.example/a?id=7"),
        ("https://x.example/a?b=2&fbclid=IwAR0&a=1&gclid=9", "https://x.example/a?b=2&a=1"),
        ("https://www.bbc.com/news/c1?at_medium=RSS&at_campaign=rss", "https://www.bbc.com/news/c1"),
        ("https://x.example/a?mc_cid=1&mc_eid=2&ocid=3&cmpid=4&keep=yes", "https://x.example/a?keep=yes"),
        ("https://x.example/a#comments", "https://x.example/a"),
        ("HTTPS://News.Example:443/a", "https://news.example/a"),
        ("http://news.example:80", "http://news.example/"),
        ("http://news.example:8080/a", "http://news.example:8080/a"),
        ("/world/asia/story.html", "https://news.example/world/asia/story.html"),
        ("story.html?id=1&utm_content=x", "https://news.example/world/story.html?id=1"),
        ("  https://x.example/a  ", "https://x.example/a"),
        ("0\u2028#", "https://news.example/world/0"),  # white space before a dropped fragment
        ("https://x.example/a\u2028?utm_source=x", "https://x.example/a"),
        ("javascript:alert(1)", ""),
        ("mailto:desk@news.example", ""),
        ("tag:news.example,2025:1", ""),
        ("http://[::1", ""),
        ("", ""),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_canonical_link(link: str, expected: str) -> None:
    assert canonical_link(link, FEED_URL) == expected


@pytest.mark.parametrize(
    ("value", "html", "expected"),
    [
        ("Kim &amp; Xi <em>meet</em>", True, "Kim & Xi meet"),
        ("<p>one</p><p>two</p><br>three", True, "one two three"),
        ("a<script>alert('x')</script>b<style>p{}</style>c", True, "abc"),
        ("&lt;b&gt;not a tag&lt;/b&gt;", True, "<b>not a tag</b>"),
        ("AT&T and Q&A", True, "AT&T and Q&A"),
        ("A&nbsp;B", True, "A B"),
        ("  spaced \n\t out  ", False, "spaced out"),
        ("<b>kept as text</b>", False, "<b>kept as text</b>"),
        ("tab\x00and\x07bell", False, "tabandbell"),
        ("\x93quoted\x94", False, "“quoted”"),
        ('<?xml version="1.0" encoding="utf-8"?><p>declared</p>', True, "declared"),
        ("", True, ""),
    ],
)
def test_plain_text(value: str, html: bool, expected: str) -> None:
    assert plain_text(value, html=html, limit=SUMMARY_LIMIT) == expected


def test_long_text_is_capped_at_a_word_boundary_with_an_ellipsis() -> None:
    title = plain_text("word " * 1_000_000, html=False, limit=TITLE_LIMIT)  # a 5 MB title
    assert len(title) <= TITLE_LIMIT
    assert title.endswith("word…")
    assert title == ("word " * 199).strip() + "…"


def test_a_long_html_summary_reads_the_same_from_its_start_as_in_full() -> None:
    paragraphs = "".join(f"<p>Paragraph {i} of the long report.</p>" for i in range(5_000))
    from_start = plain_text(paragraphs, html=True, limit=SUMMARY_LIMIT)
    in_full = plain_text(paragraphs, html=True, limit=10 * len(paragraphs))[:SUMMARY_LIMIT]
    assert from_start.removesuffix("…") == in_full[: len(from_start) - 1]
    assert len(from_start) <= SUMMARY_LIMIT


def test_a_summary_whose_text_starts_late_is_read_in_full() -> None:
    markup = "<p>" + "<span></span>" * 20_000 + "Only now does the text begin.</p>"
    assert plain_text(markup, html=True, limit=SUMMARY_LIMIT) == "Only now does the text begin."


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (None, (NOW, False)),
        (
            datetime(2025, 9, 3, 10, 0, tzinfo=timezone(timedelta(hours=2))),
            (datetime(2025, 9, 3, 8, 0, tzinfo=UTC), True),
        ),
        (datetime(2025, 9, 3, 8, 0), (datetime(2025, 9, 3, 8, 0, tzinfo=UTC), True)),  # naive: read as UTC
        (NOW + timedelta(minutes=5), (NOW, True)),  # a publisher's clock a little ahead
        (datetime(2099, 1, 1, tzinfo=UTC), (NOW, False)),  # far future: not a usable date
    ],
)
def test_utc_published(published: datetime | None, expected: tuple[datetime, bool]) -> None:
    assert utc_published(published, NOW) == expected


def test_item_key_prefers_the_id_then_the_link_then_a_hash() -> None:
    assert item_key(" urn:uuid:1 ", "https://x.example/a", "T") == "urn:uuid:1"
    assert item_key(None, "https://x.example/a", "T") == "https://x.example/a"
    assert item_key("", "", "Title only") == "sha1:" + hashlib.sha1(b"Title only\n").hexdigest()
    assert item_key("x" * 5000, "", "T").startswith("sha1:")
    assert (
        item_key(None, "", "", "Only a description")
        == "sha1:" + hashlib.sha1(b"\n\nOnly a description").hexdigest()
    )


def test_entries_without_id_or_link_get_distinct_stable_keys() -> None:
    one = normalize(RawEntry(title="First", summary="text"))
    again = normalize(RawEntry(title="First", summary="edited text"))
    other = normalize(RawEntry(title="Second"))
    described = [normalize(RawEntry(summary=s)) for s in ("RSS 0.92 items may have", "only a description")]
    assert one.key == again.key != other.key
    assert one.key.startswith("sha1:") and len(one.key) == 45
    assert described[0].key != described[1].key


@pytest.mark.parametrize(
    ("given", "expected"),
    [("en-US", "en-us"), ("en_GB", "en-gb"), (" ko ", "ko"), ("zh-Hant-TW", "zh-hant-tw"), ("", None),
     ("not a language!", None), (None, None)],
)  # fmt: skip
def test_normalize_language(given: str | None, expected: str | None) -> None:
    assert normalize_language(given) == expected


def test_the_entry_language_wins_over_the_feeds() -> None:
    assert normalize(RawEntry(title="a", language="ja"), language="en").language == "ja"
    assert normalize(RawEntry(title="a"), language="en").language == "en"


def test_a_feed_with_repeated_ids_keeps_the_first_and_says_so() -> None:
    raw = RawFeed(
        title="Wire",
        link="https://wire.example/",
        language="en",
        entries=[
            RawEntry(id="1", title="first"),
            RawEntry(id="1", title="again"),
            RawEntry(id="2", title="b"),
        ],
    )
    parsed = normalize_feed(
        raw, feed="wire", url="https://wire.example/rss", now=NOW, parser="lxml", warnings=[]
    )
    assert [(i.key, i.title) for i in parsed.items] == [("1", "first"), ("2", "b")]
    assert parsed == ParsedFeed(
        feed="wire",
        title="Wire",
        link="https://wire.example/",
        language="en",
        items=parsed.items,
        warnings=("1 entries repeated the id of an earlier entry and were skipped",),
        parser="lxml",
    )


# -- properties ---------------------------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None), max_size=300) | st.sampled_from(
    ["<p>a</p>", "&amp;&lt;b&gt;", "<![CDATA[x]]>", "\x00\x85\ud800", "http://x.example/?utm_source=a#f", " "]
)
urlish = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}?{query}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "javascript"]),
    st.from_regex(r"[A-Za-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
    st.text(max_size=30),
    st.text(max_size=30),
)
raw_entries = st.builds(
    RawEntry,
    id=st.none() | any_text,
    link=st.none() | any_text | urlish,
    title=st.none() | any_text,
    title_html=st.booleans(),
    summary=st.none() | any_text,
    summary_html=st.booleans(),
    published=st.none() | st.datetimes(timezones=st.none() | st.timezones()),
    language=st.none() | any_text,
    author=st.none() | any_text,
)


@settings(max_examples=300, deadline=None)
@given(raw_entries)
def test_any_entry_normalizes_without_error_and_normalizing_twice_changes_nothing(raw: RawEntry) -> None:
    item = normalize(raw)
    assert item.published.tzinfo is UTC or item.published.utcoffset() == timedelta(0)
    assert len(item.title) <= TITLE_LIMIT and len(item.summary) <= SUMMARY_LIMIT
    assert normalize(raw_from_item(item)) == item


@settings(max_examples=300, deadline=None)
@given(st.one_of(any_text, urlish), st.sampled_from([FEED_URL, "", "http://a.example/x/y?z=1"]))
def test_canonical_links_are_canonical(link: str, base: str) -> None:
    once = canonical_link(link, base)
    assert canonical_link(once, base) == once
    assert once == "" or once.startswith(("http://", "https://"))


@settings(max_examples=300, deadline=None)
@given(any_text, st.booleans(), st.integers(min_value=100, max_value=3000))
def test_plain_text_is_already_plain(value: str, html: bool, limit: int) -> None:
    once = plain_text(value, html=html, limit=limit)
    assert plain_text(once, html=False, limit=limit) == once
    assert len(once) <= limit
