"""Measuring a watch list: labeled evaluation (precision, recall, F1) and backtests over stored items.

Pure library functions; ``watcher eval`` and ``watcher backtest`` render their reports.
Input lines (``watcher match``/``eval``/``explain``) are JSON objects with ``id``, ``title``, ``summary``
and optionally ``source``, ``link``, ``published`` (ISO 8601), ``language``; eval lines add ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from watcher.match import Matcher
from watcher.models import Item, Match

SAMPLES_PER_RULE = 5


def item_from_json(obj: dict[str, Any]) -> Item:
    """An Item from one input line. ValueError names a missing or malformed field."""
    if not isinstance(obj, dict):
        raise ValueError(f"an input line must be a JSON object, not {type(obj).__name__}")
    for name in ("id", "title", "summary"):
        if name not in obj:
            raise ValueError(f"missing field {name!r} (each line needs id, title and summary)")
        if not isinstance(obj[name], str | int) or (name != "id" and not isinstance(obj[name], str)):
            raise ValueError(f"field {name!r} must be a string")
    for name in ("source", "link", "published", "language"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise ValueError(f"field {name!r} must be a string")
    published = datetime.now(UTC)
    known = False
    if obj.get("published"):
        text = obj["published"].strip()
        try:
            published = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError as exc:
            raise ValueError(f"field 'published' is not an ISO 8601 date: {text!r}") from exc
        published = published.replace(tzinfo=UTC) if published.tzinfo is None else published.astimezone(UTC)
        known = True
    return Item(
        feed=obj.get("source") or "input",
        key=str(obj["id"]),
        link=obj.get("link") or "",
        title=obj["title"],
        summary=obj["summary"],
        published=published,
        published_known=known,
        language=obj.get("language") or None,
    )


@dataclass(frozen=True, slots=True)
class RuleScore:
    """Counts and scores of one rule over a labeled set."""

    rule_id: str
    tp: int
    fp: int
    fn: int
    misses: tuple[str, ...]  # item ids labeled with the rule that it did not match
    false_alarms: tuple[str, ...]  # item ids it matched without the label

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Per-rule scores and the micro-averaged totals (over every rule and item)."""

    rules: tuple[RuleScore, ...]
    items: int
    titles: dict[str, str] = field(default_factory=dict)  # item id -> title, for listing misses

    @property
    def total(self) -> RuleScore:
        return RuleScore(
            "(all rules)",
            sum(r.tp for r in self.rules),
            sum(r.fp for r in self.rules),
            sum(r.fn for r in self.rules),
            (),
            (),
        )

    def render(self, *, list_items: bool = True) -> str:
        """A table of precision, recall and F1 per rule, then the misses and false alarms."""
        head = f"{'rule':<22} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7} {'F1':>6}"
        lines = [f"{self.items} items", head, "-" * len(head)]
        for r in (*self.rules, self.total):
            if r is not self.rules[0] and r.rule_id == "(all rules)":
                lines.append("-" * len(head))
            scores = f"{r.precision:>9.3f} {r.recall:>7.3f} {r.f1:>6.3f}"
            lines.append(f"{r.rule_id:<22} {r.tp:>4} {r.fp:>4} {r.fn:>4} {scores}")
        if list_items:
            for r in self.rules:
                for kind, ids in (("missed", r.misses), ("false alarm", r.false_alarms)):
                    for item_id in ids:
                        lines.append(
                            f"{kind:>11} {r.rule_id}: {item_id} {self.titles.get(item_id, '')}".rstrip()
                        )
        return "\n".join(lines)


def evaluate(items_with_labels: Iterable[tuple[Item, Iterable[str]]], matcher: Matcher) -> EvalReport:
    """Match each item and compare with its labels (rule ids); labels of unknown rules are scored too."""
    rule_ids = list(matcher.rule_ids)
    tp: dict[str, int] = dict.fromkeys(rule_ids, 0)
    misses: dict[str, list[str]] = {r: [] for r in rule_ids}
    alarms: dict[str, list[str]] = {r: [] for r in rule_ids}
    titles: dict[str, str] = {}
    count = 0
    for item, labels in items_with_labels:
        count += 1
        titles[item.key] = item.title
        wanted = set(labels)
        got = {m.rule_id for m in matcher.match(item)}
        for rule_id in wanted | got:
            if rule_id not in tp:
                rule_ids.append(rule_id)
                tp[rule_id], misses[rule_id], alarms[rule_id] = 0, [], []
            if rule_id in wanted and rule_id in got:
                tp[rule_id] += 1
            elif rule_id in wanted:
                misses[rule_id].append(item.key)
            else:
                alarms[rule_id].append(item.key)
    scores = tuple(
        RuleScore(r, tp[r], len(alarms[r]), len(misses[r]), tuple(misses[r]), tuple(alarms[r]))
        for r in rule_ids
    )
    return EvalReport(scores, count, titles)


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """How often each rule would have fired over a set of items, with a few sample hits each."""

    items: int
    hits: dict[str, int]
    samples: dict[str, list[tuple[Item, Match]]]

    def render(self) -> str:
        """Per-rule hit counts, then sample hits with their evidence."""
        lines = [f"{self.items} items"]
        width = max([len(r) for r in self.hits] + [4])
        for rule_id, n in sorted(self.hits.items(), key=lambda kv: (-kv[1], kv[0])):
            share = n / self.items if self.items else 0.0
            lines.append(f"{rule_id:<{width}} {n:>6} hits ({share:.1%})")
        for rule_id, samples in self.samples.items():
            if not samples:
                continue
            lines.append(f"\n{rule_id}:")
            for item, match in samples:
                when = item.published.strftime("%Y-%m-%d %H:%M")
                lines.append(f"  {when} [{item.feed}] {item.title}")
                terms = ", ".join(dict.fromkeys(f"{e.term}={e.text!r}" for e in match.evidence))
                lines.append(f"      {terms}")
        return "\n".join(lines)


def backtest(
    items: Iterable[Item],
    matcher: Matcher,
    *,
    rule: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> BacktestReport:
    """Run the matcher over ``items`` (only ``rule`` when given); ``progress(n)`` every 100 items."""
    if rule is not None and rule not in matcher.rule_ids:
        raise KeyError(f"no enabled rule {rule!r}")
    ids = [rule] if rule else matcher.rule_ids
    hits = dict.fromkeys(ids, 0)
    samples: dict[str, list[tuple[Item, Match]]] = {r: [] for r in ids}
    count = 0
    for item in items:
        count += 1
        for m in matcher.match(item):
            if m.rule_id in hits:
                hits[m.rule_id] += 1
                if len(samples[m.rule_id]) < SAMPLES_PER_RULE:
                    samples[m.rule_id].append((item, m))
        if progress is not None and count % 100 == 0:
            progress(count)
    if progress is not None and count % 100:
        progress(count)
    return BacktestReport(count, hits, samples)
