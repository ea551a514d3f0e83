"""What makes ``watcher run`` a service: sd_notify and the watchdog, live reload, health and metrics,
housekeeping (retention prune, ops checks).

The daemon owns one ``Service`` and calls it at four points: ``start()`` once the scheduler runs (sends
READY=1), ``observe_poll()`` after each poll, ``stopping()`` on SIGTERM, ``close()`` last.

A reload (SIGHUP, or a save of the config or any watch-list file) loads and compiles the new version
in a worker thread; if it is valid, the new rules, config and channels are swapped in at once, on the
event loop, between two polls' matching steps, and feed jobs are added, removed or re-timed (never
skipped: a re-timed feed keeps its earlier next run). If it is not valid, every problem is logged as
``path:line:column: message`` and the daemon runs on as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import LoadedConfig, load_config
from watcher.errors import ConfigError, WatcherError
from watcher.health import HealthCheck, HealthServer
from watcher.logs import channel_secrets, redactor
from watcher.metrics import Metrics
from watcher.ops import OpsEvent, check_ops, policy_for
from watcher.reload import diff, watch_files
from watcher.sdnotify import Notifier
from watcher.status import prune
from watcher.yamledit import watchlist_files

if TYPE_CHECKING:
    from watcher.daemon import Daemon
    from watcher.pipeline import PollReport, Rules

log = logging.getLogger(__name__)

OPS_EVERY = 300.0
PRUNE_EVERY = 86400.0
STATUS_EVERY = 15.0


@dataclass(frozen=True, slots=True)
class Version:
    """One loaded config with its compiled watch list: what a reload swaps in whole."""

    loaded: LoadedConfig
    rules: Rules


def load_version(config_path: Path | None) -> Version:
    """Load and validate the config and its watch list, and compile the matcher. Raises ConfigError."""
    from watcher.daemon import load_rules

    loaded = load_config(config_path)
    return Version(loaded, load_rules(loaded))


def _timed(send: Callable[..., Any], metrics: Metrics) -> Callable[..., Any]:
    """Wrap a deliverer's send function to count sends and time them per channel."""

    async def timed(name: str, channel: Any, delivery: Any) -> Any:
        loop = asyncio.get_running_loop()
        started = loop.time()
        ok = False
        try:
            result = await send(name, channel, delivery)
            ok = bool(result.ok)
            return result
        finally:  # a timeout cancels the send: it counts as a failure
            metrics.delivery(name, ok=ok, seconds=loop.time() - started)

    return timed


class Service:
    """sd_notify, watchdog, reload, health listener, metrics and housekeeping for one daemon."""

    def __init__(self, daemon: Daemon, *, watch: bool = True, notifier: Notifier | None = None) -> None:
        self.daemon = daemon
        self.watch = watch
        self.notifier = notifier or Notifier.from_environ()
        self.metrics = Metrics()
        self.server: HealthServer | None = None
        self.health = HealthCheck(
            scheduler_running=lambda: daemon.scheduler is not None and bool(daemon.scheduler.running),
            connection=lambda: daemon.runtime.store.db.conn if daemon.runtime is not None else None,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_wanted = asyncio.Event()
        self._stop_watch = asyncio.Event()
        self.reloads = 0  # finished reload attempts, good or bad

    # ── the daemon's four calls ──────────────────────────────────────────────────────────

    async def start(self) -> None:
        """Start the listener, watchers and housekeeping; then tell systemd we are ready."""
        rt = self.daemon.runtime
        assert rt is not None and self.daemon.scheduler is not None
        redactor.set_secrets(channel_secrets(rt.loaded.config.channels))
        rt.deliverer.send = _timed(rt.deliverer.send, self.metrics)
        self._in_force()
        http = rt.loaded.config.http
        if http.enabled:
            self.server = HealthServer(
                http.listen,
                health=self.health,
                metrics=self.metrics,
                before_scrape=lambda: self.metrics.set_outbox(rt.store.outbox_depth()),
            )
            try:
                await self.server.start()
            except OSError as exc:
                raise WatcherError(
                    f"http.listen {http.listen}: cannot listen there: {exc.strerror or exc}"
                ) from exc
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self._spawn(self._reload_loop(), "watcher-reload")
        self._spawn(self.notifier.watchdog_loop(self.health), "watcher-watchdog")
        if self.notifier.enabled:
            self._spawn(self._status_loop(), "watcher-status")
        if self.watch and self.daemon.config_path is not None:
            self._spawn(
                watch_files(self._watched, self._files_changed, stop=self._stop_watch), "watcher-files"
            )
        now = datetime.now(UTC)
        for job, every, first, name in (
            (self._ops_job, OPS_EVERY, 30.0, "ops"),
            (self._prune_job, PRUNE_EVERY, 60.0, "prune"),
        ):
            self.daemon.scheduler.add_job(
                job,
                IntervalTrigger(seconds=every),
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(min(every / 2, 3600)),
                next_run_time=now + timedelta(seconds=first),
            )
        self.notifier.ready(self._status_text())

    def observe_poll(self, report: PollReport) -> None:
        self.metrics.observe_poll(report)
        for rule_id in report.rules_matched:
            self.metrics.matched(rule_id)

    def stopping(self) -> None:
        self.notifier.stopping("stopping: finishing polls and deliveries in flight")

    async def close(self) -> None:
        self._stop_watch.set()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.server is not None:
            await self.server.close()

    # ── reload ───────────────────────────────────────────────────────────────────────────

    def request_reload(self, why: str = "SIGHUP") -> None:
        """Ask for a reload (safe from a signal handler); requests during a reload coalesce into one more."""
        log.info("reload requested (%s)", why)
        self._reload_wanted.set()

    async def _files_changed(self, paths: set[Path]) -> None:
        self.request_reload("changed: " + ", ".join(sorted(p.name for p in paths)))

    def _watched(self) -> list[Path]:
        rt = self.daemon.runtime
        files = [self.daemon.config_path] if self.daemon.config_path is not None else []
        if rt is not None:
            files += watchlist_files(rt.loaded.watchlist) or [rt.loaded.watchlist]
        return [f for f in files if f is not None]

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            try:
                await self.reload()
            except Exception:  # a bug in a reload must not end reloading (or the daemon)
                log.exception("reload failed unexpectedly; still running on the previous version")

    async def reload(self) -> bool:
        """Load, validate and swap in the config and watch list. True if a new version is in force."""
        rt = self.daemon.runtime
        assert rt is not None
        self.notifier.reloading("reloading config and watch list")
        try:
            try:
                version = await asyncio.to_thread(load_version, self.daemon.config_path)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("%s", problem)
                log.error(
                    "reload refused (%d problem%s): still running on the version loaded before",
                    len(exc.problems),
                    "" if len(exc.problems) == 1 else "s",
                )
                self.metrics.reloaded(ok=False)
                return False
            changes = diff(
                rt.loaded.config, rt.rules.watchlist, version.loaded.config, version.rules.watchlist
            )
            self.apply(version)
            for warning in version.loaded.warnings:
                log.warning("%s", warning)
            for line in changes.lines():
                log.info("reload: %s", line)
            self.metrics.reloaded(ok=True)
            return True
        finally:
            self.reloads += 1
            self.notifier.ready(self._status_text())

    def apply(self, version: Version) -> None:
        """Swap the new version in (synchronously: no poll runs in between) and fix the feed jobs."""
        rt, scheduler = self.daemon.runtime, self.daemon.scheduler
        assert rt is not None and scheduler is not None
        loaded = version.loaded
        if loaded.database != rt.loaded.database:
            loaded = _keep_database(loaded, rt.loaded.database)
        rt.loaded = rt.pipeline.loaded = self.daemon.loaded = loaded
        rt.rules = rt.pipeline.rules = version.rules
        rt.deliverer.channels = loaded.config.channels
        redactor.set_secrets(channel_secrets(loaded.config.channels))
        rt.pipeline.sync_feeds()
        wanted = rt.pipeline.feeds
        for job in scheduler.get_jobs():
            name = job.id.removeprefix("feed:")
            if job.id.startswith("feed:") and name not in wanted:
                job.remove()
        for name, feed in wanted.items():
            job = scheduler.get_job(f"feed:{name}")
            if job is None:
                self.daemon.schedule_feed(feed)
                continue
            trigger = self.daemon.feed_trigger(feed)
            if (trigger.interval, trigger.jitter) != (job.trigger.interval, job.trigger.jitter):
                soonest = datetime.now(UTC) + trigger.interval
                next_run = min(job.next_run_time, soonest) if job.next_run_time else soonest
                job.modify(trigger=trigger, next_run_time=next_run)
        self._in_force()

    # ── housekeeping ─────────────────────────────────────────────────────────────────────

    async def _ops_job(self) -> None:
        self.check_ops_now()

    def check_ops_now(self) -> list[OpsEvent]:
        """Run the ops checks (feed down/recovered, silences) now; the scheduler does it every 5 min."""
        rt = self.daemon.runtime
        if rt is None:
            return []
        cfg = rt.loaded.config
        events = check_ops(
            rt.store,
            active_rules={r.id for r in rt.rules.watchlist.rules if r.enabled},
            ops_channel=cfg.ops_channel,
            now=datetime.now(UTC),
            policy=policy_for(cfg),
        )
        if any(e.sent for e in events) and cfg.ops_channel:
            self.daemon.wake_delivery()
        return events

    async def _prune_job(self) -> None:
        rt = self.daemon.runtime
        if rt is None:
            return
        counts = prune(rt.store, retention=rt.loaded.config.retention, now=datetime.now(UTC))
        if any(counts.values()):
            log.info(
                "retention: pruned %d items and %d alerts", counts.get("items", 0), counts.get("alerts", 0)
            )

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            self.notifier.status(self._status_text())

    def _status_text(self) -> str:
        rt = self.daemon.runtime
        if rt is None:
            return "starting"
        feeds, rules = len(rt.pipeline.feeds), sum(r.enabled for r in rt.rules.watchlist.rules)
        outbox = rt.store.outbox_depth()
        return f"polling {_n(feeds, 'feed')} with {_n(rules, 'rule')}; outbox {outbox}"

    def _in_force(self) -> None:
        rt = self.daemon.runtime
        if rt is not None:
            rules = sum(r.enabled for r in rt.rules.watchlist.rules)
            self.metrics.in_force(rules=rules, feeds=len(rt.pipeline.feeds))

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _keep_database(loaded: LoadedConfig, database: Path) -> LoadedConfig:
    from dataclasses import replace

    log.warning("reload: the database path changed to %s; it takes effect on restart", loaded.database)
    return replace(loaded, database=database)
