"""Scenarios 1-3 for any tool: cold poll, warm poll (every feed answers 304), steady state (5% change).

Every tool polls the same farm. A run is one invocation of the tool's own command (start-up included,
as a cron job or ``watcher poll --once`` pays it), measured by bench/measure.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from farmctl import FarmProcess
from measure import Run, Stats, run, wait_quiet
from peers import Tool
from watcher_tool import Watcher


@dataclass
class Result:
    """Several runs of one tool in one scenario."""

    scenario: str
    tool: str
    feeds: int  # feeds this tool polled
    scale: float  # multiply its seconds by this to compare at the full feed count (1.0: measured at full)
    items: int  # items per run: in the documents (cold) or added (steady)
    runs: list[Run] = field(default_factory=list)
    found: list[int | None] = field(default_factory=list)  # new items the tool reported per run
    requests: list[dict[str, int]] = field(default_factory=list)  # farm counters per run
    note: str = ""

    @property
    def wall(self) -> Stats:
        return Stats([r.wall for r in self.runs])

    @property
    def scaled(self) -> Stats:
        return Stats([r.wall * self.scale for r in self.runs])

    @property
    def rss(self) -> Stats:
        return Stats([float(r.peak_rss) for r in self.runs])

    @property
    def cpu(self) -> Stats:
        return Stats([r.cpu for r in self.runs])

    @property
    def background(self) -> Stats:
        return Stats([r.background for r in self.runs])


_FOUND = re.compile(r"(\d+) new items")


def found_in(tool: Tool, out: str, emitted_before: int, *, first: bool) -> int | None:
    """New items a run reported: from its summary line, else from the messages it emitted (None: a
    first run that remembers without emitting, so tells nothing)."""
    m = _FOUND.search(out)
    if m is not None:
        return int(m.group(1))
    return None if first else tool.emitted() - emitted_before


@dataclass(frozen=True, slots=True)
class Plan:
    runs: int = 3
    cold_latency: tuple[float, float] = (0.05, 0.3)
    warm_latency: float = 0.1
    steady_percent: float = 5.0
    timeout: float = 900.0
    quiet_wait: float = 30.0  # seconds to wait for other processes to calm down before a run


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def _measure(tool: Tool, farm: FarmProcess, result: Result, *, first: bool, plan: Plan) -> None:
    wait_quiet(max_wait=plan.quiet_wait)
    before, emitted = farm.stats(), tool.emitted()
    r = run(tool.argv(first=first), cwd=tool.workdir, env=tool.env, timeout=plan.timeout)
    result.runs.append(r)
    result.requests.append(_delta(farm.stats(), before))
    result.found.append(found_in(tool, r.output, emitted, first=first))


def poll_scenarios(
    tool: Tool,
    farm: FarmProcess,
    urls: list[str],
    *,
    full: int,
    plan: Plan,
    steady: bool = True,
    log: bool = True,
) -> list[Result]:
    """Cold runs (each from an empty state), then warm runs, then (if ``steady``) steady-state runs."""
    n = len(urls)
    scale = full / n
    farm.reset()
    cold = Result("cold", tool.label, n, scale, farm.items(n))
    farm.latency(*plan.cold_latency)
    for i in range(plan.runs):
        tool.fresh(urls)
        _measure(tool, farm, cold, first=True, plan=plan)
        _say(log, cold, i)
    warm = Result("warm", tool.label, n, scale, 0)
    farm.latency(plan.warm_latency)
    for i in range(plan.runs):
        _measure(tool, farm, warm, first=False, plan=plan)
        _say(log, warm, i)
    if not steady:
        farm.reset()
        return [cold, warm]
    changed = max(1, round(n * plan.steady_percent / 100))
    state = Result("steady", tool.label, n, scale, changed)
    farm.latency(*plan.cold_latency)
    for i in range(plan.runs):
        farm.mutate(plan.steady_percent, among=n, seed=100 + i)
        _measure(tool, farm, state, first=False, plan=plan)
        _say(log, state, i)
    farm.reset()
    return [cold, warm, state]


def inproc_scenarios(
    tool: Watcher, farm: FarmProcess, urls: list[str], *, plan: Plan, cold_runs: int | None = None
) -> list[Result]:
    """The same three scenarios as polls inside one running watcher (bench/inproc.py)."""
    tool.fresh(urls)
    farm.reset()
    wait_quiet(max_wait=plan.quiet_wait)
    argv = tool.inproc_argv(farm.control, plan.runs, cold_runs or plan.runs)
    r = run(argv, cwd=tool.workdir, env=tool.env, timeout=plan.timeout)
    data = json.loads(r.output.strip().splitlines()[-1])
    n = len(urls)
    items = {"cold": farm.items(n), "warm": 0, "steady": max(1, round(n * plan.steady_percent / 100))}
    out = []
    for kind in ("cold", "warm", "steady"):
        res = Result(kind, tool.label, n, 1.0, items[kind], found=list(data["found"][kind]))
        res.runs = [Run(w, 0.0, r.peak_rss, 0, "", r.background) for w in data[kind]]
        out.append(res)
        print(
            f"  {tool.label:<34} {kind:<6} {' '.join(f'{w:.2f}' for w in data[kind])} s "
            f"(process peak RSS {r.peak_rss / 1e6:.0f} MB)",
            flush=True,
        )
    return out


def _say(log: bool, result: Result, i: int) -> None:
    if not log:
        return
    r = result.runs[i]
    req = result.requests[i]
    print(
        f"  {result.tool:<34} {result.scenario:<6} run {i + 1}: {r.wall:7.2f} s  cpu {r.cpu:6.2f} s  "
        f"rss {r.peak_rss / 1e6:5.0f} MB  found {'-' if result.found[i] is None else result.found[i]:>6}  "
        f"200s {req.get('ok', 0):>5} 304s {req.get('not_modified', 0):>5}  others' CPU {r.background:4.0%}",
        flush=True,
    )
