"""Matching speed: the compiled matcher against a naive loop, at 12, 1,000 and 10,000 rules.

    python bench/match.py [--seconds 2] [--write]

Items are the 1,745 real headlines of the parade week (../shared/data/sept2025) when present, else
synthetic ones. The 12-rule list is the shipped config/watchlist.yaml; the large lists are generated
like real ones: one new person per rule (aliases in Latin, Cyrillic, Hangul and CJK scripts, half of
them fuzzy), shared countries and leaders, topic phrases, near/at_least/none conditions. The naive loop
searches, for each rule, each of its phrases with a precompiled regex (stopping at the first found).
Both run in the same process, one core; the ratio is what to read. ``--write`` records the table in
docs/benchmarks.md under "## Matching".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcher.match import compile_watchlist  # noqa: E402
from watcher.models import Item  # noqa: E402
from watcher.rules import Watchlist, load_watchlist  # noqa: E402
from watcher.textnorm import char_script  # noqa: E402

SYLLABLES = ["ka", "ren", "do", "mi", "sol", "tar", "vin", "lo", "bex", "zan", "mor"]
SYLLABLES += ["fel", "tis", "gra", "nov", "pel", "rud", "sha", "yor", "quin", "dal", "ber"]
CYRILLIC = dict(zip("abdefgiklmnopqrstuvyz", "абдефгиклмнопкрстувиз", strict=True))
HANGUL = "가나다라마바사아자차카타파하강남동랑망방상장창탕팡항"
HAN = "张王李赵刘陈杨黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐"
TOPICS = ["talks", "summit", "sanctions", "tariff", "deal", "pipeline", "missile", "drills", "election"]
TOPICS += ["protest", "ceasefire", "treaty", "investment", "embargo", "border", "strike", "refinery"]
TOPICS += ["shipyard", "satellite", "vaccine", "drought", "flood", "budget"]
VERBS = ["says", "said", "warns", "meets", "met", "visits", "accuses", "denies", "backs", "rejects"]


def shared_dir() -> Path:
    default = ROOT.parent / "shared"
    return default if default.exists() else Path(os.environ.get("WATCHER_SHARED", default))


def load_items() -> list[Item]:
    path = shared_dir() / "data" / "sept2025" / "entries.jsonl"
    now = datetime(2025, 9, 3, tzinfo=UTC)
    if path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:  # synthetic, so the benchmark runs without the shared corpus
        rng = random.Random(7)
        rows = [
            {
                "id": str(i),
                "source": "synthetic",
                "title": " ".join(rng.choice(TOPICS + VERBS + ["China", "Putin", "Kim"]) for _ in range(10)),
                "summary": " ".join(rng.choice(TOPICS + VERBS + ["the", "of", "and"]) for _ in range(30)),
            }
            for i in range(1745)
        ]
    return [
        Item(feed=r["source"], key=r["id"], link="", title=r["title"], summary=r["summary"], published=now)
        for r in rows
    ]


def _name(rng: random.Random) -> tuple[str, str]:
    first = "".join(rng.choice(SYLLABLES) for _ in range(2)).capitalize()
    last = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3)))).capitalize()
    return first, last


def generated(n_rules: int, seed: int = 1) -> Watchlist:
    """A watch list of ``n_rules`` rules shaped like the shipped ones, over shared and new entities."""
    rng = random.Random(seed)
    base = load_watchlist(ROOT / "config" / "watchlist.yaml")
    entities: dict[str, Any] = {k: v.model_dump() for k, v in base.entities.items()}
    shared = ["china", "russia", "north-korea", "us-government", "xi", "putin", "kim"]
    rules: list[dict[str, Any]] = []
    for i in range(n_rules):
        first, last = _name(rng)
        name = f"person-{i}"
        latin = f"{first} {last}"
        entities[name] = {
            "aliases": [
                latin,
                f"{first}-{last}",
                last if len(last) > 6 else latin,
                "".join(CYRILLIC.get(c, c) for c in latin.lower()),
                "".join(rng.choice(HANGUL) for _ in range(3)),
                "".join(rng.choice(HAN) for _ in range(3)),
            ],
            **({"fuzzy": 88} if i % 2 == 0 else {}),
        }
        topic = rng.sample(TOPICS, 3)
        other = rng.choice(shared)
        shape = i % 5
        rule: dict[str, Any] = {"id": f"rule-{i}", "title": f"Rule {i}"}
        if shape == 0:
            rule["all"] = [{"entity": name}, topic]
        elif shape == 1:
            rule["at_least"] = {"n": 2, "of": [{"entity": name}, {"entity": other}, f"{topic[0]} {topic[1]}"]}
        elif shape == 2:
            rule["near"] = {"terms": [{"entity": name}, rng.sample(VERBS, 4)], "within": 5}
            rule["none"] = [{"entity": "preview"}]
        elif shape == 3:
            rule["any"] = [{"entity": name}, f"{topic[0]} {topic[1]} {rng.choice(SYLLABLES)}"]
        else:
            rule["all"] = [{"entity": other}, {"entity": name}, topic]
        rules.append(rule)
    groups = {k: list(v) for k, v in base.groups.items()}
    return Watchlist.model_validate({"entities": entities, "groups": groups, "rules": rules})


def _phrases(node: Any, wl: Watchlist) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for x in node:
            yield from _phrases(x, wl)
    elif isinstance(node, dict):
        if "entity" in node:
            for member in wl.members(node["entity"]):
                yield from wl.entities[member].aliases
        elif "fuzzy" in node:
            yield node["fuzzy"]
        elif "regex" not in node:
            for key, value in node.items():
                if key not in ("n", "within"):
                    yield from _phrases(value, wl)


def naive(wl: Watchlist) -> Callable[[Item], list[str]]:
    """For each rule, for each phrase, a precompiled regex search: what a first version would do."""
    compiled: list[tuple[str, list[re.Pattern[str]]]] = []
    for rule in wl.rules:
        spec = rule.model_dump(by_alias=True, include={"all_", "any_", "at_least", "near"})
        patterns = []
        for phrase in dict.fromkeys(_phrases(spec, wl)):
            if char_script(phrase[0]) == "cjk":
                patterns.append(re.compile(re.escape(phrase)))
            else:
                patterns.append(re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", re.IGNORECASE))
        compiled.append((rule.id, patterns))

    def match(item: Item) -> list[str]:
        text = item.title + "\n" + item.summary
        return [rule_id for rule_id, patterns in compiled if any(p.search(text) for p in patterns)]

    return match


def rate(fn: Callable[[Item], object], items: list[Item], seconds: float) -> float:
    """Items per CPU second: best of three runs of about ``seconds`` / 3 each, after an untimed warm-up."""
    best = 0.0
    for run in range(4):
        done, batch, start = 0, 5, time.process_time()
        while True:
            for i in range(done, done + batch):
                fn(items[i % len(items)])
            done += batch
            elapsed = time.process_time() - start
            if elapsed >= seconds / 3:
                break
            batch = min(batch * 2, len(items))
        if run:
            best = max(best, done / elapsed)
    return best


def run(seconds: float) -> list[dict[str, float]]:
    items = load_items()
    rows = []
    for n in (12, 1000, 10000):
        wl = load_watchlist(ROOT / "config" / "watchlist.yaml") if n == 12 else generated(n)
        t = time.perf_counter()
        matcher = compile_watchlist(wl)
        compile_s = time.perf_counter() - t
        fast = rate(matcher.match, items, seconds)
        slow = rate(naive(wl), items, seconds)
        rows.append(
            {"rules": n, "compile_s": compile_s, "compiled": fast, "naive": slow, "ratio": fast / slow}
        )
        print(
            f"{n:>6} rules: compiled {fast:>9,.0f} items/s, naive {slow:>8,.1f} items/s, x{fast / slow:,.0f}"
        )
    return rows


def table(rows: list[dict[str, float]], items: int) -> str:
    lines = [
        "## Matching",
        "",
        f"`python bench/match.py` over {items:,} real headlines of the parade week (title and summary),",
        "one process; items per second of CPU time (other load on the shared 2-core machine does not count).",
        "Compiled: `compile_watchlist` (one Aho-Corasick pass, fuzzy aliases on candidates only).",
        "Naive: for each rule, for each phrase, a precompiled regex search.",
        "",
        "| rules | compile | compiled items/s | naive items/s | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rules']:,.0f} | {r['compile_s']:.2f} s | {r['compiled']:,.0f} | {r['naive']:,.1f} "
            f"| {r['ratio']:,.0f}x |"
        )
    keep = rows[2]["compiled"] / rows[1]["compiled"]
    lines += ["", f"From 1,000 to 10,000 rules the compiled matcher keeps {keep:.0%} of its throughput.", ""]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace (or add) the ``## Matching`` section, leaving the others as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Matching\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement (default 3)")
    parser.add_argument("--write", action="store_true", help="record the table in docs/benchmarks.md")
    args = parser.parse_args()
    rows = run(args.seconds)
    keep = rows[2]["compiled"] / rows[1]["compiled"]
    print(f"1,000 -> 10,000 rules keeps {keep:.0%} of the throughput")
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", table(rows, len(load_items())))


if __name__ == "__main__":
    main()
