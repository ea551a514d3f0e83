"""Run a command and measure it: wall time, CPU time and peak RSS of its whole process tree.

RSS is sampled every ``interval`` seconds over the process and all its descendants (a parser worker
counts), and the peak of the sum is reported. CPU time comes from ``os.wait4`` (the command and every
child it waited for).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class Run:
    """One measured run."""

    wall: float  # seconds
    cpu: float  # user + system seconds of the tree
    peak_rss: int  # bytes, sum over the process tree at its largest
    returncode: int
    output: str = ""  # stdout + stderr, tail
    background: float = 0.0  # share of the machine's CPU used by other processes meanwhile (0-1)


@dataclass
class Stats:
    """Several runs of one thing: median and range."""

    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else float("nan")


def tree_rss(proc: psutil.Process) -> int:
    """RSS of ``proc`` and all its descendants, in bytes (0 once it is gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class RssSampler:
    """Samples the RSS of a process tree in a thread until stopped; ``peak`` is the largest sum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.last = 0
        self._cpu: dict[int, float] = {}  # last CPU seconds seen per process of the tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.last = tree_rss(self.proc)
            self.peak = max(self.peak, self.last)
            self._sample_cpu()
            self._stop.wait(self.interval)

    def _sample_cpu(self) -> None:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                self._cpu[p.pid] = float(t.user + t.system)

    def breakdown(self) -> dict[str, int]:
        """RSS of each process of the tree now, by a short name (its command line's most telling word)."""
        out: dict[str, int] = {}
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return out
        for p in procs:
            with contextlib.suppress(psutil.Error):
                out[f"{_role(p, self.proc)} {p.pid}"] = int(p.memory_info().rss)
        return out

    @property
    def cpu(self) -> float:
        """CPU seconds of every process of the tree seen so far (up to its last sample)."""
        return sum(self._cpu.values())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


def background_load(seconds: float = 1.0) -> float:
    """Share of the machine's CPU in use (0-1) over ``seconds``: by others, when we are idle."""
    return float(psutil.cpu_percent(interval=seconds)) / 100


QUIET_BUDGET = [180.0]  # seconds of waiting left for the whole run (``wait_quiet`` spends it)


def wait_quiet(*, threshold: float = 0.25, max_wait: float = 60.0) -> float:
    """Wait (up to ``max_wait`` s, within the run's budget) until other processes use under ``threshold``
    of the CPU; return the load.

    The machine may be shared: a run that starts under someone else's test suite measures both.
    """
    started = time.monotonic()
    deadline = started + min(max_wait, QUIET_BUDGET[0])
    load = background_load(0.5)
    while load >= threshold and time.monotonic() < deadline:
        load = background_load()
    QUIET_BUDGET[0] = max(0.0, QUIET_BUDGET[0] - (time.monotonic() - started))
    return load


def _role(p: psutil.Process, root: psutil.Process) -> str:
    """What a process of the tree is: main, forkserver, parser (a pool worker), resource tracker, child."""
    if p.pid == root.pid:
        return "main"
    cmd = " ".join(p.cmdline())
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "forkserver" in cmd:
        parent = p.parent()
        return "parser" if parent is not None and "forkserver" in " ".join(parent.cmdline()) else "forkserver"
    return "child"


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
) -> Run:
    """Run ``argv`` to completion and measure it. Raises ``RuntimeError`` on failure when ``check``."""
    busy0 = _busy()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout or []), daemon=True)
    reader.start()
    with RssSampler(proc.pid) as sampler:
        deadline = started + timeout
        status = 0
        usage = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
    wall = time.perf_counter() - started
    busy = _busy() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    output = "".join(chunks)
    cpu = max((usage.ru_utime + usage.ru_stime) if usage is not None else 0.0, sampler.cpu)
    others = max(0.0, busy - cpu) / (wall * (os.cpu_count() or 1))
    result = Run(wall, cpu, sampler.peak, proc.returncode, output[-4000:], min(1.0, others))
    if check and result.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {result.returncode}:\n{result.output[-2000:]}")
    return result


def repeat(times: int, once: Callable[[int], Run]) -> list[Run]:
    """``once(i)`` for i in range(times)."""
    return [once(i) for i in range(times)]


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"
