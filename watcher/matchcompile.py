"""Compiling a watch list: terms, automaton keys, fuzzy anchors and rule triggers.

Every distinct term gets an id: a phrase (by its normalized text), an entity or group (by name), a fuzzy
phrase (text and score) or a regex. Every normalized alias or phrase becomes one automaton key that
lists the terms it counts for. A rule is evaluated only when one term of its *trigger set* was seen:
a set of terms of which at least one must be present for the rule to hold, picked as the least shared
one across rules. Rules that can hold without any automaton hit (a regex alone) run for every item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
import regex

from watcher.conditions import AllNode, AnyNode, AtLeastNode, NearNode, Node, NoneNode, TermNode
from watcher.fuzzy import ANCHOR_CHARS, MIN_FUZZY_CHARS, AnchorGroup, AnchorMode, FuzzyTarget
from watcher.ruleload import compile_regex
from watcher.rules import (
    AllOf,
    AnyOf,
    AtLeast,
    Condition,
    EntityTerm,
    FuzzyTerm,
    Near,
    NoneOf,
    RegexTerm,
    Rule,
    Watchlist,
)
from watcher.textnorm import CYRILLIC_STEM_ENDINGS, char_script, fold, is_word_char, suffixes_for


@dataclass(slots=True, eq=False)
class Key:
    """One automaton key (a normalized phrase) and what an occurrence of it counts for."""

    text: str
    length: int
    left: bool  # needs a word boundary before it
    right: bool  # needs a word boundary (or an allowed suffix) after it
    suffixes: tuple[str, ...]
    plain: tuple[int, ...] = ()  # terms it counts for, no questions asked
    special: tuple[tuple[int, bool, bool], ...] = ()  # (term, must be upper case, stem needing an ending)
    anchors: tuple[AnchorGroup, ...] = ()  # fuzzy aliases this key is an anchor of
    masks: tuple[int, ...] = ()  # terms whose alias hits inside this key's occurrence do not count
    exact: bool = False


@dataclass(slots=True)
class Compiled:
    rules: list[Rule]
    roots: list[Node]
    automaton: Any
    triggers: dict[int, tuple[int, ...]]  # term id -> indexes of rules it triggers
    always: tuple[int, ...]  # rules evaluated for every item
    regexes: dict[int, regex.Pattern[str]]
    term_count: int = 0
    keys: dict[str, Key] = field(default_factory=dict)


def is_acronym(alias: str) -> bool:
    """Short all-capital aliases (US, UN, ROK) match only where the text writes them in capitals."""
    return alias.isascii() and alias.isalpha() and alias.isupper() and len(alias) <= 5


class _Builder:
    def __init__(self, wl: Watchlist) -> None:
        self.wl = wl
        self.terms: dict[tuple[Any, ...], int] = {}
        self.uses: dict[str, dict[str, Any]] = {}
        self.regexes: dict[int, regex.Pattern[str]] = {}
        self.popularity: dict[int, int] = {}

    def _key(self, text: str) -> dict[str, Any]:
        slot = self.uses.get(text)
        if slot is None:
            slot = self.uses[text] = {"plain": [], "special": [], "anchors": {}, "masks": []}
        return slot

    def _term(self, ident: tuple[Any, ...]) -> tuple[int, bool]:
        if ident in self.terms:
            return self.terms[ident], False
        self.terms[ident] = len(self.terms)
        return self.terms[ident], True

    def _alias(self, term: int, alias: str) -> None:
        text = fold(alias).replace("\x00", "")  # NUL separates the fields in the automaton's pass
        if not text:
            return
        if is_acronym(alias.strip()):
            self._key(text)["special"].append((term, True, False))
        else:
            self._key(text)["plain"].append(term)
        last = text.split(" ")[-1]
        if char_script(text[-1]) == "cyrillic" and text[-1] in CYRILLIC_STEM_ENDINGS and len(last) >= 4:
            self._key(text[:-1])["special"].append((term, False, True))

    def _fuzzy(self, term: int, alias: str, threshold: float) -> None:
        text = fold(alias).replace("\x00", "")
        squashed = text.replace(" ", "")
        if len(squashed) < MIN_FUZZY_CHARS or any(char_script(c) in ("cjk", "hangul") for c in squashed):
            return
        tokens = text.split(" ")
        target = FuzzyTarget(term, squashed, len(tokens), threshold)
        for j, tok in enumerate(tokens):
            if len(tokens) > 1 and len(tok) >= 3:
                self._anchor(tok, "word", target, j)
            if len(tok) >= ANCHOR_CHARS + 2:
                self._anchor(tok[:ANCHOR_CHARS], "prefix", target, j)
                self._anchor(tok[-ANCHOR_CHARS:], "suffix", target, j)

    def _anchor(self, text: str, mode: AnchorMode, target: FuzzyTarget, position: int) -> None:
        groups: dict[tuple[str, int, int], AnchorGroup] = self._key(text)["anchors"]
        slot = (mode, target.ntokens, position)
        if slot not in groups:
            groups[slot] = AnchorGroup(mode, target.ntokens, position)
        groups[slot].add(target)

    def phrase(self, text: str) -> int:
        term, new = self._term(("phrase", fold(text)))
        if new:
            self._alias(term, text)
        return term

    def entity(self, name: str) -> int:
        term, new = self._term(("entity", name))
        if new:
            for member in self.wl.members(name):
                entity = self.wl.entities[member]
                for alias in entity.aliases:
                    self._alias(term, alias)
                    if entity.fuzzy is not None:
                        self._fuzzy(term, alias, entity.fuzzy)
                for phrase in entity.exclude:
                    if fold(phrase).replace("\x00", ""):
                        self._key(fold(phrase).replace("\x00", ""))["masks"].append(term)
        return term

    def fuzzy(self, text: str, score: float) -> int:
        term, new = self._term(("fuzzy", fold(text), score))
        if new:
            self._alias(term, text)
            self._fuzzy(term, text, score)
        return term

    def regex(self, pattern: str) -> int:
        term, new = self._term(("regex", pattern))
        if new:
            self.regexes[term] = compile_regex(pattern)
        return term

    def leaf(self, cond: Any) -> TermNode:
        if isinstance(cond, str):
            node = TermNode(self.phrase(cond), "phrase", cond)
        elif isinstance(cond, EntityTerm):
            node = TermNode(self.entity(cond.entity), "entity", cond.entity, entity=cond.entity)
        elif isinstance(cond, FuzzyTerm):
            node = TermNode(self.fuzzy(cond.fuzzy, cond.score), "fuzzy", cond.fuzzy)
        elif isinstance(cond, RegexTerm):
            node = TermNode(self.regex(cond.regex), "regex", cond.regex)
        else:
            raise TypeError(f"not a term: {cond!r}")
        self.popularity[node.term] = self.popularity.get(node.term, 0) + 1
        return node

    def node(self, cond: Condition) -> Node:
        if isinstance(cond, list):
            return AnyNode([self.node(c) for c in cond])
        if isinstance(cond, AllOf):
            return AllNode([self.node(c) for c in cond.all_])
        if isinstance(cond, AnyOf):
            return AnyNode([self.node(c) for c in cond.any_])
        if isinstance(cond, NoneOf):
            return NoneNode([self.node(c) for c in cond.none])
        if isinstance(cond, AtLeast):
            return AtLeastNode(cond.at_least.n, [self.node(c) for c in cond.at_least.of])
        if isinstance(cond, Near):
            slots = [
                [self.leaf(x) for x in t] if isinstance(t, list) else [self.leaf(t)] for t in cond.near.terms
            ]
            return NearNode(slots, cond.near.within)
        return self.leaf(cond)

    def automaton(self) -> tuple[Any, dict[str, Key]]:
        auto = ahocorasick.Automaton()
        keys: dict[str, Key] = {}
        for text, slot in self.uses.items():
            key = Key(
                text=text,
                length=len(text),
                left=is_word_char(text[0]),
                right=is_word_char(text[-1]),
                suffixes=suffixes_for(char_script(text[-1])),
                plain=tuple(dict.fromkeys(slot["plain"])),
                special=tuple(dict.fromkeys(slot["special"])),
                anchors=tuple(slot["anchors"].values()),
                masks=tuple(dict.fromkeys(slot["masks"])),
            )
            key.exact = bool(key.plain or key.special or key.masks)
            keys[text] = key
            auto.add_word(text, key)
        if not keys:
            return None, keys  # a watch list of regexes only: nothing for the automaton to find
        auto.make_automaton()
        return auto, keys


def required(node: Node, popularity: dict[int, int]) -> list[frozenset[int]]:
    """Sets of term ids of which at least one must be present for ``node`` to hold (empty: none)."""
    if isinstance(node, TermNode):
        return [] if node.kind == "regex" else [frozenset([node.term])]
    if isinstance(node, AllNode):
        return [s for c in node.children for s in required(c, popularity)]
    if isinstance(node, NearNode):
        return [
            frozenset(t.term for t in slot) for slot in node.slots if all(t.kind != "regex" for t in slot)
        ]
    if isinstance(node, AnyNode | AtLeastNode):
        # n of k children must hold, so one of any k - n + 1 of them does: take the least common ones
        parts = [required(c, popularity) for c in node.children]
        if any(not p for p in parts):
            constrained = [p for p in parts if p]
            free = len(parts) - len(constrained)
        else:
            constrained, free = parts, 0
        need = node.n if isinstance(node, AtLeastNode) else 1
        if free >= need:
            return []
        best = sorted((_pick(p, popularity) for p in constrained), key=lambda s: _cost(s, popularity))
        return [frozenset().union(*best[: len(constrained) - (need - free) + 1])]
    return []


def _cost(terms: frozenset[int], popularity: dict[int, int]) -> tuple[int, int]:
    return sum(popularity.get(t, 0) for t in terms), len(terms)


def _pick(sets: Iterable[frozenset[int]], popularity: dict[int, int]) -> frozenset[int]:
    return min(sets, key=lambda s: _cost(s, popularity))


def compile_rules(wl: Watchlist) -> Compiled:
    """Compile the enabled rules of ``wl``."""
    b = _Builder(wl)
    rules = [r for r in wl.rules if r.enabled]
    roots = [b.node(r.condition()) for r in rules]
    triggers: dict[int, list[int]] = {}
    always: list[int] = []
    for index, root in enumerate(roots):
        sets = required(root, b.popularity)
        if not sets:
            always.append(index)
            continue
        for term in _pick(sets, b.popularity):
            triggers.setdefault(term, []).append(index)
    auto, keys = b.automaton()
    return Compiled(
        rules=rules,
        roots=roots,
        automaton=auto,
        triggers={t: tuple(v) for t, v in triggers.items()},
        always=tuple(always),
        regexes=b.regexes,
        term_count=len(b.terms),
        keys=keys,
    )
