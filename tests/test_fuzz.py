"""Fuzzing: any input in, no exception out (other than the documented ConfigError / ParseError).

hypothesis drives the item normalizer, the config and watch-list loaders and the matcher over random
watch lists (the shipped watch list is fuzzed in test_match.py and textnorm in test_textnorm.py) and
``parse_feed`` over random bodies. Every file of the shared feed corpora goes through ``parse_feed`` in
test_parse_corpus.py (no exception but ParseError; items counted and held to a floor).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.config import load_config
from watcher.errors import ConfigError, ParseError
from watcher.match import compile_watchlist
from watcher.models import Item
from watcher.normalize import RawEntry, normalize_entry, raw_from_item
from watcher.parse import parse_feed
from watcher.rules import load_watchlist
from watcher.textnorm import normalize

NOW = datetime(2025, 9, 3, 9, 0, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# text that stresses normalizers: markup, entities, controls, odd spaces, scripts, long words
tricky = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["<", ">", "&", ";", "&amp;", "&#0;", "<p>", "</b>", "<script>", "\x00", "\u2028",
                         "\u00a0", "\ufeff", " ", "-", "’", "Ｋ", "김", "習", "Путин", "http://", "//"]),
    ),
    max_size=60,
).map("".join)  # fmt: skip
links = st.one_of(
    tricky,
    st.sampled_from(
        ["https://news.example/a?utm_source=x&id=3#top", "/relative/path", "http://[::1", "mailto:x"]
    ),
    st.builds(lambda s: f"https://news.example/{s}", tricky),
)
dates = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),  # naive
)
raw_entries = st.builds(
    RawEntry,
    id=st.one_of(st.none(), tricky, st.text(min_size=500, max_size=700)),
    link=st.one_of(st.none(), links),
    title=st.one_of(st.none(), tricky),
    title_html=st.booleans(),
    summary=st.one_of(st.none(), tricky),
    summary_html=st.booleans(),
    published=dates,
    language=st.one_of(st.none(), st.sampled_from(["en", "en_US ", "ko-KR", "x" * 40, "??"]), tricky),
    author=st.one_of(st.none(), tricky),
)


@FUZZ
@given(raw_entries, st.one_of(st.none(), st.sampled_from(["en", "ru", "bogus tag"])))
def test_any_entry_normalizes_and_normalizing_again_changes_nothing(
    raw: RawEntry, language: str | None
) -> None:
    item = normalize_entry(raw, feed="fuzz", base_url="https://news.example/feed", language=language, now=NOW)
    assert item.published.tzinfo is not None and item.published <= NOW
    assert len(item.title) <= 1000 and len(item.summary) <= 2000 and len(item.key) <= 512
    assert item.link == "" or item.link.startswith(("http://", "https://"))
    again = normalize_entry(raw_from_item(item), feed="fuzz", base_url="https://news.example/feed",
                            language=None, now=NOW)  # fmt: skip
    assert again == item


def test_a_link_ending_in_a_line_separator_normalizes_once() -> None:
    """Found by the test above: a second pass used to strip the U+2028 the first pass kept."""
    raw = RawEntry(link="0\u2028#")
    item = normalize_entry(raw, feed="fuzz", base_url="https://news.example/feed", language=None, now=NOW)
    again = normalize_entry(raw_from_item(item), feed="fuzz", base_url="https://news.example/feed",
                            language=None, now=NOW)  # fmt: skip
    assert again == item


# -- loaders ------------------------------------------------------------------------------------

yaml_noise = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(["rules:", "entities:", "  - id: r", "    all: [x]", "    title: t", "  kim:",
                         "    aliases: [Kim]", "include: [other.yaml]", "{", "]", "- ", ": ", "&a", "*a",
                         "    regex: '(a+)+$'", "    entity: nobody", "\t", "!!python/object:os.system", "\n"]),
        max_size=30,
    ).map("\n".join),
)  # fmt: skip


@FUZZ
@given(yaml_noise)
def test_any_watchlist_text_loads_or_says_what_is_wrong(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("wl") / "watchlist.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        watchlist = load_watchlist(path)
    except ConfigError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    compile_watchlist(watchlist).match(item_of("Kim Jong Un meets Putin"))


@FUZZ
@given(st.one_of(st.text(max_size=300), yaml_noise.map(lambda t: t.replace("rules", "feeds"))))
def test_any_config_text_loads_or_says_what_is_wrong(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("cfg") / "watcher.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        assert exc.problems and all(p.message for p in exc.problems)


# -- the matcher over random watch lists -----------------------------------------------------------

words = st.sampled_from(["Kim", "Xi", "Putin", "parade", "talks", "김정은", "習近平", "Путин", "Tianjin", "summit",
                         "U.S.", "ROK", "Café", "co-op", "missile", "signed", "a", "the"])  # fmt: skip
phrases = st.lists(words, min_size=1, max_size=3).map(" ".join)
terms: st.SearchStrategy[Any] = st.one_of(
    phrases,
    st.builds(lambda e: {"entity": e}, st.sampled_from(["e0", "e1", "e2", "nobody"])),
    st.builds(lambda p, s: {"fuzzy": p, "score": s}, phrases, st.integers(50, 100)),
    st.builds(
        lambda r: {"regex": r}, st.sampled_from([r"\bkim\b", r"(a+)+$", r"[unclosed", r"mis+ile", r"\d{4}"])
    ),
)
conditions = st.recursive(
    terms,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"none": xs}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda xs: {"at_least": {"n": 1, "of": xs}}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs, w: {"near": {"terms": xs, "within": w}}, st.lists(terms, min_size=2, max_size=3),
                  st.integers(0, 12)),
    ),
    max_leaves=6,
)  # fmt: skip
watchlists = st.builds(
    lambda entities, rules: {
        "entities": {f"e{i}": {"aliases": aliases} for i, aliases in enumerate(entities)},
        "rules": [{"id": f"r{i}", "title": f"Rule {i}", "all": [cond]} for i, cond in enumerate(rules)],
    },
    st.lists(st.lists(phrases, min_size=1, max_size=3), min_size=0, max_size=3),
    st.lists(conditions, min_size=1, max_size=4),
)


def item_of(title: str, summary: str = "") -> Item:
    return Item(feed="fuzz", key="k", link="", title=title, summary=summary, published=NOW)


@FUZZ
@given(watchlists, st.lists(st.one_of(words, st.text(max_size=8)), max_size=25).map(" ".join))
def test_any_watchlist_matches_any_text_and_normalized_text_alike(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], text: str
) -> None:
    path = tmp_path_factory.mktemp("wl") / "watchlist.yaml"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    try:
        matcher = compile_watchlist(load_watchlist(path))
    except ConfigError as exc:  # an unknown entity, a bad or catastrophic regex: said, with a position
        assert all(re.match(r".*watchlist\.yaml:\d+:\d+: ", str(p)) for p in exc.problems), exc.problems
        return
    once = normalize(text).text
    for title in (text, once):
        for match in matcher.match(item_of(title)):
            for ev in match.evidence:
                assert title[ev.start : ev.end] == ev.text
    rules = lambda t: [m.rule_id for m in matcher.match(item_of(t))]  # noqa: E731
    assert rules(once) == rules(normalize(once).text)


@FUZZ
@given(
    st.binary(max_size=400)
    | st.text(max_size=400).map(lambda t: ("<rss><channel><item><title>" + t).encode())
)
def test_any_body_parses_or_is_refused_in_words(body: bytes) -> None:
    try:
        parsed = parse_feed(body, feed="fuzz", url="https://news.example/feed", now=NOW)
    except ParseError as exc:
        assert exc.message
        return
    assert all(i.published <= NOW + timedelta(seconds=1) for i in parsed.items)
