"""Grouping matched items that report one event into stories (pure, in memory).

Stories are kept per scope (the pipeline uses one scope per rule): an item that matched rule R joins
one of R's open stories, or opens a new one. An item joins a story when it falls within the story's
window (default 48 h: no earlier than ``window`` before its first item, no later than ``window`` after
its last) and it is, with one of the story's items:

- **copy**: the same text under another masthead (wire copy): normalized titles at least 90% alike
  with six words or more each, or summaries at least 90% alike with fifteen words or more;
- **title**: a reworded headline: token-sort similarity >= 75, or token-set similarity >= 88 with the
  shorter title at least half as long as the longer one (token-set alone scores 100 for any subset);
  in both cases at least half of the older title's rare words (names, numbers) appear in the newer
  one, which stops "same template, different subject" headlines (quake in Japan / quake in Chile);
- **entities** (with the story's first item only, within the window of that item): the same matched
  entities (Jaccard >= 0.75 over at least two shared ones), whatever the language: aliases map 김정은
  and Kim Jong-un to one entity, which no string similarity can. Anchoring this link on the first
  item stops a story from drifting through a chain of items that merely name the same people.
  ``evidence_keys`` takes the title's entities when it names two or more (the summary names context).

Publishers, not feeds, are counted: several feeds of one outlet carry one ``publisher``, and a wire
copy counts for the publisher that carried it first (``sources_of``). The index is a cache: the
pipeline rebuilds it from the database on start with ``add``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from rapidfuzz import fuzz, process

from watcher.models import Evidence
from watcher.textnorm import fold, normalize

Tier = Literal["primary", "secondary"]
Reason = Literal["copy", "title", "entities"]

DEFAULT_WINDOW = 48 * 3600.0
COPY_SCORE = 90.0
TITLE_SORT_SCORE = 75.0
TITLE_SET_SCORE = 88.0
ENTITY_JACCARD = 0.75

_STOP = frozenset(
    """a an the of in on at to for from by with and or but as is are was were be been will would can
    could may might has have had do does did not no its it this that these those after before over under
    about into amid against between during than then so up out off new says said say report reports
    what who why how when where all more most some any other our their his her they he she we you i
    de la le el et du des en und der die das""".split()  # noqa: SIM905 - a word list reads best as text
)
_DIGIT = re.compile(r"\d")
_RANK: dict[str, int] = {"copy": 0, "title": 1, "entities": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """What grouping needs of one matched item."""

    item_id: int
    title: str
    seen: datetime  # the item's time (published, or first seen); timezone-aware
    publisher: str
    tier: Tier = "secondary"
    summary: str = ""
    link: str = ""
    feed: str = ""
    entities: frozenset[str] = frozenset()  # entities the match evidence names
    terms: frozenset[str] = frozenset()  # other matched terms (kept for display and digests)


@dataclass(frozen=True, slots=True)
class _Text:
    """An entry's title and summary, tokenized once."""

    title: str
    tokens: tuple[str, ...]
    rare: frozenset[str]
    summary: str
    summary_words: int


def evidence_keys(evidence: Iterable[Evidence]) -> tuple[frozenset[str], frozenset[str]]:
    """(entities, terms) of a match, for ``Entry``. The entities named in the title describe the event
    better than those of the summary (which names the context: the city, the other countries), so
    the title's are used when it names two or more; otherwise the entities of both fields."""
    title: set[str] = set()
    every: set[str] = set()
    terms: set[str] = set()
    for e in evidence:
        if e.entity:
            every.add(e.entity)
            if e.field == "title":
                title.add(e.entity)
        else:
            terms.add(fold(e.term))
    return frozenset(title if len(title) >= 2 else every), frozenset(terms)


def _tokens(text: str) -> tuple[str, ...]:
    norm = normalize(text)
    return tuple(norm.text[s:e] for s, e in norm.token_spans())


def rare_words(title: str) -> frozenset[str]:
    """Words of a title that name its subject: numbers, and capitalized words that are not stopwords.

    In a sentence-case title only capitalized words after the first count; in a Title Case title
    (most words capitalized) every word that is not a stopword counts, so the check stays strict.
    """
    words = re.findall(r"[^\W_]+", title)
    if not words:
        return frozenset()
    caps = [w for w in words if w[0].isupper()]
    title_case = len(caps) >= 0.6 * len(words) and len(words) > 2
    out: set[str] = set()
    for i, word in enumerate(words):
        folded = normalize(word).text.strip()
        if not folded or folded in _STOP:
            continue
        if _DIGIT.search(word) or (word[0].isupper() and (title_case or i > 0)):
            out.add(folded)
    return frozenset(out)


def _text(entry: Entry) -> _Text:
    return _text_of(entry.title, entry.summary)


@functools.lru_cache(maxsize=16384)
def _text_of(title: str, summary: str) -> _Text:
    """Tokenized once per distinct text: a story's items are compared again with every new item."""
    tokens = _tokens(title)
    folded = " ".join(_tokens(summary)) if summary else ""
    return _Text(" ".join(tokens), tokens, rare_words(title), folded, folded.count(" ") + 1)


def _reappear(rare: frozenset[str], tokens: tuple[str, ...]) -> bool:
    """At least half of ``rare`` occur in ``tokens`` (a shared prefix of 4+ letters counts: China/Chinese)."""
    if not rare:
        return True
    present = set(tokens)
    found = 0
    for word in rare:
        if word in present or any(
            len(word) >= 4 and len(tok) >= 4 and (tok.startswith(word[:4]) and word.startswith(tok[:4]))
            for tok in tokens
        ):
            found += 1
    return 2 * found >= len(rare)


def is_copy(a: Entry, b: Entry, ta: _Text | None = None, tb: _Text | None = None) -> bool:
    """True when ``b`` carries the same text as ``a`` (wire copy under two mastheads)."""
    ta = ta or _text(a)
    tb = tb or _text(b)
    if (
        len(ta.tokens) >= 6
        and len(tb.tokens) >= 6
        and fuzz.ratio(ta.title, tb.title, score_cutoff=COPY_SCORE) > 0
    ):
        return True
    return (
        ta.summary_words >= 15
        and tb.summary_words >= 15
        and fuzz.ratio(ta.summary, tb.summary, score_cutoff=COPY_SCORE) > 0
    )


def similar_titles(older: _Text, newer: _Text) -> bool:
    """Reworded headlines of one event (see the module docstring for the thresholds)."""
    if not older.tokens or not newer.tokens:
        return False
    if not _reappear(older.rare, newer.tokens):
        return False
    if fuzz.token_sort_ratio(older.title, newer.title, score_cutoff=TITLE_SORT_SCORE):
        return True
    short, long_ = sorted((len(older.tokens), len(newer.tokens)))
    return 2 * short >= long_ and bool(
        fuzz.token_set_ratio(older.title, newer.title, score_cutoff=TITLE_SET_SCORE)
    )


def same_entities(a: frozenset[str], b: frozenset[str]) -> bool:
    shared = len(a & b)
    return shared >= 2 and shared >= ENTITY_JACCARD * len(a | b)


def same_story(a: Entry, b: Entry) -> Reason | None:
    """Why two entries report one event, or None (time windows are the index's business)."""
    return _same(a, _text(a), b, _text(b))


def _same(a: Entry, ta: _Text, b: Entry, tb: _Text, *, entities: bool = True) -> Reason | None:
    if a.publisher != b.publisher and is_copy(a, b, ta, tb):
        return "copy"
    older, newer = (ta, tb) if a.seen <= b.seen else (tb, ta)
    if similar_titles(older, newer):
        return "title"
    if entities and same_entities(a.entities, b.entities):
        return "entities"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sources:
    """Who reported a story. ``publishers`` are independent voices, first reporter first."""

    publishers: tuple[str, ...]
    mastheads: tuple[str, ...]  # every publisher that carried it, wire copies included
    copies: tuple[tuple[str, str], ...] = ()  # (publisher, the publisher whose copy it carried)
    primary: tuple[str, ...] = ()  # primary-tier publishers among the mastheads

    @property
    def count(self) -> int:
        return len(self.publishers)


def sources_of(entries: Iterable[Entry]) -> Sources:
    """Distinct publishers of ``entries``; a wire copy counts for whoever carried the text first."""
    ordered = sorted(entries, key=lambda e: (e.seen, e.item_id))
    voices: list[str] = []
    copies: dict[str, str] = {}
    titles: list[str] = []  # earlier long titles, and the index of their entry
    title_at: list[int] = []
    summaries: list[str] = []
    summary_at: list[int] = []
    for i, entry in enumerate(ordered):
        text = _text(entry)
        earlier: list[int] = []
        if len(text.tokens) >= 6:
            found = process.extract(
                text.title, titles, scorer=fuzz.ratio, score_cutoff=COPY_SCORE, limit=None
            )
            earlier += [title_at[k] for _, _, k in found]
            titles.append(text.title)
            title_at.append(i)
        if text.summary_words >= 15:
            found = process.extract(
                text.summary, summaries, scorer=fuzz.ratio, score_cutoff=COPY_SCORE, limit=None
            )
            earlier += [summary_at[k] for _, _, k in found]
            summaries.append(text.summary)
            summary_at.append(i)
        others = sorted(j for j in earlier if ordered[j].publisher != entry.publisher)
        voice = voices[others[0]] if others else entry.publisher
        voices.append(voice)
        if voice != entry.publisher:
            copies.setdefault(entry.publisher, voice)
    own = {v for v, e in zip(voices, ordered, strict=True) if v == e.publisher}
    return Sources(
        publishers=tuple(dict.fromkeys(voices)),
        mastheads=tuple(dict.fromkeys(e.publisher for e in ordered)),
        copies=tuple((p, v) for p, v in copies.items() if p not in own),
        primary=tuple(dict.fromkeys(e.publisher for e in ordered if e.tier == "primary")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    """A snapshot of one story: its entries (oldest first) and who reported it."""

    id: int
    scope: str
    title: str
    first_seen: datetime
    last_seen: datetime
    entries: tuple[Entry, ...]
    sources: Sources


@dataclass(slots=True)
class _Open:
    id: int
    scope: str
    window: float
    entries: list[Entry] = field(default_factory=list)
    texts: list[_Text] = field(default_factory=list)
    item_ids: set[int] = field(default_factory=set)

    @property
    def first_seen(self) -> datetime:
        return min(e.seen for e in self.entries)

    @property
    def last_seen(self) -> datetime:
        return max(e.seen for e in self.entries)

    def snapshot(self) -> Story:
        ordered = tuple(sorted(self.entries, key=lambda e: (e.seen, e.item_id)))
        return Story(
            id=self.id,
            scope=self.scope,
            title=ordered[0].title,
            first_seen=ordered[0].seen,
            last_seen=ordered[-1].seen,
            entries=ordered,
            sources=sources_of(ordered),
        )


class StoryIndex:
    """Open stories per scope, with a word and entity index to find candidates quickly.

    ``find`` compares an entry with at most ``max_compare`` items of each candidate story (its first
    items and its latest ones), so a story of hundreds of items costs what one of thirty does.
    """

    def __init__(self, *, window: float = DEFAULT_WINDOW, max_compare: int = 30) -> None:
        self.window = window
        self.max_compare = max_compare
        self._stories: dict[int, _Open] = {}
        self._by_key: dict[tuple[str, str], set[int]] = {}

    def __len__(self) -> int:
        return len(self._stories)

    def __contains__(self, story_id: object) -> bool:
        return story_id in self._stories

    def find(self, scope: str, entry: Entry) -> tuple[int, Reason] | None:
        """The open story of ``scope`` this entry belongs to, and why; None when it opens a new one."""
        text = _text(entry)
        best: tuple[int, Reason] | None = None
        for sid in sorted(self._candidates(scope, entry, text)):
            reason = self._compare(self._stories[sid], entry, text)
            if reason is not None and (best is None or _RANK[reason] < _RANK[best[1]]):
                best = (sid, reason)
                if reason == "copy":
                    break
        return best

    def _compare(self, story: _Open, entry: Entry, text: _Text) -> Reason | None:
        span = timedelta(seconds=story.window)
        if not story.first_seen - span <= entry.seen <= story.last_seen + span:
            return None
        n = len(story.entries)
        half = self.max_compare // 2
        picks = range(n) if n <= self.max_compare else [*range(half), *range(n - half, n)]
        found: Reason | None = None
        for i in picks:
            reason = _same(story.entries[i], story.texts[i], entry, text, entities=False)
            if reason is not None and (found is None or _RANK[reason] < _RANK[found]):
                found = reason
                if reason == "copy":
                    return found
        if found is None:
            anchor = story.entries[0]
            if abs(entry.seen - anchor.seen) <= span and same_entities(anchor.entities, entry.entities):
                found = "entities"
        return found

    def add(self, scope: str, story_id: int, entry: Entry, *, window: float | None = None) -> None:
        """Put ``entry`` into story ``story_id`` (opening it in ``scope`` if new); ``get`` reads it back."""
        story = self._stories.get(story_id)
        if story is None:
            story = _Open(story_id, scope, self.window if window is None else window)
            self._stories[story_id] = story
        elif entry.item_id in story.item_ids:
            return
        text = _text(entry)
        story.entries.append(entry)
        story.texts.append(text)
        story.item_ids.add(entry.item_id)
        for key in self._keys(scope, entry, text):
            self._by_key.setdefault(key, set()).add(story_id)

    def get(self, story_id: int) -> Story | None:
        story = self._stories.get(story_id)
        return story.snapshot() if story is not None else None

    def _keys(self, scope: str, entry: Entry, text: _Text) -> set[tuple[str, str]]:
        keys = {(scope, "w:" + t) for t in text.tokens if t not in _STOP and len(t) > 1}
        keys.update((scope, "e:" + e) for e in entry.entities)
        return keys

    def _candidates(self, scope: str, entry: Entry, text: _Text) -> set[int]:
        out: set[int] = set()
        for key in self._keys(scope, entry, text):
            out.update(self._by_key.get(key, ()))
        return out
