"""Start bench/farm.py as its own process (so it neither shares a GIL nor counts in anyone's RSS) and drive
it through its control API."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent


class FarmProcess:
    """``with FarmProcess(feeds=1000) as farm: farm.urls(); farm.mutate(5)``."""

    def __init__(
        self, *, feeds: int = 1000, hosts: int = 100, latency: str = "0", gzip: bool = True, exclude: str = ""
    ) -> None:
        self.argv = [sys.executable, str(HERE / "farm.py"), "--feeds", str(feeds), "--hosts", str(hosts),
                     "--latency", latency]  # fmt: skip
        if not gzip:
            self.argv.append("--no-gzip")
        if exclude:
            self.argv += ["--exclude", exclude]
        self.proc: subprocess.Popen[str] | None = None
        self.control = ""
        self.feeds = feeds

    def __enter__(self) -> FarmProcess:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the feed farm did not start")
        self.control = json.loads(line)["control"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def call(self, path: str, *, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        method = "GET" if path.startswith(("/_farm/feeds", "/_farm/stats", "/_farm/items")) else "POST"
        req = urllib.request.Request(self.control + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)

    def urls(self) -> list[str]:
        result: list[str] = self.call("/_farm/feeds")
        return result

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self.call("/_farm/stats")
        return result

    def items(self, among: int) -> int:
        """Items in the first ``among`` feeds' documents as they stand."""
        result: int = self.call(f"/_farm/items?among={among}")
        return result

    def reset(self) -> None:
        self.call("/_farm/reset")

    def latency(self, lo: float, hi: float | None = None) -> None:
        self.call(f"/_farm/latency?min={lo}&max={hi if hi is not None else lo}")

    def mutate(self, percent: float, *, among: int | None = None, seed: int = 1) -> list[int]:
        q = f"percent={percent}&seed={seed}" + (f"&among={among}" if among else "")
        result: list[int] = self.call(f"/_farm/mutate?{q}")
        return result

    def inject(self, feed: int, title: str, summary: str = "") -> dict[str, Any]:
        spec = {"title": title, "summary": summary}
        result: dict[str, Any] = self.call(f"/_farm/inject?feed={feed}", body=spec)
        return result

    def cpu_seconds(self) -> float:
        """CPU time the farm process has used so far."""
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)
