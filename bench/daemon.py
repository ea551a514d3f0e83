"""Scenarios 5 and 6: detection latency through the running daemon, and its footprint.

``watcher run`` polls the farm's feeds every ``interval`` over a database that already holds a million
items (generated once through ``Store.store_items`` and cached in bench/results/). While it runs, probe
items appear in random feeds at random times; each probe matches one rule of its own (so no story
grouping or cooldown holds it back), and its alert reaches a local ``json://`` webhook. Latency = alert
arrival − the moment the item appeared in the farm. The RSS of the daemon's process tree is sampled
throughout.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from farm import healthy_feeds, load_headlines, load_sources
from farmctl import FarmProcess
from measure import RssSampler
from receiver import Receiver
from watcher_tool import ROOT, WATCHLIST, config_text

RESULTS = Path(__file__).resolve().parent / "results"


def _base_items() -> list[object]:
    """Every item of the corpus, as watcher's parser normalizes it."""
    from watcher.errors import ParseError
    from watcher.parse import parse_feed

    items: list[object] = []
    now = datetime.now(UTC)
    for s in load_sources():
        try:
            parsed = parse_feed(s.data, feed="x", url="http://127.0.2.1/feeds/x", content_type=None, now=now)
        except ParseError:
            continue
        items.extend(parsed.items)
    return items


def schema_version() -> int:
    from watcher.store import Store

    with Store.memory() as st:
        return int(st.db.execute("PRAGMA user_version").fetchone()[0])


def build_store(path: Path, *, items: int, feeds: int = 1000, log: bool = True) -> tuple[float, int]:
    """A database of ``items`` real items spread over feeds f0…f<feeds-1> and 90 days; (seconds, bytes)."""
    from watcher.models import Item
    from watcher.store import Store

    base = [i for i in _base_items() if isinstance(i, Item)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    rng = random.Random(1)
    now = datetime.now(UTC)
    per = max(1, items // feeds)
    started = time.perf_counter()
    k = 0
    with Store.open(tmp) as st:
        for fi in range(feeds):
            batch = []
            for _ in range(per):
                b = base[k % len(base)]
                k += 1
                age = timedelta(seconds=rng.uniform(0, 90 * 86400))
                batch.append(dataclasses.replace(b, feed=f"f{fi}", key=f"{b.key}#{k}", published=now - age))
            st.store_items(batch, now=now - timedelta(seconds=rng.uniform(0, 90 * 86400)))
            if log and fi % 100 == 99:
                print(f"    {k:,} items stored ({k / (time.perf_counter() - started):,.0f}/s)", flush=True)
        st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - started
    tmp.rename(path)
    return seconds, path.stat().st_size


def cached_store(items: int, *, log: bool = True) -> tuple[Path, float | None]:
    """bench/results/store-<items>-v<schema>.db, built if absent; (path, build seconds or None if cached)."""
    path = RESULTS / f"store-{items}-v{schema_version()}.db"
    if path.exists():
        return path, None
    if log:
        print(f"  building a database of {items:,} items (once; cached as {path.name}) ...", flush=True)
    seconds, _ = build_store(path, items=items, log=log)
    return path, seconds


@dataclass
class DaemonResult:
    interval: float
    jitter: float
    feeds: int
    stored_items: int
    db_bytes: int
    latencies: list[float] = field(default_factory=list)  # seconds, one per probe that arrived
    probes: int = 0
    rss_peak: int = 0
    rss_samples: list[int] = field(default_factory=list)  # after the first full poll
    first_poll: float = 0.0  # seconds from start until every feed was fetched once
    processes: dict[str, int] = field(default_factory=dict)  # RSS per process at the end
    other_jitter: float = 0.0  # a second run's jitter, and its latencies
    other_latencies: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def rss_median(self) -> float:
        return statistics.median(self.rss_samples) if self.rss_samples else 0.0

    def quantile(self, q: float, *, other: bool = False) -> float:
        """The ``q`` quantile (nearest rank) of the latencies (of the second run's, if ``other``)."""
        xs = sorted(self.other_latencies if other else self.latencies)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def _watchlist(workdir: Path, probes: int) -> Path:
    """The shipped watch list plus one probe rule per sample."""
    path = workdir / "watchlist.yaml"
    rel = os.path.relpath(WATCHLIST, workdir)
    lines = [f"include: [{rel}]", "rules:"]
    for k in range(probes):
        lines += [f"  - id: probe-{k:03d}", f"    title: Latency probe {k}", f"    any: [zqprobe{k:03d}]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_daemon(
    farm: FarmProcess,
    urls: list[str],
    workdir: Path,
    *,
    store: Path | None,
    stored_items: int,
    interval: float = 60,
    jitter: float = 0,
    window: float = 120,
    probes: int = 40,
    latency: tuple[float, float] = (0.05, 0.3),
    parse_workers: int | None = None,
    log: bool = True,
) -> DaemonResult:
    """Run ``watcher run`` over ``urls``; inject ``probes`` items over ``window`` seconds; measure."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db = workdir / "watcher.db"
    if store is not None:
        shutil.copyfile(store, db)
    farm.reset()
    farm.latency(*latency)
    rng = random.Random(7)
    headlines = _probe_headlines()
    targets = rng.sample(healthy_feeds(len(urls)), probes)
    with Receiver() as rx:
        cfg = workdir / "watcher.yaml"
        cfg.write_text(
            config_text(database=db, urls=urls, channel=rx.url, watchlist=_watchlist(workdir, probes),
                        interval=f"{interval:g}s", jitter=f"{jitter:g}s", parse_workers=parse_workers),
            encoding="utf-8",
        )  # fmt: skip
        result = DaemonResult(
            interval, jitter, len(urls), stored_items, db.stat().st_size if db.exists() else 0
        )
        logf = (workdir / "daemon.log").open("w", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(cfg), "--log-level", "warning"],
            stdout=logf, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
        started = time.time()
        try:
            with RssSampler(proc.pid, interval=0.5) as sampler:
                _wait_first_poll(farm, len(urls), proc, timeout=interval + 120)
                result.first_poll = time.time() - started
                if log:
                    print(
                        f"  daemon: first poll of {len(urls)} feeds done after {result.first_poll:.1f} s",
                        flush=True,
                    )
                sent = _inject(farm, targets, headlines, window, rng, sampler, result)
                deadline = time.time() + interval + jitter + 30
                while time.time() < deadline and _arrived(rx, sent) < len(sent) and proc.poll() is None:
                    time.sleep(0.5)
                    result.rss_samples.append(sampler.last)
                result.rss_peak = sampler.peak
                result.processes = sampler.breakdown()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()
        result.probes = len(sent)
        result.latencies = _latencies(rx, sent)
    if proc.returncode not in (0, -signal.SIGTERM):
        result.note = f"daemon exited {proc.returncode}; see {workdir / 'daemon.log'}"
    for leftover in workdir.glob("watcher.db*"):  # a copy of the cached database: gigabytes
        leftover.unlink()
    return result


def _probe_headlines() -> list[str]:
    return [h["title"] for h in load_headlines()]


def _wait_first_poll(farm: FarmProcess, n: int, proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Until every feed has been fetched once (and a moment for the last ones to be stored)."""
    base = farm.stats()["requests"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} before its first poll ended")
        if farm.stats()["requests"] - base >= n:
            time.sleep(3)
            return
        time.sleep(0.2)
    raise RuntimeError("the daemon's first poll did not finish in time")


def _inject(
    farm: FarmProcess,
    targets: list[int],
    headlines: list[str],
    window: float,
    rng: random.Random,
    sampler: RssSampler,
    result: DaemonResult,
) -> dict[str, float]:
    """Add one probe item to each target feed at random moments over ``window``; link → time added."""
    slot = window / len(targets)
    t0 = time.time()
    sent: dict[str, float] = {}
    for k, feed in enumerate(targets):
        at = t0 + k * slot + rng.uniform(0, slot)
        while time.time() < at:
            time.sleep(min(0.2, max(0.0, at - time.time())))
            result.rss_samples.append(sampler.last)
        title = f"{headlines[k % len(headlines)]} zqprobe{k:03d}"
        added = farm.inject(feed, title)
        sent[added["link"]] = float(added["at"])
    return sent


def _arrived(rx: Receiver, sent: dict[str, float]) -> int:
    text = " ".join(str(body) for _, body in rx.snapshot())
    return sum(1 for link in sent if link in text)


def _latencies(rx: Receiver, sent: dict[str, float]) -> list[float]:
    first: dict[str, float] = {}
    for at, body in rx.snapshot():
        text = str(body)
        for link in sent:
            if link in text and link not in first:
                first[link] = at
    return [first[link] - sent[link] for link in sent if link in first]


def db_items(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


__all__ = ["ROOT", "DaemonResult", "build_store", "cached_store", "db_items", "run_daemon"]
