"""Fuzzy alias matching, confined to candidates.

An alias that may match approximately (an entity with ``fuzzy:``, or a ``{fuzzy: ...}`` term) puts
*anchors* into the automaton: each of its words (multi-word aliases) and the first and last
``ANCHOR_CHARS`` letters of its long words, which a single misspelling leaves intact. Only where an
anchor occurs, and the exact alias was not found in that field, are the few words around it compared
with the alias (rapidfuzz ``ratio`` over the words joined without spaces, one C call for all the aliases
sharing an anchor). Text never gets compared against every alias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz import fuzz, process

from watcher.conditions import Hit
from watcher.textnorm import NormText, is_word_char, left_boundary_ok

AnchorMode = Literal["word", "prefix", "suffix"]
MIN_FUZZY_CHARS = 5  # shorter aliases never match fuzzily: too many words look like them
ANCHOR_CHARS = 5  # a misspelled word of 7+ letters keeps its first or last 5 letters (one edit)


@dataclass(slots=True, eq=False)
class FuzzyTarget:
    """One alias or phrase that may match approximately."""

    term: int
    squashed: str  # normalized, without spaces
    ntokens: int
    threshold: float

    def accepts(self, candidate: str) -> bool:
        """Lengths close enough for a misspelling (not a missing or extra word)."""
        return abs(len(candidate) - len(self.squashed)) <= max(1, len(self.squashed) // 8)


@dataclass(slots=True, eq=False)
class AnchorGroup:
    """Aliases that share one anchor, in the same role (mode, word count, anchor word position)."""

    mode: AnchorMode
    ntokens: int
    position: int
    targets: list[FuzzyTarget] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    terms: set[int] = field(default_factory=set)
    cutoff: float = 100.0

    def add(self, target: FuzzyTarget) -> None:
        self.targets.append(target)
        self.terms.add(target.term)
        self.choices.append(target.squashed)
        self.cutoff = min(self.cutoff, target.threshold)


Anchored = list[tuple[tuple[AnchorGroup, ...], int, int]]  # (groups, start, stop) of each anchor seen


def fuzzy_hits(name: str, nt: NormText, anchored: Anchored, hits: dict[int, list[Hit]]) -> None:
    """Add fuzzy hits (with their score) for the anchors seen in one field."""
    exact = {term for term, found in hits.items() if any(h[0] == name for h in found)}
    if all(group.terms <= exact for groups, _, _ in anchored for group in groups):
        return  # every alias anchored here was found exactly
    tokens = nt.token_spans()
    text = nt.text
    windows: dict[tuple[int, int], str] = {}
    best: dict[int, tuple[float, int, int]] = {}  # term -> (score, start, end)
    tried: set[tuple[int, int]] = set()
    for groups, start, stop in anchored:
        starts_word = left_boundary_ok(text, start)
        ends_word = stop >= len(text) or not is_word_char(text[stop])
        at = nt.token_index(start)
        if at >= len(tokens):
            continue
        for group in groups:
            if (group.mode != "suffix" and not starts_word) or (group.mode != "prefix" and not ends_word):
                continue
            if (id(group), at) in tried or group.terms <= exact:
                continue
            tried.add((id(group), at))
            width = group.ntokens
            for first in range(at - group.position - 1, at - group.position + 2):
                for size in (width - 1, width, width + 1):
                    a, b = max(first, 0), min(first + size, len(tokens))
                    if b <= a or not a <= at < b:
                        continue
                    candidate = windows.get((a, b))
                    if candidate is None:
                        candidate = windows[(a, b)] = "".join(text[s:e] for s, e in tokens[a:b])
                    found = process.extract(
                        candidate, group.choices, scorer=fuzz.ratio, score_cutoff=group.cutoff, limit=None
                    )
                    for _choice, score, index in found:
                        target = group.targets[index]
                        if score < target.threshold or not target.accepts(candidate):
                            continue
                        if target.term in exact:
                            continue  # the exact alias is there: no need to guess
                        known = best.get(target.term)
                        if known is None or score > known[0]:
                            best[target.term] = (float(score), tokens[a][0], tokens[b - 1][1])
    for term, (score, s, e) in best.items():
        hits.setdefault(term, []).append((name, s, e, score))
