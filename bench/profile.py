"""Where a cold poll's CPU goes: ``watcher poll --once`` under py-spy, every thread and process sampled.

``python bench/profile.py [--feeds 1000] [--write]`` prints the share of CPU samples spent in (under) each
watcher function and the top functions by own time; ``--write`` records it in docs/benchmarks.md under
``## Where the time goes``. Needs ``py-spy`` (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from farmctl import FarmProcess
from watcher_tool import Watcher


def pool_safe() -> tuple[bool, str]:
    """Whether parse errors survive the trip back from a parser process (else the pool breaks on one)."""
    import pickle

    from watcher.errors import ParseError

    try:
        pickle.loads(pickle.dumps(ParseError("feed", "message")))
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


HERE = Path(__file__).resolve().parent
SECTION = "Where the time goes"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if m is None:
        return frame
    file = m.group("file")
    short = file.split("site-packages/")[-1] if "site-packages/" in file else file.split("/work/main/")[-1]
    return f"{m.group('func')} ({short})"


def aggregate(raw: Path) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """(samples, inclusive counts, own counts) from py-spy's raw (collapsed) output."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_name(f) for f in stack.split(";") if f]
        for f in set(frames):
            incl[f] += count
        if frames:
            own[frames[-1]] += count
    return total, incl, own


def profile(farm: FarmProcess, urls: list[str], workdir: Path, *, parse_workers: int | None) -> Path:
    """One cold poll under ``py-spy record``; the raw samples' path."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    tool = Watcher(workdir, parse_workers=parse_workers)
    tool.fresh(urls)
    farm.reset()
    farm.latency(0.05, 0.3)
    raw = workdir / "py-spy.txt"
    cmd = [spy, "record", "--subprocesses", "--format", "raw", "--rate", "200", "--output", str(raw),
           "--", *tool.argv(first=True)]  # fmt: skip
    subprocess.run(cmd, capture_output=True, check=True)
    return raw


def section(raw: Path, *, feeds: int, note: str = "") -> str:
    total, incl, own = aggregate(raw)
    mine = [(f, n) for f, n in incl.most_common() if "(watcher/" in f][:18]
    lines = [
        f"## {SECTION}",
        "",
        f"`python bench/profile.py --feeds {feeds}`: one cold poll of {feeds:,} feeds (latency 50–300 ms) "
        f"under py-spy, every thread and process; {total:,} CPU samples at 200 Hz. {note}".rstrip(),
        "",
        "| watcher function (and everything under it) | share of CPU samples |",
        "|---|---:|",
    ]
    lines += [f"| `{f}` | {n / total:.0%} |" for f, n in mine]
    lines += ["", "| own time (not under a callee) | share |", "|---|---:|"]
    lines += [f"| `{f}` | {n / total:.0%} |" for f, n in own.most_common(12)]
    return "\n".join(lines) + "\n"


def main() -> None:
    from report import write_sections

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--parse-workers", type=int, default=None, help="override poll.parse_workers")
    ap.add_argument("--write", action="store_true", help=f"record it under '## {SECTION}'")
    args = ap.parse_args()
    workers = args.parse_workers
    note = ""
    if workers is None and not pool_safe()[0]:
        workers = 0
        note = "Parsing in a thread (`poll.parse_workers: 0`): see the note under Results."
    with FarmProcess(feeds=args.feeds) as farm:
        raw = profile(farm, farm.urls(), HERE / "results" / "profile", parse_workers=workers)
    text = section(raw, feeds=args.feeds, note=note)
    print(text)
    if args.write:
        from report import DOCS

        header = DOCS.read_text(encoding="utf-8").split("\n## ", 1)[0] if DOCS.exists() else "# Benchmarks"
        write_sections({SECTION: text}, header)
        print(f"updated {DOCS}")


if __name__ == "__main__":
    main()
