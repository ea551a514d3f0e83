"""Evidence and explanations: what matched, where in the original text, and why a rule did or did not."""

from __future__ import annotations

from dataclasses import dataclass, field

from watcher.conditions import Hit, Scan, TermNode
from watcher.models import Evidence

SNIPPET_WIDTH = 120
_FIELD_ORDER = {"title": 0, "summary": 1}


def snippet(text: str, start: int, end: int, width: int = SNIPPET_WIDTH) -> str:
    """Up to ``width`` characters of ``text`` around ``text[start:end]``, cut at spaces, with ellipses."""
    if len(text) <= width:
        return text
    room = max(0, width - (end - start))
    a = max(0, start - room // 2)
    b = min(len(text), a + max(width, end - a))
    a = max(0, min(a, b - width))
    if a > 0:
        space = text.find(" ", a, start)
        a = space + 1 if space >= 0 else a
    if b < len(text):
        space = text.rfind(" ", end, b)
        b = space if space >= 0 else b
    return ("…" if a > 0 else "") + text[a:b].strip() + ("…" if b < len(text) else "")


def evidence_for(pairs: list[tuple[TermNode, Hit]], scan: Scan) -> tuple[Evidence, ...]:
    """Evidence records for (term, hit) pairs: deduplicated, in field then text order."""
    seen: set[tuple[str, str, int, int]] = set()
    out: list[Evidence] = []
    for node, (field_name, start, end, score) in pairs:
        nt = scan.fields[field_name]
        ostart, oend = nt.span(start, end)
        ident = (node.label, field_name, ostart, oend)
        if ident in seen:
            continue
        seen.add(ident)
        kind = "fuzzy" if score is not None else node.kind
        out.append(
            Evidence(
                term=node.label,
                kind=kind,
                field=field_name,
                start=ostart,
                end=oend,
                text=nt.original[ostart:oend],
                snippet=snippet(nt.original, ostart, oend),
                entity=node.entity,
                score=score,
            )
        )
    out.sort(key=lambda e: (_FIELD_ORDER.get(e.field, 9), e.start, e.end))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one rule did or did not match one item. ``lines`` are (depth, holds, text), a tree."""

    rule_id: str
    title: str
    item_id: str
    matched: bool
    scope_problem: str | None
    fields: list[str]
    lines: list[tuple[int, bool, str]] = field(default_factory=list)
    evidence: tuple[Evidence, ...] = ()

    def render(self) -> str:
        """A readable account: the verdict, the scope, each condition and term with where it was found."""
        verdict = "MATCHES" if self.matched else "does not match"
        out = [f"rule {self.rule_id} ({self.title}) {verdict} item {self.item_id}"]
        if self.scope_problem:
            out.append(f"  out of scope: {self.scope_problem}")
        else:
            out.append(f"  in scope; searching {', '.join(self.fields)}")
        for depth, holds, text in self.lines:
            out.append(f"  {'  ' * depth}{'✓' if holds else '✗'} {text}")
        for ev in self.evidence:
            out.append(f"  evidence: {ev.term} in {ev.field} [{ev.start}:{ev.end}] {ev.text!r}: {ev.snippet}")
        return "\n".join(out)
