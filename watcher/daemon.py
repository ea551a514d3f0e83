"""The daemon: one APScheduler 3 job per feed on asyncio, a delivery job, clean shutdown on SIGTERM/SIGINT.

``Runtime`` holds what one loaded config needs (store, rules, fetcher, parser pool, pipeline, deliverer);
``poll_once()`` and ``Daemon.run()`` both build one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import multiprocessing
import os
import random
import signal
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher import __version__
from watcher.config import FeedConfig, LoadedConfig
from watcher.deliver import Deliverer, DeliveryReport
from watcher.errors import StoreError
from watcher.fetch import Fetcher
from watcher.match import compile_watchlist
from watcher.pipeline import Pipeline, PollReport, Rules
from watcher.render import Renderer, user_template_dir
from watcher.rules import load_watchlist
from watcher.service import Service
from watcher.store import Store

log = logging.getLogger(__name__)

USER_AGENT = f"watcher/{__version__} (+https://github.com/watcher-project/watcher)"
STOP_TIMEOUT = 8.0


def load_rules(loaded: LoadedConfig) -> Rules:
    watchlist = load_watchlist(loaded.watchlist, channels=set(loaded.config.channels))
    return Rules(watchlist=watchlist, matcher=compile_watchlist(watchlist))


def make_executor(workers: int) -> Executor:
    if workers <= 0:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher-parse")
    # forkserver: forking a process that runs threads (scheduler, apprise sends) is unsafe
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))


class DatabaseLock:
    """One daemon per database: an exclusive flock on ``<database>.lock`` holding the pid."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the state directory
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # owner-only, as the database
        f = open(fd, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the daemon's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "?"
            f.close()
            raise StoreError(
                f"another watcher (pid {pid}) is already running on this database; stop it first"
                f" (lock file {self.path})"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._file.close()
            self._file = None


@dataclass
class Runtime:
    loaded: LoadedConfig
    store: Store
    rules: Rules
    fetcher: Fetcher
    executor: Executor
    pipeline: Pipeline
    deliverer: Deliverer


@contextlib.asynccontextmanager
async def open_runtime(loaded: LoadedConfig, *, rules: Rules | None = None) -> AsyncIterator[Runtime]:
    rules = rules or load_rules(loaded)
    poll = loaded.config.poll
    store = Store.open(loaded.database)
    fetcher = Fetcher(
        user_agent=poll.user_agent or USER_AGENT,
        connect_timeout=poll.connect_timeout,
        read_timeout=poll.read_timeout,
        deadline=poll.deadline,
        max_bytes=poll.max_bytes,
        max_connections=poll.concurrency,
        per_host=poll.per_host,
        max_redirects=poll.max_redirects,
    )
    executor = make_executor(poll.parse_workers)
    renderer = Renderer(user_template_dir(loaded.path))
    deliverer = Deliverer(store, loaded.config.channels, loaded.config.delivery, renderer=renderer)
    pipeline = Pipeline(
        loaded=loaded,
        store=store,
        rules=rules,
        fetcher=fetcher,
        executor=executor,
        executor_factory=functools.partial(make_executor, poll.parse_workers),
    )
    try:
        store.recover_sending()
        pipeline.sync_feeds()
        yield Runtime(loaded, store, rules, fetcher, executor, pipeline, deliverer)
    finally:
        await fetcher.aclose()
        (pipeline.executor or executor).shutdown(wait=False, cancel_futures=True)
        store.close()


@dataclass
class OnceReport:
    polls: list[PollReport]
    delivery: DeliveryReport


async def poll_once(loaded: LoadedConfig) -> OnceReport:
    """Poll every feed once, match, write alerts, deliver what is due; then return."""
    lock = DatabaseLock(loaded.database)
    lock.acquire()
    try:
        async with open_runtime(loaded) as rt:
            polls = await rt.pipeline.poll_all()
            delivery = await rt.deliverer.run_once()
            return OnceReport(polls, delivery)
    finally:
        lock.release()


class Daemon:
    """``watcher run``: polls on schedule until SIGTERM/SIGINT (or ``stop()``)."""

    def __init__(self, loaded: LoadedConfig, *, config_path: Path | None = None, watch: bool = True) -> None:
        self.loaded = loaded
        self.config_path = config_path
        self.runtime: Runtime | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._delivery: asyncio.Task[None] | None = None
        self._first_polls: dict[str, str] = {}  # feed -> first outcome, for the offline hint
        self._hinted = False  # the offline hint is judged once, after every feed's first poll
        self.service = Service(self, watch=watch)  # sd_notify, reload, health, metrics, housekeeping

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> int:
        lock = DatabaseLock(self.loaded.database)
        lock.acquire()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            async with open_runtime(self.loaded) as rt:
                self.runtime = rt
                rt.pipeline.on_alert = self.wake_delivery
                self.scheduler = AsyncIOScheduler(timezone=UTC)
                self._schedule(rt)
                self.scheduler.start()
                self._delivery = asyncio.create_task(self._delivery_loop(), name="watcher-delivery")
                n = len(rt.pipeline.feeds)
                log.info(
                    "watcher %s running: %d feeds, %d rules, %d channels, database %s",
                    __version__,
                    n,
                    len(rt.rules.watchlist.rules),
                    len(self.loaded.config.channels),
                    self.loaded.database,
                )
                try:
                    await self.service.start()
                    await self._stop.wait()
                    log.info("stopping")
                    self.service.stopping()
                finally:
                    self.stop()  # also when the start failed: the delivery loop must end
                    await self._shutdown()
                    await self.service.close()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            lock.release()
        log.info("stopped")
        return 0

    def _schedule(self, rt: Runtime) -> None:
        for feed in rt.pipeline.feeds.values():
            self.schedule_feed(feed)

    def feed_trigger(self, feed: FeedConfig) -> IntervalTrigger:
        """Every ``interval``, exactly: the jitter is a fixed offset per feed (see schedule_feed), so the
        gap between two polls of a feed never exceeds its interval (per-run jitter made it up to 2x)."""
        return IntervalTrigger(seconds=self.loaded.feed_interval(feed))

    def schedule_feed(self, feed: FeedConfig) -> None:
        """Add the feed's poll job at a random offset within ``poll.jitter``: feeds start spread out."""
        assert self.scheduler is not None
        interval, jitter = self.loaded.feed_interval(feed), self.loaded.config.poll.jitter
        spread = random.uniform(0, min(interval, jitter))
        self.scheduler.add_job(
            self._poll_job,
            self.feed_trigger(feed),
            args=[feed.name],
            id=f"feed:{feed.name}",
            name=f"poll {feed.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval / 2)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=spread),
        )

    def wake_delivery(self) -> None:
        """Ask the delivery loop to look at the outbox now (new alerts were written)."""
        self._wake.set()

    async def _tracked(self, coro: Any) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await coro
        finally:
            if task is not None:
                self._running.discard(task)

    async def _poll_job(self, name: str) -> None:
        if self._stop.is_set() or self.runtime is None:
            return
        feed = self.runtime.pipeline.feeds.get(name)
        if feed is None:
            return
        try:
            report = await self._tracked(self.runtime.pipeline.poll_feed(feed))
        except asyncio.CancelledError:
            # shutdown cut a poll short: nothing was half-written (each store step is one transaction),
            # and the feed's state is as before the poll, so the next start simply polls it again
            log.info("feed %s: poll cut short by shutdown", name)
            return
        self.service.observe_poll(report)
        self._offline_hint(name, report)
        if report.status == "ok":
            log.info(
                "feed %s: %d new, %d edited, %d matches, %d alerts (%s, %.2fs)",
                name,
                report.new,
                report.edited,
                report.matches,
                report.alerts,
                report.parser,
                report.elapsed,
            )
        else:
            log.debug("feed %s: %s", name, report.status)

    def _offline_hint(self, name: str, report: PollReport) -> None:
        """Once every feed has been tried: if nearly none resolved, say so once (instead of 35 puzzles)."""
        if self._hinted or name in self._first_polls or self.runtime is None:
            return
        self._first_polls[name] = report.error or report.status
        feeds = self.runtime.pipeline.feeds
        if len(self._first_polls) < len(feeds) or len(feeds) < 3:
            return
        unresolved = sum("cannot resolve host" in v for v in self._first_polls.values())
        self._hinted = True
        if unresolved >= 0.8 * len(feeds):
            log.warning(
                "%d of %d feeds cannot be resolved: is this machine offline? watcher keeps retrying each"
                " feed with backoff; meanwhile `watcher demo` shows it working without a network",
                unresolved,
                len(feeds),
            )

    async def _delivery_loop(self) -> None:
        """Start a delivery pass, then sleep until woken by new alerts or for at most two seconds.

        Passes are not awaited here: a channel slow to answer stays with the pass that is sending to
        it (the deliverer skips busy channels), and the next pass still delivers to the others.
        """
        while not self._stop.is_set():
            self._wake.clear()
            task = asyncio.create_task(self._delivery_pass(), name="watcher-delivery-pass")
            self._running.add(task)  # shutdown waits for it (then cancels it) like a running poll
            task.add_done_callback(self._running.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=2.0)

    async def _delivery_pass(self) -> None:
        assert self.runtime is not None
        try:
            await self.runtime.deliverer.run_once()
        except Exception:  # a bug in one pass must not end delivery for the daemon's life
            log.exception("delivery pass failed; retrying")

    async def _shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT / 2
        await asyncio.sleep(0)  # jobs the scheduler already started see the stop flag or register
        pending: set[asyncio.Task[Any]] = set()
        while True:  # polls and passes that start while we wait are waited for too
            pending = {t for t in (*self._running, self._delivery) if t is not None and not t.done()}
            if not pending or loop.time() >= deadline:
                break
            await asyncio.wait(pending, timeout=deadline - loop.time())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=STOP_TIMEOUT / 2)
