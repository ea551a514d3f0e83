"""Compiled rule conditions: small node objects evaluated against one item's term hits.

A ``Scan`` holds what one pass over an item found: for each term id, its hits as
``(field, start, end, score)`` in normalized offsets (``score`` is None for exact hits). Nodes ask the
``View`` (the scan seen through one rule's fields) whether their terms are present, and can list the
hits that made them true (evidence) or describe themselves for ``explain``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal

from watcher.textnorm import NormText

Hit = tuple[str, int, int, "float | None"]  # field, start, end (normalized offsets), fuzzy score
TermKind = Literal["phrase", "entity", "fuzzy", "regex"]
NEAR_MAX_HITS = 12  # occurrences per term considered by near (the earliest ones)


@dataclass(slots=True)
class Scan:
    """What the matcher found in one item: normalized fields and the hits of every term seen."""

    fields: dict[str, NormText]
    hits: dict[int, list[Hit]]
    lazy: Callable[[Scan, int], list[Hit]] | None = None  # computes hits of terms the automaton cannot see
    lazy_terms: Collection[int] = ()  # the terms ``lazy`` is for (regexes)
    done: set[int] = field(default_factory=set)  # lazy terms already computed


class View:
    """A scan as one rule sees it: only the rule's fields."""

    __slots__ = ("fields", "scan")

    def __init__(self, scan: Scan, fields: frozenset[str] | None) -> None:
        self.scan = scan
        self.fields = fields

    def hits(self, term: int) -> list[Hit]:
        scan = self.scan
        found = scan.hits.get(term)
        if found is None and term in scan.lazy_terms and scan.lazy is not None and term not in scan.done:
            scan.done.add(term)
            found = scan.lazy(scan, term)
            if found:
                scan.hits[term] = found
        if not found:
            return []
        if self.fields is None:
            return found
        return [h for h in found if h[0] in self.fields]


class Node:
    """A condition. ``test`` decides; ``evidence`` lists the hits behind a true result."""

    __slots__ = ()

    def test(self, view: View) -> bool:
        raise NotImplementedError

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        raise NotImplementedError

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        raise NotImplementedError


class TermNode(Node):
    """A leaf: one term (phrase, entity or group, fuzzy phrase, regex)."""

    __slots__ = ("entity", "kind", "label", "term")

    def __init__(self, term: int, kind: TermKind, label: str, entity: str | None = None) -> None:
        self.term = term
        self.kind = kind
        self.label = label
        self.entity = entity

    def test(self, view: View) -> bool:
        return bool(view.hits(self.term))

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return [(self, h) for h in view.hits(self.term)]

    def describe(self) -> str:
        if self.kind == "phrase":
            return repr(self.label)
        return f"{self.kind} {self.label!r}"

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        hits = view.hits(self.term)
        if not hits:
            out.append((depth, False, f"{self.describe()}: not found"))
            return False
        where = ", ".join(_where(view, h) for h in hits[:5]) + (" ..." if len(hits) > 5 else "")
        out.append((depth, True, f"{self.describe()}: found {where}"))
        return True


def _where(view: View, hit: Hit) -> str:
    field_name, start, end, score = hit
    nt = view.scan.fields[field_name]
    ostart, oend = nt.span(start, end)
    text = nt.original[ostart:oend]
    extra = f" (fuzzy {score:.0f})" if score is not None else ""
    return f"in {field_name} at {ostart}-{oend} {text!r}{extra}"


class AllNode(Node):
    __slots__ = ("children",)

    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def test(self, view: View) -> bool:
        return all(c.test(view) for c in self.children)

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return [e for c in self.children for e in c.evidence(view)]

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        i = len(out)
        out.append((depth, False, ""))
        ok = all([c.explain(view, depth + 1, out) for c in self.children])
        out[i] = (depth, ok, f"all of {len(self.children)}: {'yes' if ok else 'no'}")
        return ok


class AnyNode(Node):
    __slots__ = ("children",)

    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def test(self, view: View) -> bool:
        return any(c.test(view) for c in self.children)

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return [e for c in self.children if c.test(view) for e in c.evidence(view)]

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        i = len(out)
        out.append((depth, False, ""))
        count = sum(c.explain(view, depth + 1, out) for c in self.children)
        out[i] = (depth, count > 0, f"any of {len(self.children)}: {count} found")
        return count > 0


class NoneNode(Node):
    __slots__ = ("children",)

    def __init__(self, children: list[Node]) -> None:
        self.children = children

    def test(self, view: View) -> bool:
        return not any(c.test(view) for c in self.children)

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return []

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        i = len(out)
        out.append((depth, False, ""))
        count = sum(c.explain(view, depth + 1, out) for c in self.children)
        verdict = "none found" if count == 0 else f"{count} found, so the rule is vetoed"
        out[i] = (depth, count == 0, f"none of {len(self.children)}: {verdict}")
        return count == 0


class AtLeastNode(Node):
    __slots__ = ("children", "n")

    def __init__(self, n: int, children: list[Node]) -> None:
        self.n = n
        self.children = children

    def test(self, view: View) -> bool:
        need = self.n
        left = len(self.children)
        for c in self.children:
            if c.test(view):
                need -= 1
                if need == 0:
                    return True
            left -= 1
            if left < need:
                return False
        return False

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return [e for c in self.children if c.test(view) for e in c.evidence(view)]

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        i = len(out)
        out.append((depth, False, ""))
        count = sum(c.explain(view, depth + 1, out) for c in self.children)
        out[i] = (depth, count >= self.n, f"at least {self.n} of {len(self.children)}: {count} found")
        return count >= self.n


class NearNode(Node):
    """Every slot (a term, or any of a few) occurs in one field, ``within`` words apart (CJK: characters)."""

    __slots__ = ("slots", "within")

    def __init__(self, slots: list[list[TermNode]], within: int) -> None:
        self.slots = slots
        self.within = within

    def _window(self, view: View) -> list[tuple[TermNode, Hit]] | None:
        per_slot = [[(t, h) for t in slot for h in view.hits(t.term)] for slot in self.slots]
        if not all(per_slot):
            return None
        shared = set.intersection(*({h[0] for _, h in hits} for hits in per_slot))
        for field_name in sorted(shared):
            nt = view.scan.fields[field_name]
            options = [[(t, h) for t, h in hits if h[0] == field_name][:NEAR_MAX_HITS] for hits in per_slot]
            for combo in itertools.product(*options):
                first_end = min(nt.token_index(h[2] - 1) for _, h in combo)
                last_start = max(nt.token_index(h[1]) for _, h in combo)
                if last_start - first_end - 1 <= self.within:
                    return list(combo)
        return None

    def test(self, view: View) -> bool:
        return self._window(view) is not None

    def evidence(self, view: View) -> list[tuple[TermNode, Hit]]:
        return self._window(view) or []

    def explain(self, view: View, depth: int, out: list[tuple[int, bool, str]]) -> bool:
        i = len(out)
        out.append((depth, False, ""))
        for slot in self.slots:
            if len(slot) == 1:
                slot[0].explain(view, depth + 1, out)
                continue
            j = len(out)
            out.append((depth + 1, False, ""))
            count = sum(t.explain(view, depth + 2, out) for t in slot)
            out[j] = (depth + 1, count > 0, f"any of {len(slot)}: {count} found")
        ok = self._window(view) is not None
        verdict = "close together" if ok else "not all found close enough"
        out[i] = (depth, ok, f"near, within {self.within} words, {len(self.slots)} terms: {verdict}")
        return ok
