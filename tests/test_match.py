"""The matching engine: scripts, suffixes, fuzzy aliases, conditions, scope, evidence and explain."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.explain import snippet
from watcher.match import Matcher, compile_watchlist
from watcher.models import Evidence, Item
from watcher.rules import load_watchlist
from watcher.textnorm import normalize

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "watchlist.yaml"


def matcher(tmp_path: Path, text: str) -> Matcher:
    path = tmp_path / "wl.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_watchlist(load_watchlist(path))


def item(title: str, summary: str = "", *, feed: str = "test", language: str | None = None) -> Item:
    return Item(
        feed=feed,
        key="item-1",
        link="https://example.org/1",
        title=title,
        summary=summary,
        published=datetime(2025, 9, 3, 8, 0, tzinfo=UTC),
        language=language,
    )


def rules(m: Matcher, title: str, summary: str = "", **kwargs: object) -> list[str]:
    return [x.rule_id for x in m.match(item(title, summary, **kwargs))]  # type: ignore[arg-type]


@cache
def shipped() -> Matcher:
    return compile_watchlist(load_watchlist(SHIPPED))


LEADERS = """
entities:
  kim: {aliases: [Kim Jong Un, 김정은, 金正恩], exclude: [Kim Jong Un's sister]}
  putin: {aliases: [Putin, Путин, プーチン]}
  xi: {aliases: [Xi, 習近平, 习近平]}
  moscow: {aliases: [Москва]}
  us: {aliases: [US, White House]}
rules:
  - {id: kim, title: Kim, any: [{entity: kim}]}
  - {id: putin, title: Putin, any: [{entity: putin}]}
  - {id: xi, title: Xi, any: [{entity: xi}]}
  - {id: moscow, title: Moscow, any: [{entity: moscow}]}
  - {id: us, title: US, any: [{entity: us}]}
"""


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("김정은은 3일 베이징에 도착했다", ["kim"]),
        ("김정은이 열병식에 참석", ["kim"]),
        ("김정은의 딸", ["kim"]),
        ("김정은에게는 큰 성과", ["kim"]),
        ("김정은호 출범", []),
        ("Putin's car", ["putin"]),
        ("Two Putins?", ["putin"]),
        ("Putinism explained", []),
        ("Встреча с Путиным", ["putin"]),
        ("Путина встретили в Пекине", ["putin"]),
        ("в Москве и Москвы", ["moscow"]),
        ("習近平氏が演説", ["xi"]),
        ("习近平主席会见", ["xi"]),
        ("プーチン大統領が到着", ["putin"]),
        ("Taxi drivers in Xinjiang", []),
        ("Xi's speech", ["xi"]),
        ("KIM JONG-UN ARRIVES", ["kim"]),
        ("Kim Jong‐Un arrives", ["kim"]),
        ("Kim Jong Un's sister speaks", []),
        ("US warns", ["us"]),
        ("He told us", []),
        ("the White House said", ["us"]),
    ],
)
def test_scripts_and_suffixes(tmp_path: Path, title: str, expected: list[str]) -> None:
    assert rules(matcher(tmp_path, LEADERS), title) == expected


def test_evidence_points_into_the_original_text(tmp_path: Path) -> None:
    m = matcher(tmp_path, LEADERS)
    title = "Die Straße: ＫＩＭ Jong-un’s Zug"
    (match,) = m.match(item(title, "Summary without names"))
    (ev,) = match.evidence
    assert ev == Evidence(
        term="kim",
        kind="entity",
        field="title",
        start=12,
        end=23,
        text="ＫＩＭ Jong-un",
        snippet=title,
        entity="kim",
        score=None,
    )
    assert title[ev.start : ev.end] == ev.text


FUZZY = """
entities:
  pyongyang: {aliases: [Pyongyang, Kim Jong Un], fuzzy: 85}
  seoul: {aliases: [Seoul]}
rules:
  - {id: pyongyang, title: P, any: [{entity: pyongyang}]}
  - {id: seoul, title: S, any: [{entity: seoul}]}
  - {id: putin, title: V, any: [{fuzzy: Vladimir Putin, score: 85}]}
"""


def test_fuzzy_aliases_match_misspellings_only_where_asked(tmp_path: Path) -> None:
    m = matcher(tmp_path, FUZZY)
    (match,) = m.match(item("Talks in Pyongyong today"))
    (ev,) = match.evidence
    assert (ev.kind, ev.text, ev.term) == ("fuzzy", "Pyongyong", "pyongyang")
    assert ev.score is not None and 85 <= ev.score < 100
    assert rules(m, "Kim Jong Eun speaks") == ["pyongyang"]
    assert rules(m, "Vladmir Putin speaks") == ["putin"]
    assert rules(m, "Vladimir Putin speaks") == ["putin"]
    assert rules(m, "Soeul mayor") == []  # no fuzzy asked for Seoul
    assert rules(m, "Kim Yo Jong speaks") == []
    assert rules(m, "the pyongyang-based outlet") == ["pyongyang"]


CONDITIONS = """
entities:
  putin: {aliases: [Putin]}
  kim: {aliases: [Kim Jong Un, Kim]}
  xi: {aliases: [Xi]}
groups:
  leaders: [putin, kim, xi]
rules:
  - id: two-leaders
    title: Two of three
    at_least: {n: 2, of: [{entity: putin}, {entity: kim}, {entity: xi}]}
    none: [[will meet, to meet]]
  - id: near
    title: Near
    near: {terms: [{entity: leaders}, [talks, 会谈]], within: 3}
  - id: title-only
    title: Title only
    scope: {fields: [title]}
    any: [parade]
  - id: sources
    title: Sources
    scope: {sources: [kcna, "yonhap-*"]}
    any: [parade]
  - id: tags-langs
    title: Tags and languages
    scope: {tags: [asia], languages: [ko]}
    any: [열병식]
  - id: regex
    title: Regex
    any: [{regex: "\\\\bsign(s|ed)? (a |the )?deal"}]
  - id: disabled
    title: Off
    enabled: false
    any: [parade]
"""


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        ("Putin and Kim in Beijing", "", ["two-leaders"]),
        ("Putin and Kim will meet", "", []),
        ("Putin holds talks", "", ["near"]),
        ("Putin, after a long and tiring day, held talks", "", []),
        ("习近平与普京会谈", "", []),
        ("Xi会谈", "", ["near"]),
        ("A parade", "", ["title-only"]),
        ("", "A parade", []),
        ("China and Russia signed the deal", "", ["regex"]),
        ("China and Russia sign a prisoner deal", "", []),
    ],
)
def test_conditions(tmp_path: Path, title: str, summary: str, expected: list[str]) -> None:
    assert rules(matcher(tmp_path, CONDITIONS), title, summary) == expected


def test_scope_sources_tags_and_languages(tmp_path: Path) -> None:
    m = matcher(tmp_path, CONDITIONS)
    assert rules(m, "A parade", feed="kcna") == ["title-only", "sources"]
    assert rules(m, "A parade", feed="yonhap-en") == ["title-only", "sources"]
    assert rules(m, "A parade", feed="bbc") == ["title-only"]
    assert [x.rule_id for x in m.match(item("중국 열병식"), tags=["asia"])] == [
        "tags-langs"
    ]  # language guessed
    assert [x.rule_id for x in m.match(item("중국 열병식", language="en"), tags=["asia"])] == []
    assert [x.rule_id for x in m.match(item("중국 열병식", language="ko-KR"), tags=["europe"])] == []


def test_a_catastrophic_regex_is_bounded_at_run_time(tmp_path: Path) -> None:
    m = matcher(tmp_path, 'rules:\n  - {id: slow, title: Slow, any: [{regex: "(a|aa)+$"}]}\n')
    assert rules(m, "a" * 60 + "!") == []


def test_explain_says_why(tmp_path: Path) -> None:
    m = matcher(tmp_path, CONDITIONS)
    text = m.explain(item("Putin and Kim will meet"), "two-leaders").render()
    assert text == "\n".join(
        [
            "rule two-leaders (Two of three) does not match item item-1",
            "  in scope; searching title, summary",
            "  ✗ all of 2: no",
            "    ✓ at least 2 of 3: 2 found",
            "      ✓ entity 'putin': found in title at 0-5 'Putin'",
            "      ✓ entity 'kim': found in title at 10-13 'Kim'",
            "      ✗ entity 'xi': not found",
            "    ✗ none of 1: 1 found, so the rule is vetoed",
            "      ✓ any of 2: 1 found",
            "        ✓ 'will meet': found in title at 14-23 'will meet'",
            "        ✗ 'to meet': not found",
        ]
    )
    out = m.explain(item("Parade", feed="bbc"), "sources")
    assert (out.matched, out.scope_problem) == (False, "source 'bbc' is not in the rule's sources")
    with pytest.raises(KeyError):
        m.explain(item("x"), "disabled")


def test_snippet_is_short_and_centred() -> None:
    text = "word " * 60 + "Kim Jong Un" + " word" * 60
    start = text.index("Kim")
    cut = snippet(text, start, start + 11)
    assert "Kim Jong Un" in cut and cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 122


def test_shipped_watchlist_on_the_summit_headlines() -> None:
    m = shipped()
    assert rules(m, "Xi, Putin, Kim and the optics of a new world order") == ["trio-together"]
    assert rules(m, "Putin meets Modi in Tianjin") == []
    assert rules(m, "Samsung signs MoU with Vietnamese firm") == []
    assert rules(m, "Russia and Ukraine sign a prisoner deal") == []
    assert rules(m, "中ロ首脳が共同声明に署名") == ["joint-statement", "signed-agreement"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=300))
def test_any_text_matches_without_error(title: str, summary: str) -> None:
    m = shipped()
    for match in m.match(item(title, summary)):
        for ev in match.evidence:
            source = title if ev.field == "title" else summary
            assert source[ev.start : ev.end] == ev.text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Xi",
                "Putin",
                "Kim Jong-un",
                "김정은은",
                "習近平",
                "Путиным",
                "parade",
                "talks",
                "signed",
                "ＫＩＭ",
                "Ｘｉ",
                "–",
                "’s",
                " ",
                "Café",
                "North Korea",
                "drones",
                "missiles",
                "Beijing",
                "will meet",
            ]
        )
        | st.text(max_size=8),
        max_size=20,
    )
)
def test_matching_is_the_same_after_normalizing_twice(parts: list[str]) -> None:
    text = " ".join(parts)
    m = shipped()
    once = normalize(text).text
    assert [x.rule_id for x in m.match(item(once))] == [
        x.rule_id for x in m.match(item(normalize(once).text))
    ]
    assert [x.rule_id for x in m.match(item(text))] == [x.rule_id for x in m.match(item(once))]
