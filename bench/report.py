"""The results as a table (terminal and Markdown) and the update of docs/benchmarks.md.

docs/benchmarks.md is shared: ``## Parsing`` and ``## Matching`` belong to bench/parse.py and
bench/match.py. ``write_sections`` replaces only the sections it is given (by their ``## `` title) and
the header above the first section, and leaves every other section as it stands.
"""

from __future__ import annotations

import math
import os
import platform
import re
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil
from scenarios import Result

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SCENARIO_NAMES = {
    "cold": "1. Cold poll (fetch, parse, store, match)",
    "warm": "2. Warm poll (every feed 304)",
    "steady": "3. Steady state (5% of feeds changed)",
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB memory, {platform.system()} {platform.release()}"


def version_of(python: Path | str, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def versions(extra: dict[str, str]) -> str:
    py = sys.executable
    parts = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    for dist in ("watcher", "httpx", "feedparser", "lxml"):
        parts.append(f"{dist} {version_of(py, dist)}")
    parts += [f"{k} {v}" for k, v in extra.items()]
    return ", ".join(parts)


def secs(x: float) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:.2f}" if round(x, 2) < 10 else f"{x:.1f}" if round(x, 1) < 100 else f"{x:,.0f}"


def spread(stats_lo: float, stats_hi: float) -> str:
    return f"{secs(stats_lo)}–{secs(stats_hi)}"


def ratio(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.1f}×" if x < 10 else f"{x:,.0f}×"


def poll_table(results: Sequence[Result], *, full: int, reference: str) -> list[str]:
    """Markdown rows for scenarios 1-3: one per (scenario, tool); ratios against ``reference``'s median."""
    lines = [
        f"| scenario | tool | feeds polled | wall s, median (min–max) | s at {full:,} feeds "
        "| items/s | new items found | peak RSS | vs watcher | others' CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in ("cold", "warm", "steady"):
        rows = [r for r in results if r.scenario == scenario]
        ref = next((r for r in rows if r.tool == reference), None)
        for r in rows:
            at_full = r.scaled.median
            scaled_note = "" if r.scale == 1 else f" (×{r.scale:.3g})"
            rate = f"{r.items / r.wall.median:,.0f}" if r.items and scenario == "cold" else "—"
            known = sorted({f for f in r.found if f is not None})
            found = (
                "—" if not known else f"{known[0]:,}" if len(known) == 1 else f"{known[0]:,}–{known[-1]:,}"
            )
            vs = "—" if ref is None or r is ref else ratio(at_full / ref.scaled.median) + " slower"
            if ref is not None and r is not ref and at_full < ref.scaled.median:
                vs = ratio(ref.scaled.median / at_full) + " faster"
            if ref is not None and r is not ref and abs(at_full / ref.scaled.median - 1) < 0.05:
                vs = "same"
            lines.append(
                f"| {SCENARIO_NAMES[scenario]} | {r.tool} | {r.feeds:,} | {secs(r.wall.median)} "
                f"({spread(r.wall.lo, r.wall.hi)}) | {secs(at_full)}{scaled_note} | {rate} | {found} "
                f"| {r.rss.median / 1e6:.0f} MB | {vs} | {r.background.median:.0%} |"
            )
    return lines


def terminal(lines: list[str]) -> str:
    """A Markdown table for a terminal: pipes kept, alignment row dropped, columns padded."""
    rows = [
        [c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if not ln.startswith("|---")
    ]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows)


def write_sections(
    sections: dict[str, str], header: str, path: Path = DOCS, *, leading: Sequence[str] = ()
) -> None:
    """Replace the header and the named ``## `` sections of ``path``; keep all other sections.

    Sections named in ``leading`` come first; the others keep their place; new ones go last.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    parts = re.split(r"(?m)^(?=## )", text)
    body = [p for p in parts if p.startswith("## ")]  # what precedes the first section is our header
    new = {title: content.rstrip("\n") + "\n\n" for title, content in sections.items()}
    out = [new[t] for t in leading if t in new]
    done = set(leading)
    for part in body:
        title = part.splitlines()[0][3:].strip()
        if title in done:
            continue
        out.append(new.get(title, part.rstrip("\n") + "\n\n"))
        done.add(title)
    out += [content for title, content in new.items() if title not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((header.rstrip("\n") + "\n\n" + "".join(out)).rstrip("\n") + "\n", encoding="utf-8")
