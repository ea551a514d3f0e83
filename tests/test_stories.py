"""Stories: which matched items report one event, and who reported it (watcher.stories)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watcher.models import Evidence
from watcher.stories import Entry, Sources, StoryIndex, evidence_keys, rare_words, same_story, sources_of

T0 = datetime(2025, 9, 3, 1, 30, tzinfo=UTC)
KIM_PUTIN = frozenset({"kim-jong-un", "vladimir-putin"})
TRIO = frozenset({"kim-jong-un", "vladimir-putin", "xi-jinping", "parade"})


def entry(
    item_id: int,
    title: str,
    publisher: str,
    *,
    minutes: float = 0,
    entities: frozenset[str] = frozenset(),
    summary: str = "",
    tier: str = "secondary",
) -> Entry:
    return Entry(
        item_id=item_id,
        title=title,
        summary=summary,
        seen=T0 + timedelta(minutes=minutes),
        publisher=publisher,
        tier=tier,  # type: ignore[arg-type]
        entities=entities,
    )


# Real headlines of the parade week (../shared/data/sept2025), plus made-up template pairs.
PAIRS = [
    pytest.param(
        ("Kim promises to help Russia with 'everything' as Putin thanks North Korea for war aid", "CNA"),
        (
            "Kim promises to help Russia with 'everything' as Putin thanks North Korea for war aid",
            "Japan Today",
        ),
        "copy",
        id="wire-copy-verbatim-under-two-mastheads",
    ),
    pytest.param(
        ("N Korea wipes traces of Kim Jong Un after Beijing meeting with Putin", "Japan Today"),
        ("North Korea wipes traces of Kim Jong Un after Beijing meeting with Putin", "CNA"),
        "copy",
        id="wire-copy-with-an-edited-word",
    ),
    pytest.param(
        ("Hot mic catches Putin and Xi discussing organ transplants and immortality", "Japan Today"),
        ("Xi and Putin discuss organ transplants and immortality in hot mic moment", "NBC News"),
        "title",
        id="reworded-headline",
    ),
    pytest.param(
        ("Japan's Prime Minister Shigeru Ishiba resigns after election defeats", "NYT"),
        ("Japan PM Shigeru Ishiba to resign a month after disastrous election", "Guardian"),
        "title",
        id="reworded-headline-title-case",
    ),
    pytest.param(
        ("Undersea cables cut in the Red Sea, disrupting internet access in Asia", "CNA"),
        ("Undersea cables cut in Red Sea, disrupting internet access in Asia", "CNA"),
        "title",
        id="same-publisher-twice-is-not-a-copy",
    ),
    pytest.param(
        ("Magnitude 6.1 earthquake strikes eastern Japan, no tsunami warning issued", "A"),
        ("Magnitude 5.2 earthquake strikes northern Chile, no tsunami warning issued", "B"),
        None,
        id="same-template-different-subject",
    ),
    pytest.param(
        ("Crackdown", "Guardian"),
        ("Crackdown on international students could hurt struggling UK cities, thinktank warns", "BBC"),
        None,
        id="one-word-title-is-not-a-subset-match",
    ),
    pytest.param(
        ("Shark kills beachgoer near Sydney", "BBC"),
        ("Sudan landslide kills more than 1,000, rebel group says", "Al Jazeera"),
        None,
        id="unrelated",
    ),
]


@pytest.mark.parametrize(("a", "b", "expected"), PAIRS)
def test_same_story_by_text(a: tuple[str, str], b: tuple[str, str], expected: str | None) -> None:
    first = entry(1, a[0], a[1])
    second = entry(2, b[0], b[1], minutes=30)
    assert same_story(first, second) == expected
    assert same_story(second, first) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        pytest.param(KIM_PUTIN, KIM_PUTIN, "entities", id="same-two-entities-across-languages"),
        pytest.param(TRIO, TRIO - {"parade"}, "entities", id="three-of-four-shared"),
        pytest.param(
            frozenset({"kim-jong-un"}), frozenset({"kim-jong-un"}), None, id="one-entity-is-not-enough"
        ),
        pytest.param(
            frozenset({"xi-jinping", "vladimir-putin"}), KIM_PUTIN, None, id="different-pair-of-leaders"
        ),
    ],
)
def test_same_story_by_entities(left: frozenset[str], right: frozenset[str], expected: str | None) -> None:
    korean = entry(1, "김정은, 베이징서 푸틴과 회담", "Yonhap", entities=left)
    english = entry(2, "Leaders hold talks on the sidelines of the anniversary", "Reuters", entities=right)
    assert same_story(korean, english) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        pytest.param("Putin thanks Kim for North Koreans fighting in Ukraine", {"kim", "north", "koreans", "ukraine"}, id="sentence-case-names-after-the-first-word"),
        pytest.param("Putin Takes His 'Limo Diplomacy' to China", {"putin", "takes", "limo", "diplomacy", "china"}, id="title-case-every-word-but-stopwords"),
        pytest.param("Afghanistan earthquake kills 622 with more than 1,500 injured", {"622", "1", "500"}, id="numbers"),
        pytest.param("", set(), id="empty"),
    ],
)  # fmt: skip
def test_rare_words(title: str, expected: set[str]) -> None:
    assert rare_words(title) == expected


def _ev(entity: str | None, field: str, term: str = "") -> Evidence:
    return Evidence(
        term=term or entity or "", kind="entity" if entity else "phrase", field=field,
        start=0, end=1, text="x", snippet="x", entity=entity,
    )  # fmt: skip


def test_evidence_keys_prefer_the_titles_entities_when_it_names_two() -> None:
    evidence = [_ev("russia-side", "title"), _ev("north-korea-side", "title"), _ev("china-side", "summary")]
    evidence.append(_ev(None, "title", "Thanks"))
    assert evidence_keys(evidence) == (frozenset({"russia-side", "north-korea-side"}), frozenset({"thanks"}))


def test_evidence_keys_use_both_fields_when_the_title_names_one() -> None:
    evidence = [_ev("china", "title"), _ev("parade", "summary"), _ev("china", "summary")]
    assert evidence_keys(evidence) == (frozenset({"china", "parade"}), frozenset())


# ── sources ────────────────────────────────────────────────────────────────────────────────


def test_two_feeds_of_one_publisher_count_once() -> None:
    entries = [
        entry(1, "Xi hosts military parade with Putin and Kim", "Yonhap"),
        entry(2, "Xi, Putin and Kim watch parade from Tiananmen rostrum", "Yonhap", minutes=5),
        entry(3, "China's Xi oversees massive parade with Putin, Kim in attendance", "Al Jazeera", minutes=9),
    ]
    assert sources_of(entries) == Sources(
        publishers=("Yonhap", "Al Jazeera"), mastheads=("Yonhap", "Al Jazeera")
    )


def test_syndicated_wire_copy_counts_for_the_first_carrier() -> None:
    wire = "Kim promises to help Russia with 'everything' as Putin thanks North Korea for war aid"
    entries = [
        entry(1, wire, "Japan Today", minutes=40),
        entry(2, wire, "CNA"),
        entry(3, "Putin thanks Kim for North Koreans fighting in Ukraine", "BBC News", minutes=10),
        entry(4, wire, "Straits Times", minutes=50),
    ]
    sources = sources_of(entries)
    assert sources == Sources(
        publishers=("CNA", "BBC News"),
        mastheads=("CNA", "BBC News", "Japan Today", "Straits Times"),
        copies=(("Japan Today", "CNA"), ("Straits Times", "CNA")),
    )
    assert sources.count == 2


def test_a_publisher_with_its_own_report_is_not_listed_as_a_copy() -> None:
    wire = "North Korea wipes traces of Kim Jong Un after Beijing meeting with Putin"
    entries = [
        entry(1, wire, "CNA"),
        entry(2, wire, "Japan Today", minutes=5),
        entry(3, "Kim's visit erased from state media after talks with Putin", "Japan Today", minutes=9),
    ]
    assert sources_of(entries) == Sources(publishers=("CNA", "Japan Today"), mastheads=("CNA", "Japan Today"))


def test_primary_sources_are_named() -> None:
    entries = [
        entry(1, "Putin and Kim hold talks in Beijing", "Reuters"),
        entry(2, "Talks between Putin and Kim held in Beijing", "Kremlin", minutes=3, tier="primary"),
    ]
    assert sources_of(entries).primary == ("Kremlin",)


# ── the index ──────────────────────────────────────────────────────────────────────────────

OUTLETS = [
    ("Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade", "Guardian"),
    ("China's Xi hosts massive military parade with Putin, Kim to mark end of World War II", "Japan Today"),
    ("Xi hails 'great regeneration of China' with dramatic show of military might", "Sky News"),
    ("China's Xi oversees massive military parade with Putin, Kim in attendance", "Al Jazeera"),
    ("시진핑, 푸틴·김정은과 톈안먼 망루에", "Yonhap"),
    ("Си Цзиньпин, Путин и Ким Чен Ын на параде в Пекине", "TASS"),
]


def _assign(index: StoryIndex, scope: str, e: Entry, next_id: list[int]) -> tuple[int, str]:
    found = index.find(scope, e)
    if found is None:
        next_id[0] += 1
        index.add(scope, next_id[0], e)
        return next_id[0], "new"
    index.add(scope, found[0], e)
    return found


def test_many_outlets_in_many_languages_make_one_story() -> None:
    index = StoryIndex()
    ids = [0]
    placed = [
        _assign(index, "trio-together", entry(i, title, pub, minutes=7 * i, entities=TRIO), ids)
        for i, (title, pub) in enumerate(OUTLETS)
    ]
    # these headlines are reworded too freely for a title link: the shared entities carry them
    assert placed == [
        (1, "new"),
        (1, "entities"),
        (1, "entities"),
        (1, "entities"),
        (1, "entities"),
        (1, "entities"),
    ]
    story = index.get(1)
    assert story is not None
    assert story.title == OUTLETS[0][0]
    assert story.sources.publishers == tuple(pub for _, pub in OUTLETS)
    assert (story.first_seen, story.last_seen) == (T0, T0 + timedelta(minutes=35))


def test_each_scope_has_its_own_stories() -> None:
    index = StoryIndex()
    ids = [0]
    first = entry(1, OUTLETS[0][0], "Guardian", entities=TRIO)
    second = entry(2, OUTLETS[1][0], "Japan Today", minutes=5, entities=TRIO)
    assert _assign(index, "trio-together", first, ids) == (1, "new")
    assert _assign(index, "weapons-display", second, ids) == (2, "new")
    assert _assign(index, "trio-together", second, ids) == (1, "entities")


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        pytest.param(47, (1, "title"), id="47h-after-the-last-item-joins"),
        pytest.param(49, None, id="49h-after-the-last-item-opens-a-new-story"),
    ],
)
def test_title_links_reach_a_window_past_the_last_item(hours: float, expected: object) -> None:
    index = StoryIndex(window=48 * 3600)
    index.add("r", 1, entry(1, "Hot mic catches Putin and Xi discussing organ transplants", "CNA"))
    index.add("r", 1, entry(2, "Hot mic catches Putin and Xi discussing transplants", "Sky", minutes=600))
    late = entry(
        3, "Putin and Xi caught on hot mic discussing organ transplants", "NBC", minutes=600 + 60 * hours
    )
    assert index.find("r", late) == expected


def test_entity_links_reach_only_a_window_past_the_first_item() -> None:
    index = StoryIndex(window=48 * 3600)
    index.add("r", 1, entry(1, "Putin and Kim hold talks in Beijing", "Reuters", entities=KIM_PUTIN))
    index.add(
        "r",
        1,
        entry(2, "Putin and Kim hold more talks in Beijing", "AP", minutes=40 * 60, entities=KIM_PUTIN),
    )
    within = entry(3, "김정은, 베이징서 푸틴과 회담", "Yonhap", minutes=47 * 60, entities=KIM_PUTIN)
    beyond = entry(4, "Ким и Путин провели переговоры", "TASS", minutes=49 * 60, entities=KIM_PUTIN)
    assert index.find("r", within) == (1, "entities")
    assert index.find("r", beyond) is None


def test_adding_an_item_twice_keeps_one_copy() -> None:
    index = StoryIndex()
    e = entry(1, "Putin and Kim hold talks in Beijing", "Reuters")
    index.add("r", 1, e)
    index.add("r", 1, e)
    story = index.get(1)
    assert story is not None and story.entries == (e,)


def test_a_long_story_still_links_through_its_latest_items() -> None:
    index = StoryIndex(max_compare=4)
    for i in range(40):
        index.add("r", 1, entry(i, f"Item {i} about nothing in particular number {i}", f"P{i}", minutes=i))
    index.add(
        "r", 1, entry(99, "Hot mic catches Putin and Xi discussing organ transplants", "CNA", minutes=50)
    )
    late = entry(100, "Putin and Xi caught on hot mic discussing organ transplants", "NBC", minutes=55)
    assert index.find("r", late) == (1, "title")
