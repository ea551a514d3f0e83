"""Polls inside one running watcher (as the daemon does them): no process start, no config load per poll.

    python bench/inproc.py CONFIG FARM_CONTROL_URL RUNS COLD_RUNS [httpx2]

Times ``Pipeline.poll_all()`` with the runtime already open (``watcher.daemon.open_runtime``): COLD_RUNS
cold polls (each into a new database, latency 50–300 ms), then on the last database RUNS warm polls (100 ms,
every feed 304) and RUNS steady-state polls (5% of the feeds changed before each, 50–300 ms). Prints one
JSON object: seconds per poll, new items found, and peak RSS of this process and of its children.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import sys
import time
import urllib.request
from typing import Any


def _farm(control: str, path: str) -> None:
    urllib.request.urlopen(urllib.request.Request(control + path, method="POST"), timeout=120).read()


async def _polls(config: str, control: str, runs: int, cold_runs: int) -> dict[str, Any]:
    from watcher.config import load_config
    from watcher.daemon import open_runtime

    loaded = load_config(config)
    n = len(loaded.config.feeds)
    out: dict[str, Any] = {
        "cold": [],
        "warm": [],
        "steady": [],
        "found": {"cold": [], "warm": [], "steady": []},
    }

    async def poll(rt: Any, kind: str, latency: str, mutate: int | None = None) -> None:
        _farm(control, f"/_farm/latency?{latency}")
        if mutate is not None:
            _farm(control, f"/_farm/mutate?percent=5&among={n}&seed={mutate}")
        started = time.perf_counter()
        reports = await rt.pipeline.poll_all()
        out[kind].append(time.perf_counter() - started)
        out["found"][kind].append(sum(r.new for r in reports))

    for k in range(cold_runs):
        _farm(control, "/_farm/reset")
        fresh = dataclasses.replace(loaded, database=loaded.database.with_name(f"inproc-{k}.db"))
        async with open_runtime(fresh) as rt:
            await poll(rt, "cold", "min=0.05&max=0.3")
            if k < cold_runs - 1:
                continue
            for _ in range(runs):
                await poll(rt, "warm", "min=0.1&max=0.1")
            for i in range(runs):
                await poll(rt, "steady", "min=0.05&max=0.3", mutate=100 + i)
    _farm(control, "/_farm/reset")
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["children_rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return out


def main() -> int:
    config, control, runs, cold_runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if sys.argv[5:] == ["httpx2"]:
        import httpx2  # type: ignore[import-not-found,unused-ignore]  # bench/.peers only

        sys.modules["httpx"] = httpx2
    print(json.dumps(asyncio.run(_polls(config, control, runs, cold_runs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
