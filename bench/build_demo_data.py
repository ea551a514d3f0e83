"""Build ``watcher/data/demo/week.json`` from the shared Beijing-parade-week corpus.

Usage: ``python bench/build_demo_data.py [SHARED_DIR]`` (default ``../shared``, or ``$WATCHER_SHARED``).

Keeps, per entry, only the id, title, link and publication time: the descriptions belong to their
publishers and are left out. Per source it keeps the feed's own title, the original feed URL, the
language and display names. The output is deterministic: running the script twice gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "watcher" / "data" / "demo" / "week.json"

# slug -> (display name, publisher, tags); the order is the order of the demo's feeds.
SOURCES: dict[str, tuple[str, str, list[str]]] = {
    "bbc-asia": ("BBC News Asia", "BBC News", ["uk", "world", "asia"]),
    "aljazeera": ("Al Jazeera", "Al Jazeera", ["qatar", "world"]),
    "nyt-world": ("New York Times World", "The New York Times", ["us", "world"]),
    "wapo-world": ("Washington Post World", "The Washington Post", ["us", "world"]),
    "nbc-world": ("NBC News World", "NBC News", ["us", "world"]),
    "sky-world": ("Sky News World", "Sky News", ["uk", "world"]),
    "japantoday": ("Japan Today", "Japan Today", ["japan", "asia"]),
    "cna": ("CNA (Channel NewsAsia)", "CNA", ["singapore", "asia"]),
    "guardian-world": ("The Guardian World", "The Guardian", ["uk", "world"]),
}

_CHANNEL = re.compile(r"<channel>\s*<title>(.*?)</title>\s*<link>(.*?)</link>", re.S)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def _channel(feeds_dir: Path, slug: str) -> tuple[str, str]:
    """The feed's own title and URL, read from its first replay day."""
    first = sorted((feeds_dir / slug).glob("*.xml"))[0]
    m = _CHANNEL.search(first.read_text(encoding="utf-8"))
    if m is None:
        raise SystemExit(f"{first}: no <channel><title><link>")
    return _unescape(m.group(1)), _unescape(m.group(2))


def build(shared: Path) -> dict[str, Any]:
    """Return the week as the JSON-ready dict written to ``week.json``."""
    data = shared / "data" / "sept2025"
    entries = [json.loads(line) for line in (data / "entries.jsonl").read_text("utf-8").splitlines() if line]
    unknown = {e["source"] for e in entries} - SOURCES.keys()
    if unknown:
        raise SystemExit(f"sources with no display info: {sorted(unknown)}")
    sources: list[dict[str, Any]] = []
    for slug, (name, publisher, tags) in SOURCES.items():
        mine = sorted((e for e in entries if e["source"] == slug), key=lambda e: (e["published"], e["id"]))
        languages = [e["language"] for e in mine]
        language = max(set(languages), key=languages.count)
        title, feed_url = _channel(data / "feeds", slug)
        rows = []
        for e in mine:
            row = {"id": e["id"], "published": e["published"], "title": e["title"], "link": e["link"]}
            if e["language"] != language:
                row["language"] = e["language"]
            rows.append(row)
        sources.append(
            {
                "slug": slug,
                "title": title,
                "name": name,
                "publisher": publisher,
                "feed_url": feed_url,
                "language": language,
                "tags": tags,
                "entries": rows,
            }
        )
    return {
        "format": 1,
        "about": "Real headlines of the Beijing parade week (titles, links, dates; no descriptions). "
        "Built by bench/build_demo_data.py from ../shared/data/sept2025; see README.md.",
        "start": "2025-09-01T00:00:00Z",
        "end": "2025-09-08T00:00:00Z",
        "sources": sources,
    }


def dumps(week: dict[str, Any]) -> str:
    """Compact JSON with one entry per line, so diffs stay readable."""
    head = {k: v for k, v in week.items() if k != "sources"}
    lines = ["{" + json.dumps(head, ensure_ascii=False)[1:-1] + ', "sources": [']
    sources = week["sources"]
    for i, src in enumerate(sources):
        meta = {k: v for k, v in src.items() if k != "entries"}
        lines.append("{" + json.dumps(meta, ensure_ascii=False)[1:-1] + ', "entries": [')
        rows = [json.dumps(row, ensure_ascii=False) for row in src["entries"]]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if i < len(sources) - 1 else ""))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    shared = Path(argv[1] if len(argv) > 1 else os.environ.get("WATCHER_SHARED", ROOT.parent / "shared"))
    week = build(shared)
    text = dumps(week)
    assert json.loads(text) == week
    OUT.write_text(text, encoding="utf-8")
    total = sum(len(s["entries"]) for s in week["sources"])
    size = len(text.encode())
    print(f"wrote {OUT.relative_to(ROOT)}: {len(week['sources'])} sources, {total} entries, {size} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
