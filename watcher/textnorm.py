"""Text normalization for matching, with a map back to the original offsets.

``normalize(text)`` applies NFKC, case folding, strips Latin/Cyrillic diacritics (U+0300–U+036F), turns
every hyphen and dash into a space, straightens apostrophes, drops zero-width characters and folds runs of
white space into one space. ``NormText.span`` maps a span of the normalized text back to the original, so
evidence always points into the text the user saw.

Scripts decide how a phrase matches: Chinese and Japanese phrases match anywhere (no spaces between
words); Latin, Cyrillic, Hangul and other phrases match on word boundaries, allowing the suffixes a human
expects: English plural ``s``/``es`` (``'s`` needs nothing: the apostrophe is a boundary), Russian case
endings (Путина, Путиным) and Korean particles (김정은은, 김정은이, 김정은의).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from typing import Literal

Script = Literal["latin", "cyrillic", "hangul", "cjk", "other"]

_HYPHENS = "-\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_APOSTROPHES = "\u2019\u2018\u02bc\u2032\u00b4`\uff07\u201b"
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"

LATIN_SUFFIXES: tuple[str, ...] = ("s", "es")
CYRILLIC_SUFFIXES: tuple[str, ...] = (
    "а", "я", "у", "ю", "ом", "ем", "ём", "ым", "им", "е", "ы", "и", "ой", "ей", "ою", "ею",
    "ах", "ях", "ам", "ям", "ами", "ями", "ов", "ев", "ёв",
)  # fmt: skip
HANGUL_SUFFIXES: tuple[str, ...] = (
    "은", "는", "이", "가", "을", "를", "의", "에", "에게", "에서", "에게서", "와", "과", "도", "만",
    "로", "으로", "께", "께서", "과의", "와의", "이나", "나", "랑", "이랑", "보다", "처럼", "까지",
    "부터", "측", "씨", "이다", "였다", "이었다", "라고", "이라고", "에도", "에는", "한테", "로서",
    "으로서", "로부터", "으로부터", "조차", "마저", "이며", "며", "과는", "와는",
)  # fmt: skip
# Cyrillic words ending in these letters decline by replacing them (Корея -> Кореи, Москва -> Москвы)
CYRILLIC_STEM_ENDINGS = "аяьйо"


def char_script(ch: str) -> Script:
    """The script class of one character, as matching cares about it."""
    cp = ord(ch)
    if cp < 0x250 or 0x1E00 <= cp <= 0x1EFF:
        return "latin"
    if 0x400 <= cp <= 0x52F or 0x1C80 <= cp <= 0x1C8F or 0x2DE0 <= cp <= 0x2DFF or 0xA640 <= cp <= 0xA69F:
        return "cyrillic"
    if 0xAC00 <= cp <= 0xD7FF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F or 0xA960 <= cp <= 0xA97F:
        return "hangul"
    if (
        0x3040 <= cp <= 0x30FF
        or 0x31F0 <= cp <= 0x31FF
        or 0x3400 <= cp <= 0x4DBF
        or 0x4E00 <= cp <= 0x9FFF
        or 0xF900 <= cp <= 0xFAFF
        or 0xFF66 <= cp <= 0xFF9F
        or 0x20000 <= cp <= 0x2FFFF
    ):
        return "cjk"
    return "other"


_WORD_CACHE: dict[str, bool] = {}


def is_word_char(ch: str) -> bool:
    """True for a letter or digit of a script that separates words (anything but Chinese/Japanese)."""
    known = _WORD_CACHE.get(ch)
    if known is None:
        known = ch.isalnum() and char_script(ch) != "cjk"
        _WORD_CACHE[ch] = known
    return known


def _fold_char(ch: str) -> str:
    if ch in _HYPHENS or ch.isspace():
        return " "
    if ch in _APOSTROPHES:
        return "'"
    if ch in _ZERO_WIDTH:
        return ""
    folded = unicodedata.normalize("NFKC", ch).casefold()
    decomposed = unicodedata.normalize("NFD", folded)
    if any(0x300 <= ord(c) <= 0x36F for c in decomposed):
        folded = unicodedata.normalize("NFC", "".join(c for c in decomposed if not 0x300 <= ord(c) <= 0x36F))
    if folded != ch and any(c in _HYPHENS or c in _APOSTROPHES or c.isspace() for c in folded):
        folded = "".join(_fold_char(c) if c != ch else c.lower() for c in folded)
    return folded


class _FoldTable(dict[int, str]):
    """``str.translate`` table filled on first sight of each character."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        folded = _fold_char(ch)
        self[cp] = folded
        if len(folded) != 1:
            _UNEVEN.add(ch)
        return folded


_UNEVEN: set[str] = set()  # characters whose folding is not one character for one
_TABLE = _FoldTable()
for _cp in range(128):
    _TABLE[_cp]  # fills the ASCII part of the table up front


class NormText:
    """A normalized text and the way back to its original.

    The map back (``src[i]``: original index of ``text[i]``) is built only when a span is asked for, and
    only for texts whose folding changed lengths; matching itself never needs it.
    """

    __slots__ = ("_src", "_starts", "_tokens", "original", "text")

    def __init__(self, original: str, text: str) -> None:
        self.original = original
        self.text = text
        # ASCII folds one character for one, so equal lengths mean equal offsets; else build the map on demand
        same = len(text) == len(original) and original.isascii()
        self._src: tuple[int, ...] | bool | None = None if same else False
        self._tokens: list[tuple[int, int]] | None = None
        self._starts: list[int] | None = None

    @property
    def src(self) -> tuple[int, ...] | None:
        """Original index of each normalized character, or None when they are the same."""
        if self._src is False:
            self._src = _source_map(self.original, self.text)
        assert not isinstance(self._src, bool)
        return self._src

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original (start, end) of the normalized span ``text[start:end]``."""
        src = self.src
        if src is None:
            return start, end
        if start >= end:
            pos = src[start] if start < len(src) else len(self.original)
            return pos, pos
        ostart = src[start]
        oend = src[end - 1] + 1
        # swallow what folded to nothing right after the span (combining marks, zero-width characters)
        while oend < len(self.original) and _TABLE[ord(self.original[oend])] == "":
            oend += 1
        return ostart, oend

    def token_spans(self) -> list[tuple[int, int]]:
        """Every word (or CJK character) of the normalized text as (start, end); computed once."""
        if self._tokens is None:
            self._tokens = [m.span() for m in _TOKEN.finditer(self.text)]
            self._starts = [a for a, _ in self._tokens]
        return self._tokens

    def token_index(self, pos: int) -> int:
        """Index of the word (or CJK character) at, or last begun before, normalized offset ``pos``."""
        if self._starts is None:
            self.token_spans()
        assert self._starts is not None
        return max(bisect.bisect_right(self._starts, pos) - 1, 0)


def _source_map(original: str, text: str) -> tuple[int, ...] | None:
    if len(text) == len(original) and _UNEVEN.isdisjoint(original):
        return None  # every character folded to exactly one, and no spaces were folded together
    src: list[int] = []
    last_space = False
    for i, ch in enumerate(original):
        for c in _TABLE[ord(ch)]:
            if c == " ":
                if last_space:
                    continue
                last_space = True
            else:
                last_space = False
            src.append(i)
    if len(src) == len(original) and len(src) == len(text) and src == list(range(len(src))):
        return None
    return tuple(src)


_CJK_CLASS = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WORD_PART = f"(?:(?![{_CJK_CLASS}])[^\\W_])+"
_TOKEN = re.compile(f"[{_CJK_CLASS}]|{_WORD_PART}(?:'{_WORD_PART})*")  # "putin's" is one word
_SPACES = re.compile(r"  +")


def normalize(text: str) -> NormText:
    """Normalize ``text`` for matching (the map back to original offsets is built on demand)."""
    if text.isascii() and text.isprintable():  # the common case, at C speed: no tabs or newlines here
        folded = text.lower()
        if "-" in folded:
            folded = folded.replace("-", " ")
        if "`" in folded:
            folded = folded.replace("`", "'")
    else:
        folded = text.translate(_TABLE)
    if "  " in folded:
        folded = _SPACES.sub(" ", folded)
    return NormText(text, folded)


def fold(phrase: str) -> str:
    """A phrase as the matcher compares it: normalized, trimmed."""
    return normalize(phrase).text.strip()


def suffixes_for(script: Script) -> tuple[str, ...]:
    """Suffixes a phrase ending in this script may carry and still match."""
    if script == "latin":
        return LATIN_SUFFIXES
    if script == "cyrillic":
        return CYRILLIC_SUFFIXES
    if script == "hangul":
        return HANGUL_SUFFIXES
    return ()


def left_boundary_ok(text: str, start: int) -> bool:
    """True when ``text[start]`` begins a word (nothing word-like glued before it)."""
    return start == 0 or not is_word_char(text[start - 1])


def right_boundary_end(text: str, end: int, suffixes: tuple[str, ...], *, rounds: int = 2) -> int:
    """Where the word ending at ``end`` really ends, allowing up to ``rounds`` suffixes; -1 if it goes on."""
    n = len(text)
    if end >= n or not is_word_char(text[end]):
        return end
    if rounds > 0:
        for suffix in suffixes:
            if text.startswith(suffix, end):
                found = right_boundary_end(text, end + len(suffix), suffixes, rounds=rounds - 1)
                if found >= 0:
                    return found
    return -1


def dominant_script(text: str) -> Script:
    """The script most letters of ``text`` are written in (looks at the first 400 characters)."""
    counts: dict[Script, int] = {}
    for ch in text[:400]:
        if ch.isalpha():
            s = char_script(ch)
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return "other"
    return max(counts, key=lambda s: counts[s])


def guess_language(text: str) -> str | None:
    """A language code guessed from the script (ko, ja, zh, ru), or None for Latin and others."""
    script = dominant_script(text)
    if script == "hangul":
        return "ko"
    if script == "cyrillic":
        return "ru"
    if script == "cjk":
        return "ja" if any(0x3040 <= ord(c) <= 0x30FF for c in text[:400]) else "zh"
    return None
