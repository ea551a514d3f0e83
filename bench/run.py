"""All the benchmarks in one run: watcher against rss2email, feed2exec and a naive feedparser loop.

    python bench/run.py [--feeds 1000] [--quick] [--no-docs]

Prints a table and rewrites our sections of docs/benchmarks.md (everything but ``## Parsing`` and
``## Matching``). Needs the project installed (``pip install -e .``), ``psutil``, and the shared feed
corpus (../shared/data or $WATCHER_SHARED). The peers and httpx2 are installed on first use into virtual
environments under bench/.peers/ (pip, from the package registry); the million-item database is built
once into bench/results/. About 15 minutes by default on 2 cores (the first run adds ~3 minutes of
installs and the database); ``--quick`` checks everything in under 3 minutes with smaller numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from profile import pool_safe  # noqa: E402

import daemon  # noqa: E402
import farmcheck  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402
from farmctl import FarmProcess  # noqa: E402
from measure import Run  # noqa: E402
from peers import Feed2Exec, Naive, Rss2Email, Tool  # noqa: E402
from rulesets import naive_rules  # noqa: E402
from scenarios import Plan, Result, inproc_scenarios, poll_scenarios  # noqa: E402
from watcher_tool import HTTPX2_PIN, Watcher  # noqa: E402

import docs  # noqa: E402

WORK = HERE / "results" / "work"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--feeds", type=int, default=1000, help="feeds in the farm and in watcher's scenarios")
    ap.add_argument("--peer-feeds", type=int, default=None, help="feeds the peers poll (default 40; scaled)")
    ap.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    ap.add_argument("--quick", action="store_true", help="small numbers, to check the harness (< 3 min)")
    ap.add_argument("--skip", default="", help="comma list of: peers,httpx2,daemon,matching")
    ap.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    ap.add_argument("--render", metavar="RUN.json", help="only rewrite the docs from a saved run")
    args = ap.parse_args(argv)
    if args.render:
        _write_docs(*_load(Path(args.render)))
        print(f"updated {report.DOCS}")
        return 0
    quick = args.quick
    full = args.feeds if not quick or args.feeds != 1000 else 200
    peer_feeds = args.peer_feeds or (8 if quick else 30)
    runs = args.runs or (1 if quick else 3)
    skip = set(filter(None, args.skip.split(",")))
    plan = Plan(runs=runs, quiet_wait=5 if quick else 30)
    measure.QUIET_BUDGET[0] = 20 if quick else 90
    started = time.time()
    safe, why = pool_safe()
    workers = None if safe else 0
    notes: list[str] = []
    if not safe:
        notes.append(
            "watcher ran with `poll.parse_workers: 0` (parsing in a thread): with a parser process, the "
            "first unparseable feed breaks the pool for every later feed (ParseError does not unpickle: "
            f"{why})."
        )
    print(
        f"machine: {report.machine()}\nfeeds: {full:,} (peers: {peer_feeds}); runs per figure: {runs}",
        flush=True,
    )
    results: list[Result] = []
    extra_versions: dict[str, str] = {}
    with FarmProcess(feeds=full) as farm:
        urls = farm.urls()
        full_load, warm_load = farmcheck.check(farm, urls)
        farm_note = (
            f"The farm alone serves all {full:,} feeds in {full_load.wall:.2f} s with "
            f"{full_load.farm_cpu:.2f} s of its CPU ({full_load.body_bytes / 1e6:.0f} MB gzip), and {full:,} "
            f"304s with {warm_load.farm_cpu:.2f} s."
        )
        print(farm_note, flush=True)
        main_tool = Watcher(WORK / "watcher", parse_workers=workers, label="watcher")
        results += _scenarios(main_tool, farm, urls, full, plan)
        clients: dict[tuple[str, int], list[Result]] = {}
        combos = [("httpx", 100)] if "httpx2" in skip else [("httpx", 100), ("httpx", 20), ("httpx2", 100)]
        for client, conns in combos:
            label = f"watcher, polls in one process ({client}, {conns} conn.)"
            inproc = Watcher(WORK / f"inproc-{client}-{conns}", client=client, concurrency=conns,
                             parse_workers=workers, label=label)  # fmt: skip
            print(f"\n{label}: {len(urls)} feeds", flush=True)
            cold_runs = 1 if conns == 20 else runs  # the default's cold poll: once, for reference
            clients[(client, conns)] = inproc_scenarios(inproc, farm, urls, plan=plan, cold_runs=cold_runs)
            if client == "httpx2":
                extra_versions["httpx2"] = HTTPX2_PIN
        results += clients[("httpx", 100)]
        if "peers" not in skip:
            peers: list[Tool] = [
                Naive(WORK / "naive", naive_rules()),
                Rss2Email(WORK / "rss2email"),
                Feed2Exec(WORK / "feed2exec"),
            ]
            for tool in peers:
                results += _scenarios(tool, farm, urls[:peer_feeds], full, plan)
                if tool.name != "naive":  # same feedparser as watcher's
                    extra_versions[tool.name] = tool.version
        daemon_result = None
        if "daemon" not in skip:
            daemon_result = _daemon(farm, urls, quick, workers)
    matching = None if "matching" in skip else _matching(quick)
    elapsed = time.time() - started
    table = report.poll_table(results, full=full, reference="watcher")
    print("\n" + report.terminal(table))
    if daemon_result is not None:
        print("\n" + report.terminal(docs.daemon_lines(daemon_result)))
    if len(clients) > 1:
        print("\n" + report.terminal(docs.client_lines(clients)))
    print(f"\nwhole run: {elapsed / 60:.1f} min")
    meta = {"full": full, "peer_feeds": peer_feeds, "runs": runs, "quick": quick, "farm_note": farm_note,
            "notes": notes, "versions": extra_versions, "elapsed": elapsed}  # fmt: skip
    _save(results, clients, daemon_result, matching, meta)
    if not args.no_docs:
        _write_docs(results, clients, daemon_result, matching, meta)
        print(f"updated {report.DOCS}")
    return 0


def _scenarios(tool: Tool, farm: FarmProcess, urls: list[str], full: int, plan: Plan) -> list[Result]:
    print(f"\n{tool.label}: {len(urls)} feeds", flush=True)
    return poll_scenarios(tool, farm, urls, full=full, plan=plan)


def _daemon(farm: FarmProcess, urls: list[str], quick: bool, workers: int | None) -> daemon.DaemonResult:
    items = 20_000 if quick else 1_000_000
    store, built = daemon.cached_store(items)
    print(
        f"\nwatcher run: detection latency and footprint ({len(urls)} feeds, {items:,} stored items)",
        flush=True,
    )
    if quick:
        result = daemon.run_daemon(farm, urls, WORK / "daemon", store=store, stored_items=items,
                                   interval=10, window=20, probes=8, parse_workers=workers)  # fmt: skip
    else:
        result = daemon.run_daemon(farm, urls, WORK / "daemon", store=store, stored_items=items,
                                   interval=60, window=90, probes=30, parse_workers=workers)  # fmt: skip
        print("  again with the shipped default jitter (30 s)", flush=True)
        again = daemon.run_daemon(
            farm, urls, WORK / "daemon-jitter", store=store, stored_items=items,
            interval=60, jitter=30, window=90, probes=30, parse_workers=workers,
        )  # fmt: skip
        result.other_jitter, result.other_latencies = again.jitter, again.latencies
    if built is not None:
        result.note = (result.note + f" The {items:,}-item database took {built:.0f} s to build.").strip()
    return result


def _matching(quick: bool) -> list[dict[str, float]] | None:
    try:
        import match
    except ImportError:
        return None
    print("\nmatching (bench/match.py) ...", flush=True)
    rows: list[dict[str, float]] = match.run(0.6 if quick else 1.5)
    return rows


Clients = dict[tuple[str, int], list[Result]]


def _save(
    results: list[Result], clients: Clients, d: daemon.DaemonResult | None, m: object, meta: dict[str, Any]
) -> None:
    out = HERE / "results" / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "polls": [asdict(r) for r in results],
        "clients": {f"{c}:{n}": [asdict(r) for r in rows] for (c, n), rows in clients.items()},
        "daemon": asdict(d) if d is not None else None,
        "matching": m,
        "meta": meta,
    }
    out.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    print(
        f"raw results: {out} (python bench/run.py --render {out.relative_to(HERE.parent)} rewrites the docs)"
    )


def _load(
    path: Path,
) -> tuple[list[Result], Clients, daemon.DaemonResult | None, list[dict[str, float]] | None, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))

    def result(x: dict[str, Any]) -> Result:
        r = Result(**{k: v for k, v in x.items() if k != "runs"})
        r.runs = [Run(**y) for y in x["runs"]]
        return r

    results = [result(x) for x in data["polls"]]
    clients = {
        (k.split(":")[0], int(k.split(":")[1])): [result(x) for x in v] for k, v in data["clients"].items()
    }
    d = daemon.DaemonResult(**data["daemon"]) if data["daemon"] else None
    return results, clients, d, data["matching"], data["meta"]


def _write_docs(
    results: list[Result],
    clients: Clients,
    d: daemon.DaemonResult | None,
    matching: list[dict[str, float]] | None,
    meta: dict[str, Any],
) -> None:
    sections, header = docs.sections(results, clients, d, matching, **meta)
    report.write_sections(sections, header, leading=docs.LEADING)


if __name__ == "__main__":
    sys.exit(main())
