"""The matching engine: a watch list compiled once, then one automaton pass per item field.

``compile_watchlist`` folds every phrase and alias (watcher.textnorm) into one Aho-Corasick automaton.
``Matcher.match`` normalizes each field, runs the automaton once, keeps the occurrences that sit on word
boundaries (CJK phrases match anywhere), and evaluates only the rules whose trigger terms were seen.
Fuzzy matching (rapidfuzz) runs only for entities and terms that ask for it, only where one of their
anchor words or word ends was seen and the exact alias was not, and only on a few words around it.
Regexes run only for rules that reached them, with a time limit.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection
from dataclasses import dataclass

import regex

from watcher.conditions import Hit, Node, Scan, View
from watcher.explain import Explanation, evidence_for
from watcher.fuzzy import Anchored, fuzzy_hits
from watcher.matchcompile import Compiled, Key, compile_rules
from watcher.models import Item, Match
from watcher.rules import Rule, Watchlist
from watcher.textnorm import (
    NormText,
    guess_language,
    is_word_char,
    normalize,
    right_boundary_end,
)

FIELDS = ("title", "summary")
REGEX_TIMEOUT = 0.05  # seconds one regex may spend on one field


@dataclass(frozen=True, slots=True)
class _Scope:
    fields: frozenset[str] | None
    sources: frozenset[str] | None
    source_patterns: tuple[str, ...]
    tags: frozenset[str] | None
    languages: frozenset[str] | None

    @classmethod
    def of(cls, rule: Rule) -> _Scope:
        s = rule.scope
        fields = frozenset(s.fields) if s.fields and set(s.fields) != set(FIELDS) else None
        sources = [x for x in s.sources or () if not any(c in x for c in "*?[")]
        patterns = tuple(x for x in s.sources or () if any(c in x for c in "*?["))
        return cls(
            fields=fields,
            sources=frozenset(sources) if s.sources is not None else None,
            source_patterns=patterns,
            tags=frozenset(s.tags) if s.tags is not None else None,
            languages=frozenset(_lang(x) for x in s.languages) if s.languages is not None else None,
        )

    def refuses(self, item: Item, tags: Collection[str]) -> str | None:
        """Why the item is out of this rule's scope, or None when it is in."""
        if (
            self.sources is not None
            and item.feed not in self.sources
            and not any(fnmatch.fnmatchcase(item.feed, p) for p in self.source_patterns)
        ):
            return f"source {item.feed!r} is not in the rule's sources"
        if self.tags is not None and self.tags.isdisjoint(tags):
            return f"feed tags {sorted(tags)} share none of the rule's tags {sorted(self.tags)}"
        if self.languages is not None:
            lang = _lang(item.language) if item.language else guess_language(item.title + " " + item.summary)
            if lang not in self.languages:
                return f"language {lang or 'unknown'!r} is not in the rule's languages"
        return None


def _lang(code: str) -> str:
    return code.replace("_", "-").split("-")[0].lower()


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    root: Node
    scope: _Scope


class Matcher:
    """A compiled watch list. Build with :func:`compile_watchlist`; reuse for every item."""

    def __init__(self, watchlist: Watchlist, compiled: Compiled) -> None:
        self.watchlist = watchlist
        self._c = compiled
        self._rules = [
            _CompiledRule(rule, root, _Scope.of(rule))
            for rule, root in zip(compiled.rules, compiled.roots, strict=True)
        ]
        self._index = {r.rule.id: i for i, r in enumerate(self._rules)}
        self._ac = compiled.automaton

    @property
    def rule_ids(self) -> list[str]:
        """Ids of the enabled rules, in watch-list order."""
        return [r.rule.id for r in self._rules]

    def scan(self, item: Item) -> Scan:
        """Normalize the item's fields and find every term the automaton and fuzzy matching see."""
        title, summary = normalize(item.title), normalize(item.summary)
        fields = {"title": title, "summary": summary}
        hits: dict[int, list[Hit]] = {}
        if self._ac is not None:
            self._scan(title, summary, hits)
        return Scan(fields, hits, self._lazy_regex, self._c.regexes)

    def match(self, item: Item, *, tags: Collection[str] = ()) -> list[Match]:
        """Every rule the item matches, in watch-list order, with evidence into the original text."""
        scan = self.scan(item)
        triggers = self._c.triggers
        candidates: set[int] = set(self._c.always)
        for term in scan.hits:
            found = triggers.get(term)
            if found:
                candidates.update(found)
        out: list[Match] = []
        for index in sorted(candidates):
            cr = self._rules[index]
            if cr.scope.refuses(item, tags):
                continue
            view = View(scan, cr.scope.fields)
            if cr.root.test(view):
                evidence = evidence_for(cr.root.evidence(view), scan)
                out.append(Match(rule_id=cr.rule.id, severity=cr.rule.severity, evidence=evidence))
        return out

    def explain(self, item: Item, rule_id: str, *, tags: Collection[str] = ()) -> Explanation:
        """Why ``rule_id`` does or does not match ``item``: scope, then every condition and term."""
        if rule_id not in self._index:
            raise KeyError(f"no enabled rule {rule_id!r}")
        cr = self._rules[self._index[rule_id]]
        scan = self.scan(item)
        view = View(scan, cr.scope.fields)
        lines: list[tuple[int, bool, str]] = []
        ok = cr.root.explain(view, 0, lines)
        refusal = cr.scope.refuses(item, tags)
        evidence = evidence_for(cr.root.evidence(view), scan) if ok and not refusal else ()
        return Explanation(
            rule_id=rule_id,
            title=cr.rule.title,
            item_id=item.key,
            matched=ok and refusal is None,
            scope_problem=refusal,
            fields=sorted(cr.scope.fields) if cr.scope.fields else list(FIELDS),
            lines=lines,
            evidence=evidence,
        )

    # --- scanning -------------------------------------------------------------------------------

    def _scan(self, title: NormText, summary: NormText, hits: dict[int, list[Hit]]) -> None:
        """One automaton pass over both fields (joined by a character no key holds)."""
        text = title.text + "\x00" + summary.text
        offset = len(title.text) + 1  # where the summary starts
        anchored: dict[str, Anchored] = {}
        masks: list[tuple[str, Key, int, int]] = []
        for last, key in self._ac.iter(text):
            start = last - key.length + 1
            stop = last + 1
            if key.anchors:
                anchored.setdefault("title" if start < offset else "summary", []).append(
                    (
                        key.anchors,
                        start if start < offset else start - offset,
                        stop if start < offset else stop - offset,
                    )
                )
                if not key.exact:
                    continue
            if key.left and start and is_word_char(text[start - 1]):
                continue
            if key.right:
                end = right_boundary_end(text, stop, key.suffixes)
                if end < 0:
                    continue
            else:
                end = stop
            if start < offset:
                name, nt = "title", title
            else:
                name, nt = "summary", summary
                start, stop, end = start - offset, stop - offset, end - offset
            if key.plain:
                hit = (name, start, stop, None)
                for term in key.plain:
                    found = hits.get(term)
                    if found is None:
                        hits[term] = [hit]
                    else:
                        found.append(hit)
            if key.special:
                self._special(name, nt, key, start, stop, end, hits)
            if key.masks:
                masks.append((name, key, start, stop))
        if masks:
            self._apply_masks(masks, hits)
        for name, seen in anchored.items():
            fuzzy_hits(name, title if name == "title" else summary, seen, hits)

    @staticmethod
    def _special(
        name: str, nt: NormText, key: Key, start: int, stop: int, end: int, hits: dict[int, list[Hit]]
    ) -> None:
        for term, upper, stem in key.special:
            if stem:
                if end == stop:
                    continue  # a stem must carry an ending
                hit: Hit = (name, start, end, None)
            else:
                hit = (name, start, stop, None)
            if upper:
                ostart, oend = nt.span(start, stop)
                if not nt.original[ostart:oend].isupper():
                    continue
            hits.setdefault(term, []).append(hit)

    @staticmethod
    def _apply_masks(masks: list[tuple[str, Key, int, int]], hits: dict[int, list[Hit]]) -> None:
        for name, key, start, stop in masks:
            for term in key.masks:
                found = hits.get(term)
                if not found:
                    continue
                kept = [
                    h for h in found if not (h[0] == name and h[1] >= start and h[2] <= stop and h[3] is None)
                ]
                if kept:
                    hits[term] = kept
                else:
                    del hits[term]

    def _lazy_regex(self, scan: Scan, term: int) -> list[Hit]:
        pattern = self._c.regexes.get(term)
        if pattern is None:
            return []
        return regex_hits(pattern, scan)


def regex_hits(pattern: regex.Pattern[str], scan: Scan) -> list[Hit]:
    """Occurrences of a rule regex in the normalized fields; a search past the time limit finds nothing."""
    out: list[Hit] = []
    for name, nt in scan.fields.items():
        try:
            for m in pattern.finditer(nt.text, timeout=REGEX_TIMEOUT):
                if m.end() > m.start():
                    out.append((name, m.start(), m.end(), None))
                if len(out) > 50:
                    break
        except TimeoutError:
            continue
    return out


def compile_watchlist(wl: Watchlist) -> Matcher:
    """Compile a loaded watch list into a :class:`Matcher` (do it once; matching reuses it)."""
    compiled = compile_rules(wl)
    return Matcher(wl, compiled)
