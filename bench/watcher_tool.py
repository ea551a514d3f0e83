"""``watcher`` as a benchmark contender: a generated config over the farm's feeds, and the httpx2 variant.

The httpx2 variant runs the same source (``PYTHONPATH`` = the repository) in its own virtual environment
under ``bench/.peers/watcher-httpx2`` holding watcher's dependencies plus ``httpx2``, through
``bench/httpx2_shim.py``, which puts ``httpx2`` in place of ``httpx`` before watcher is imported. No file of
``watcher/`` changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from peers import PEERS_DIR, Tool, _version

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WATCHLIST = ROOT / "config" / "watchlist.yaml"
HTTPX2_PIN = "2.16.2"


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


def config_text(
    *,
    database: Path,
    urls: list[str],
    channel: str | None,
    watchlist: Path = WATCHLIST,
    interval: str = "10m",
    jitter: str = "30s",
    concurrency: int = 100,
    per_host: int = 2,
    parse_workers: int | None = None,
) -> str:
    lines = [
        f"database: {_q(str(database))}",
        f"watchlist: {_q(str(watchlist))}",
        "alert_max_age: 24h",
        "poll:",
        f"  interval: {interval}",
        f"  jitter: {jitter}",
        f"  concurrency: {concurrency}",
        f"  per_host: {per_host}",
    ]
    if parse_workers is not None:
        lines.append(f"  parse_workers: {parse_workers}")
    lines.append("feeds:")
    lines += [f"  - {{name: f{i}, url: {_q(u)}}}" for i, u in enumerate(urls)]
    if channel:
        lines += ["channels:", "  hook:", f"    url: {_q(channel)}"]
    return "\n".join(lines) + "\n"


def httpx2_venv() -> Path:
    """bench/.peers/watcher-httpx2: watcher's dependencies (from pyproject.toml) and httpx2."""
    venv = PEERS_DIR / "watcher-httpx2"
    python = venv / "bin" / "python"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    wanted = [*deps, f"httpx2=={HTTPX2_PIN}"]
    marker = venv / "installed.txt"  # what was installed, so a dependency added to pyproject.toml follows
    if python.exists() and marker.exists() and marker.read_text(encoding="utf-8") == "\n".join(wanted):
        return venv
    print(f"installing watcher's dependencies and httpx2=={HTTPX2_PIN} into {venv} ...", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not install httpx2: {done.stderr[-2000:]}")
    marker.write_text("\n".join(wanted), encoding="utf-8")
    return venv


class Watcher(Tool):
    """``watcher poll --once`` over a fresh database (cold) or the last one (warm, steady)."""

    def __init__(
        self,
        workdir: Path,
        *,
        channel: str | None = None,
        client: str = "httpx",
        concurrency: int = 100,
        per_host: int = 2,
        parse_workers: int | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__("watcher", workdir)
        self.channel = channel
        self.client = client
        self.concurrency = concurrency
        self.per_host = per_host
        self.parse_workers = parse_workers
        if client == "httpx2":
            self.python = httpx2_venv() / "bin" / "python"
            self.entry = [str(self.python), str(HERE / "httpx2_shim.py")]
        else:
            self.python = Path(sys.executable)
            self.entry = [sys.executable, "-m", "watcher"]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.version = f"{_version(self.python, client)} ({client})"
        self.label = label or f"watcher ({client}, {concurrency} conn.)"

    def _setup(self) -> None:
        text = config_text(
            database=self.workdir / "watcher.db",
            urls=self.urls,
            channel=self.channel,
            concurrency=self.concurrency,
            per_host=self.per_host,
            parse_workers=self.parse_workers,
        )
        (self.workdir / "watcher.yaml").write_text(text, encoding="utf-8")

    def argv(self, *, first: bool) -> list[str]:
        cfg = str(self.workdir / "watcher.yaml")
        return [*self.entry, "poll", "--once", "--config", cfg, "--log-level", "warning"]

    def inproc_argv(self, control: str, runs: int, cold_runs: int) -> list[str]:
        """bench/inproc.py: polls inside one running process."""
        cfg = str(self.workdir / "watcher.yaml")
        extra = ["httpx2"] if self.client == "httpx2" else []
        return [str(self.python), str(HERE / "inproc.py"), cfg, control, str(runs), str(cold_runs), *extra]
