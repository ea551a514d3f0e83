"""Parsing throughput on the real corpus: feedparser (defaults, and without sanitizing) against parse_feed.

    python bench/parse.py [--repeat 5] [--write]

Reads every file of ../shared/data/fastfeedparser-data/benchmark_data (200 real feeds, 44 MB) into
memory, then times each reader over all of them, in turn, ``--repeat`` times, in this one process on one
core. Times are CPU seconds of this process (``time.process_time``), so other load on a shared machine
does not count; each figure is the median of the runs, with min-max. The ratios are what to read.

- ``feedparser``: ``feedparser.parse`` with its defaults (HTML sanitized, relative URIs resolved).
- ``feedparser, sanitize/resolve off``: what parse_feed's fallback calls.
- ``parse_feed``: watcher's parse stage, whole (screening, lxml fast path or feedparser, normalizing).
- ``parse_feed, fast path only``: the same over the files the fast path accepts.
- ``lxml tree only``: ``etree.fromstring`` over the fast-path files: the floor under any lxml reader.

``--write`` records the table in docs/benchmarks.md under "## Parsing" (other sections are kept).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import feedparser  # noqa: E402
import lxml  # noqa: E402
from lxml import etree  # noqa: E402

from watcher.errors import ParseError  # noqa: E402
from watcher.parse import parse_feed, prepare  # noqa: E402
from watcher.parse_lxml import read_xml  # noqa: E402

SHARED = Path(os.environ.get("WATCHER_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "data" / "fastfeedparser-data" / "benchmark_data"
NEWS = SHARED / "data" / "sept2025" / "feeds"
URL = "https://feeds.example/rss"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
Reader = Callable[[bytes], int]  # a body → how many items were read


def feedparser_defaults(body: bytes) -> int:
    headers = {"content-location": URL, "content-type": "application/xml"}
    return len(feedparser.parse(io.BytesIO(body), response_headers=headers).entries)


def feedparser_plain(body: bytes) -> int:
    headers = {"content-location": URL, "content-type": "application/xml"}
    result = feedparser.parse(
        io.BytesIO(body), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
    )
    return len(result.entries)


def watcher_parse(body: bytes) -> int:
    try:
        return len(parse_feed(body, feed="bench", url=URL, now=NOW).items)
    except ParseError:
        return 0


_TREE = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True, remove_pis=True
)


def lxml_tree(body: bytes) -> int:
    etree.fromstring(body, _TREE)
    return 0


def fast_path_files(bodies: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The bodies the fast path accepts, as fetched and as prepared (UTF-8, screened) for lxml."""
    accepted, prepared_ones = [], []
    for body in bodies:
        prepared, content_type, _ = prepare(body)
        if not isinstance(read_xml(prepared, url=URL, content_type=content_type), str):
            accepted.append(body)
            prepared_ones.append(prepared)
    return accepted, prepared_ones


def measure(reader: Reader, bodies: list[bytes]) -> tuple[float, int]:
    start = time.process_time()
    items = sum(reader(body) for body in bodies)
    return time.process_time() - start, items


def run(variants: list[tuple[str, Reader, list[bytes]]], repeat: int) -> dict[str, dict[str, float]]:
    """Each variant over its files, ``repeat`` rounds, the variants taking turns within a round."""
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    items: dict[str, int] = {}
    for round_ in range(repeat):
        for name, reader, bodies in variants:
            spent, count = measure(reader, bodies)
            seconds[name].append(spent)
            items[name] = count
            print(f"  round {round_ + 1}/{repeat}  {name:<36} {spent:6.2f} s", file=sys.stderr)
    rows = {}
    for name, _, bodies in variants:
        size = sum(len(b) for b in bodies)
        median = statistics.median(seconds[name])
        rows[name] = {
            "files": len(bodies), "bytes": size, "items": items[name], "median": median,
            "min": min(seconds[name]), "max": max(seconds[name]),
        }  # fmt: skip
    return rows


def table(rows: dict[str, dict[str, float]], ref: str, items_of: str) -> list[str]:
    """Items/s use each reader's own item count; the lxml-only floor uses parse_feed's count for its files."""
    lines = [
        "| reader | files | items | seconds (median, min–max) | items/s | MB/s | MB/s vs feedparser |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        items = row["items"] or rows[items_of]["items"]
        seconds = f"{row['median']:.2f} ({row['min']:.2f}–{row['max']:.2f})"
        speed, mbps = items / row["median"], row["bytes"] / row["median"] / 1e6
        ratio = (rows[ref]["median"] / rows[ref]["bytes"]) / (row["median"] / row["bytes"])
        cells = [name, f"{row['files']:.0f}", f"{items:,.0f}", seconds, f"{speed:,.0f}", f"{mbps:.1f}"]
        lines.append("| " + " | ".join([*cells, f"{ratio:.1f}×"]) + " |")
    return lines


def news_line(repeat: int) -> str:
    """parse_feed over the parade week's news feeds (headlines with short descriptions)."""
    bodies = [p.read_bytes() for p in sorted(NEWS.rglob("*.xml"))]
    if not bodies:
        return ""
    rows = run([("parse_feed", watcher_parse, bodies), ("feedparser", feedparser_defaults, bodies)], repeat)
    ours, theirs = rows["parse_feed"], rows["feedparser"]
    speed, times = ours["items"] / ours["median"], theirs["median"] / ours["median"]
    return (
        f"On news feeds (the parade week: {len(bodies)} files, {ours['items']:,.0f} headlines with short "
        f"descriptions, {ours['bytes'] / 1e6:.1f} MB) parse_feed reads **{speed:,.0f} items/s**, "
        f"{times:.1f}× feedparser's defaults."
    )


def section(rows: dict[str, dict[str, float]], paths: Counter[str], news: str, repeat: int) -> str:
    ours, plain, floor = rows["parse_feed"], rows["feedparser, sanitize/resolve off"], rows["lxml tree only"]
    fast, fp = rows["parse_feed, fast path only"], rows["feedparser"]

    def per_second(row: dict[str, float], items: float | None = None) -> str:
        speed, mbps = (items or row["items"]) / row["median"], row["bytes"] / row["median"] / 1e6
        return f"{speed:,.0f} items/s ({mbps:.0f} MB/s)"

    versions = (
        f"Python {platform.python_version()}, feedparser {feedparser.__version__}, lxml {lxml.__version__}"
    )
    readers = ", ".join(f"{n} {p}" for p, n in paths.most_common())
    share = (ours["median"] - fast["median"]) / ours["median"]
    lines = [
        "## Parsing",
        "",
        f"`python bench/parse.py --write`, {datetime.now(UTC):%Y-%m-%d}: every file of "
        "fastfeedparser-data/benchmark_data (200 real feeds: news outlets and blogs; RSS, Atom, RDF, one "
        f"JSON Feed, six malformed), in one process on one core; CPU seconds, median of {repeat} runs. "
        f"{versions}, {os.cpu_count()} cores. Item counts differ: parse_feed drops repeated and empty "
        "entries.",
        "",
        *table(rows, ref="feedparser", items_of="parse_feed, fast path only"),
        "",
        f"- parse_feed reads the corpus at **{per_second(ours)}**: {fp['median'] / ours['median']:.1f}× "
        f"feedparser's defaults and {plain['median'] / ours['median']:.1f}× feedparser without sanitizing.",
        f"- Which reader took each file: {readers}. The lxml fast path takes every well-formed RSS/Atom/RDF "
        "file of the corpus and gives exactly the Items feedparser gives (tests/test_parse_corpus.py checks "
        "every file); feedparser reads the rest.",
        f"- The {fp['files'] - fast['files']:.0f} files the fast path leaves to others (five malformed ones "
        f"and the JSON Feed) cost {share:.0%} of parse_feed's time: feedparser's lenient parser is the slow "
        "path.",
        "- The aim of 30,000 items/s is **missed** on this corpus: its items are large (6.7 KB each, full "
        "articles in content:encoded), so even building the lxml tree alone runs at "
        f"{per_second(floor, fast['items'])}; on the well-formed files parse_feed does {per_second(fast)}, "
        f"{floor['median'] / fast['median']:.0%} of that floor. What the rest goes to, per item: the "
        "summary's HTML to text (read from its start only), feedparser's rules for dates and links, "
        "normalizing.",
    ]
    if news:
        lines.append(f"- {news}")
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace (or add) the ``## Parsing`` section, leaving the others as they are."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Parsing\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: text + "\n", doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc.rstrip("\n") + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds over the corpus (default 5)")
    parser.add_argument("--write", action="store_true", help="record the table in docs/benchmarks.md")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"needs {CORPUS} (the shared corpus)")
    bodies = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    fast, fast_prepared = fast_path_files(bodies)
    paths: Counter[str] = Counter()
    for body in bodies:
        try:
            paths[parse_feed(body, feed="bench", url=URL, now=NOW).parser] += 1
        except ParseError:
            paths["ParseError"] += 1
    rows = run(
        [
            ("feedparser", feedparser_defaults, bodies),
            ("feedparser, sanitize/resolve off", feedparser_plain, bodies),
            ("parse_feed", watcher_parse, bodies),
            ("parse_feed, fast path only", watcher_parse, fast),
            ("lxml tree only", lxml_tree, fast_prepared),
        ],
        args.repeat,
    )
    news = news_line(args.repeat)
    text = section(rows, paths, news, args.repeat)
    print(text)
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", text)


if __name__ == "__main__":
    main()
