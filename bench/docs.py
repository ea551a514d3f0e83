"""The text of our sections of docs/benchmarks.md, from one run's results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import report
from daemon import DaemonResult
from scenarios import Result

LEADING = ("Results",)
RUN_HELP = """\
# Benchmarks

`watcher` next to rss2email, feed2exec and a naive feedparser loop, all polling the same loopback feed
farm in the same run. To run everything (nothing leaves 127.0.0.1):

```sh
pip install -e '.[test,bench]'
python bench/run.py              # scenarios 1-6 and the httpx/httpx2 comparison: ~15 min on 2 cores
python bench/run.py --quick      # the same with small numbers (< 3 min), to check the harness
python bench/parse.py --write    # "Parsing" below
python bench/match.py --write    # "Matching" below (bench/run.py runs it too, for its summary)
python bench/profile.py --write  # "Where the time goes": one cold poll under py-spy
```

`bench/run.py` installs the peers (and httpx2) with pip into virtual environments under `bench/.peers/`
on first use, builds a million-item database once into `bench/results/` (about 90 s), rewrites the
sections below that it owns (all but "Parsing" and "Matching") and keeps each run's raw figures in
`bench/results/run-*.json`.
"""


def _by(results: list[Result], scenario: str, tool: str) -> Result | None:
    return next((r for r in results if r.scenario == scenario and r.tool == tool), None)


def _times(results: list[Result], scenario: str, ref: str, other: str) -> float:
    a, b = _by(results, scenario, ref), _by(results, scenario, other)
    if a is None or b is None:
        return float("nan")
    return b.scaled.median / a.scaled.median


def _mark(ok: bool | None) -> str:
    return "not measured" if ok is None else "**met**" if ok else "**missed**"


def aims(
    results: list[Result], d: DaemonResult | None, clients: dict[tuple[str, int], list[Result]]
) -> list[str]:
    peers = sorted({r.tool for r in results if not r.tool.startswith("watcher")})
    naive = next((p for p in peers if p.startswith("naive")), None)
    vs = {p: _times(results, "cold", "watcher", p) for p in peers}
    lines = []
    if naive is not None:
        ok = vs[naive] >= 20 and all(v > 1 for v in vs.values())
        detail = ", ".join(f"{report.ratio(v)} {p.split(' (')[0]}" for p, v in vs.items())
        lines.append(
            f"- Cold poll at least 20× the naive loop and ahead of both peers: {_mark(ok)} ({detail})."
        )
    warm = _by(results, "warm", "watcher")
    if warm is not None:
        inside = [r for r in results if r.scenario == "warm" and r.tool.startswith("watcher, polls in one")]
        best = min([warm.wall.median, *(r.wall.median for r in inside)])
        more = "".join(f"; {report.secs(r.wall.median)} s {r.tool.removeprefix('watcher, ')}" for r in inside)
        fork = next((r for r in clients.get(("httpx2", 100), []) if r.scenario == "warm"), None)
        if fork is not None:
            more += f"; with httpx2 instead, {report.secs(fork.wall.median)} s"
        lines.append(
            f"- Warm poll of every feed under 2 s with 100 ms server latency: {_mark(best < 2)} "
            f"({report.secs(warm.wall.median)} s with `watcher poll --once`, start-up included{more})."
        )
    if d is not None and d.latencies:
        p95 = d.quantile(0.95)
        other = (
            f"; with the default jitter of {d.other_jitter:g} s, {d.quantile(0.95, other=True):.1f} s"
            if d.other_latencies
            else ""
        )
        lines.append(
            f"- Detection latency p95 within one poll interval + 2 s ({d.interval + 2:g} s): "
            f"{_mark(p95 <= d.interval + 2)} ({p95:.1f} s with `poll.jitter: {d.jitter:g}s`{other})."
        )
        lines.append(
            f"- Daemon RSS under 150 MB with {d.feeds:,} feeds: {_mark(d.rss_peak < 150e6)} "
            f"(median {d.rss_median / 1e6:.0f} MB, peak {d.rss_peak / 1e6:.0f} MB, all processes)."
        )
    return lines


def daemon_lines(d: DaemonResult) -> list[str]:
    per_million = d.db_bytes / d.stored_items * 1e6 if d.stored_items else float("nan")
    latencies = d.latencies or [float("nan")]
    return [
        "| scenario | result |",
        "|---|---|",
        f"| 5. Detection latency: item appears → alert at a local webhook; {d.interval:g} s interval, "
        f"jitter {d.jitter:g} s; {len(d.latencies)} of {d.probes} probes | median {d.quantile(0.5):.1f} s, "
        f"p95 {d.quantile(0.95):.1f} s (min {min(latencies):.1f}, max {max(latencies):.1f}) |",
        *(
            [
                f"| 5. The same with the shipped default jitter of {d.other_jitter:g} s (each poll up to "
                f"{d.other_jitter:g} s late); {len(d.other_latencies)} probes | median "
                f"{d.quantile(0.5, other=True):.1f} s, p95 {d.quantile(0.95, other=True):.1f} s "
                f"(max {max(d.other_latencies):.1f}) |"
            ]
            if d.other_latencies
            else []
        ),
        f"| 6. `watcher run` RSS (all its processes), {d.feeds:,} feeds, {d.stored_items:,} stored items "
        f"| median {d.rss_median / 1e6:.0f} MB, peak {d.rss_peak / 1e6:.0f} MB{_processes(d)} |",
        f"| 6. Database size per million items (real feed items, as stored) | {per_million / 1e9:.2f} GB |",
        f"| The daemon's first poll of every feed, from start | {d.first_poll:.1f} s |",
    ]


def _processes(d: DaemonResult) -> str:
    if len(d.processes) < 2:
        return ""
    parts = [f"{name.rsplit(' ', 1)[0]} {rss / 1e6:.0f} MB" for name, rss in d.processes.items()]
    return f" (at the end: {', '.join(parts)})"


def client_lines(clients: dict[tuple[str, int], list[Result]]) -> list[str]:
    lines = [
        "| client | connections | cold poll, s | warm poll (100 ms latency), s | steady state, s | RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (client, conns), rows in clients.items():
        cells = []
        for kind in ("cold", "warm", "steady"):
            r = next(x for x in rows if x.scenario == kind)
            cells.append(f"{report.secs(r.wall.median)} ({report.spread(r.wall.lo, r.wall.hi)})")
        lines.append(f"| {client} | {conns} | {' | '.join(cells)} | {rows[0].rss.median / 1e6:.0f} MB |")
    return lines


def client_verdict(clients: dict[tuple[str, int], list[Result]]) -> str:
    """Which client is faster at 100 connections, poll by poll, and whether the runs' ranges are apart."""
    a, b = clients.get(("httpx", 100)), clients.get(("httpx2", 100))
    if a is None or b is None:
        return ""
    parts, wins, losses = [], 0, 0
    for ra, rb in zip(a, b, strict=True):
        gain = 1 - rb.wall.median / ra.wall.median
        apart = rb.wall.hi < ra.wall.lo or ra.wall.hi < rb.wall.lo
        parts.append(f"{ra.scenario} {gain:+.0%}{'' if apart else ' (ranges overlap)'}")
        wins += apart and gain > 0
        losses += apart and gain < 0
    if wins == len(parts):
        verdict = "httpx2 is faster on every poll, with the runs' ranges apart: it wins the poll as a whole."
    elif losses:
        verdict = "httpx2 is slower on some poll: keep httpx."
    else:
        verdict = "httpx2 does not win on every poll: keep httpx."
    return f"At 100 connections, time saved by httpx2: {', '.join(parts)}. {verdict}"


def sections(
    results: list[Result],
    clients: dict[tuple[str, int], list[Result]],
    d: DaemonResult | None,
    matching: list[dict[str, float]] | None,
    **kw: Any,
) -> tuple[dict[str, str], str]:
    full, peer_feeds, runs = kw["full"], kw["peer_feeds"], kw["runs"]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = (
        "python bench/run.py"
        + (" --quick" if kw["quick"] else "")
        + (f" --feeds {full}" if full != 1000 else "")
    )
    out: list[str] = [
        "## Results",
        "",
        f"Run of {when} (`{cmd}`, {kw['elapsed'] / 60:.0f} min). Machine: {report.machine()}.",
        f"Versions: {report.versions(kw['versions'])}.",
        "",
        f"Each figure is the median of {runs} run(s) with min–max; every run is the tool's own command,",
        "start-up included. Cold and steady-state polls see 50–300 ms of latency per request,",
        "warm polls 100 ms.",
        f"watcher polls all {full:,} feeds; the peers, which poll one feed after another, poll the first "
        f"{peer_feeds} (the same mix of sizes) and their times are scaled to {full:,} feeds "
        '(column 5); ratios compare those. "watcher, polls in one process" times `Pipeline.poll_all()` '
        'inside one running process, as the daemon polls (bench/inproc.py). "others\' CPU" is the share '
        "of the machine that other processes used during the runs (the machine may be shared; each run "
        "waits up to 30 s for it to calm down first).",
        "",
        *report.poll_table(results, full=full, reference="watcher"),
        "",
    ]
    if d is not None:
        out += [*daemon_lines(d), ""]
        if d.note:
            out += [d.note, ""]
    if matching:
        row = ", ".join(f"{r['rules']:,.0f} rules: {r['ratio']:,.0f}×" for r in matching)
        out += [
            f'4. Matching alone (bench/match.py, see "Matching"): the compiled matcher against one regex '
            f"per phrase, {row}. The peers have no rule matching (feed2exec can filter titles by one regex "
            "per feed).",
            "",
        ]
    scope = [] if full == 1000 else [f"The aims are stated for 1,000 feeds; this run polled {full:,}.", ""]
    out += ["### Aims", "", *scope, *aims(results, d, clients), ""]
    notes = list(kw.get("notes", []))
    steady = _by(results, "steady", "watcher")
    if steady is not None and any(f is not None and f > steady.items for f in steady.found):
        notes.append(
            f"In some steady-state runs watcher found more new items than the {steady.items} added: a feed "
            "that had failed to parse before parsed after its change, and all its items were new."
        )
    if notes:
        out += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    sect = {"Results": "\n".join(out)}
    if len(clients) > 1:
        sect["HTTP client: httpx or httpx2"] = "\n".join(
            [
                "## HTTP client: httpx or httpx2",
                "",
                f"The same watcher source polling the same {full:,} feeds inside one running process "
                "(bench/inproc.py: no start-up in the figures), with httpx (watcher's dependency) or "
                "`httpx2` (a maintained fork with the same API, swapped in before watcher is imported), "
                "at watcher's default of 20 connections and at 100. Cold: each run into a new database.",
                "",
                *client_lines(clients),
                "",
                client_verdict(clients),
                "",
                HTTP_DECISION,
                "",
            ]
        )
    sect["How it is measured"] = method(full=full, peer_feeds=peer_feeds, farm_note=str(kw["farm_note"]))
    return sect, RUN_HELP


HTTP_DECISION = (
    "**Decision:** the client is one import, `watcher/httpclient.py`. httpx stays the default (the "
    "dependency we pin and test against); `pip install httpx2` and `WATCHER_HTTP_CLIENT=httpx2` switch "
    "to the fork, and the fetch tests pass with either. Making httpx2 the default is for when it has a "
    "release history of its own; the figures above are why it is offered."
)

METHOD = """\
## How it is measured

- **Feed farm** (bench/farm.py, its own process): feed *i* is a file of the real corpus
  (`fastfeedparser-data/benchmark_data`: 199 RSS, Atom and RDF feeds of 2 KB to 2.5 MB, six of them
  malformed; the JSON feed left out) with every guid and id made its own. Files are taken in an order that
  interleaves sizes, so the peers' first feeds have the corpus's mix. Feeds are spread over 100 loopback
  addresses (127.0.2.x), as real feeds live on many hosts. Every answer carries an ETag and Last-Modified;
  a conditional GET of an unchanged feed gets 304. Bodies are gzipped (level 1) for clients that accept
  it. {farm_note}
- **Scenarios 1-3** (bench/scenarios.py): cold = every run from an empty state; warm = the same state
  polled again, nothing changed; steady = before each run, 5% of the feeds get one new item (a real
  headline of the parade week). Peak RSS is the largest sum over the tool's process tree, sampled every
  50 ms.
- **watcher**: `watcher poll --once` with the shipped watch list, 100 connections (`poll.concurrency`; the
  default of 20 makes a 1,000-feed poll at 100 ms latency last at least 5 s), 2 per host, a `json://`
  webhook channel. Its cold poll stores and matches everything and alerts nothing older than
  `alert_max_age`.
- **naive loop** (bench/naive.py): `feedparser.parse(url)` per feed, a JSON seen-set, one regex per
  watch-list rule (all its phrases and aliases); no conditional GET, so its warm poll fetches everything.
- **rss2email** (`r2e run`, Maildir delivery; first run `r2e run --no-send`, which remembers without
  sending) and **feed2exec** (`feed2exec fetch` with the maildir output; first run `--catchup`; its
  default sequential mode, as `--parallel` measured slower here). Neither matches rules; both keep
  ETag/Last-Modified and send conditional GETs.
- The peers poll one feed after another, so their time grows linearly with the feeds: they poll
  {peer_feeds} feeds and their seconds are multiplied by {scale:g} (`--peer-feeds {full}` measures them
  at full size, in a long run).
- **Scenario 5**: `watcher run` polls every feed each 60 s over a copy of the million-item database,
  first with `poll.jitter: 0s`, then with the shipped default of 30 s. Probe items (a real headline plus
  a unique word, matched by a probe rule of its own, so that no story grouping holds it back) appear in
  random feeds at random moments over 90 seconds; latency is the alert's arrival at the webhook minus
  the moment the item appeared. The peers have no daemon: run from
  cron, their latency is the cron interval plus a full pass (the steady state, column 5).
- **Scenario 6**: the database is built through `Store.store_items` from every item of the corpus as
  watcher parses it (real titles and summaries), replicated over 1,000 feeds and 90 days.
"""


def method(*, full: int, peer_feeds: int, farm_note: str) -> str:
    return METHOD.format(farm_note=farm_note, peer_feeds=peer_feeds, scale=full / peer_feeds, full=full)
