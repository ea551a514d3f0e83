"""Text normalization: what a human expects to compare equal, and offsets back into the original."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.textnorm import (
    CYRILLIC_SUFFIXES,
    HANGUL_SUFFIXES,
    LATIN_SUFFIXES,
    char_script,
    dominant_script,
    fold,
    guess_language,
    normalize,
    right_boundary_end,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kim Jong-un", "kim jong un"),
        ("Kim Jong‐Un", "kim jong un"),  # U+2010 hyphen
        ("Xi–Putin talks", "xi putin talks"),  # en dash
        ("Putin’s visit", "putin's visit"),  # curly apostrophe
        ("Ｋｉｍ　Ｊｏｎｇ－ｕｎ", "kim jong un"),  # full-width letters, ideographic space
        ("Straße", "strasse"),
        ("Café  Zürich", "cafe zurich"),  # diacritics, doubled space
        ("e\u0301cole", "ecole"),  # decomposed accent
        ("ДОНАЛЬД Трамп", "дональд трамп"),
        ("김정은은", "김정은은"),  # Hangul syllables are kept whole
        ("プーチン大統領", "プーチン大統領"),  # the katakana long-vowel mark is not a hyphen
        ("zero\u200bwidth", "zerowidth"),
    ],
)
def test_normalize_folds_what_a_reader_treats_as_equal(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    ("text", "needle", "original"),
    [
        ("Die Straße von Kim Jong-un", "kim jong un", "Kim Jong-un"),
        ("Café  Zürich talks", "zurich", "Zürich"),
        ("an e\u0301cole visit", "ecole", "e\u0301cole"),
        ("ＫＩＭ meets Putin", "putin", "Putin"),
        ("Kim\u200b Jong Un", "jong un", "Jong Un"),
    ],
)
def test_span_points_back_into_the_original_text(text: str, needle: str, original: str) -> None:
    nt = normalize(text)
    start = nt.text.index(needle)
    ostart, oend = nt.span(start, start + len(needle))
    assert text[ostart:oend] == original


@pytest.mark.parametrize(
    ("text", "end", "suffixes", "expected"),
    [
        ("putins visit", 5, LATIN_SUFFIXES, 6),  # plural s
        ("putin's visit", 5, LATIN_SUFFIXES, 5),  # the apostrophe is a boundary
        ("putinist rally", 5, LATIN_SUFFIXES, -1),
        ("путиным", 5, CYRILLIC_SUFFIXES, 7),
        ("путинизм", 5, CYRILLIC_SUFFIXES, -1),
        ("김정은은 말했다", 3, HANGUL_SUFFIXES, 4),
        ("김정은에게는", 3, HANGUL_SUFFIXES, 6),  # two particles
        ("김정은호", 3, HANGUL_SUFFIXES, -1),
    ],
)
def test_right_boundary_allows_the_suffixes_of_the_script(
    text: str, end: int, suffixes: tuple[str, ...], expected: int
) -> None:
    assert right_boundary_end(text, end, suffixes) == expected


def test_scripts_and_language_guesses() -> None:
    assert [char_script(c) for c in "aЯ김習のé"] == ["latin", "cyrillic", "hangul", "cjk", "cjk", "latin"]
    assert dominant_script("Путин и Си") == "cyrillic"
    assert [
        guess_language(t) for t in ("김정은 위원장", "プーチン大統領", "习近平主席", "Путин", "Putin")
    ] == [
        "ko",
        "ja",
        "zh",
        "ru",
        None,
    ]


def test_fold_trims_and_normalizes_a_phrase() -> None:
    assert fold("  Kim Jong-Un ") == "kim jong un"


@given(st.text(max_size=300))
def test_any_text_normalizes_without_error_and_maps_back_in_bounds(text: str) -> None:
    nt = normalize(text)
    ostart, oend = nt.span(0, len(nt.text))
    assert 0 <= ostart <= oend <= len(text)
    for i in range(len(nt.text)):
        a, b = nt.span(i, i + 1)
        assert 0 <= a < b <= len(text)


@given(st.text(max_size=300))
def test_normalizing_twice_changes_nothing_more(text: str) -> None:
    once = normalize(text).text
    assert normalize(once).text == once
