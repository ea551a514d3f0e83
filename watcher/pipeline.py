"""One poll of one feed, the stages in order: fetch → parse → store → match → stories → alerts (outbox).

This module is the only place that catches a stage's errors per feed, records them on the feed's row and
carries on; nothing a feed does can stop the others.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from watcher.config import FeedConfig, LoadedConfig
from watcher.errors import ParseError, StoreError
from watcher.fetch import Fetcher, backoff_delay
from watcher.logs import redactor
from watcher.match import Matcher
from watcher.models import StoredItem
from watcher.parse import parse_feed
from watcher.rules import Rule, Watchlist
from watcher.signals import Signals
from watcher.store import Store, from_iso

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    """What one poll of one feed did."""

    feed: str
    status: str  # ok | not_modified | unchanged | error | skipped
    new: int = 0
    edited: int = 0
    duplicates: int = 0
    seen: int = 0
    matches: int = 0
    alerts: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    parser: str | None = None
    elapsed: float = 0.0
    rules_matched: list[str] = field(default_factory=list)  # one id per new match (for metrics)


@dataclass
class Rules:
    """The watch list and its compiled matcher, swapped together on reload."""

    watchlist: Watchlist
    matcher: Matcher
    by_id: dict[str, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for r in self.watchlist.rules}


def dedupe_key(*parts: object) -> str:
    digest = hashlib.sha1("|".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()[:20]
    return f"watcher-{digest}"


class Pipeline:
    """Polls feeds into the store and the outbox. Holds no global state; the daemon owns one."""

    def __init__(
        self,
        *,
        loaded: LoadedConfig,
        store: Store,
        rules: Rules,
        fetcher: Fetcher,
        executor: Executor | None = None,
        executor_factory: Callable[[], Executor] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.rules = rules
        self.fetcher = fetcher
        self.executor = executor
        self.executor_factory = executor_factory
        self._feeds: tuple[LoadedConfig | None, dict[str, FeedConfig]] = (None, {})
        self.clock = clock
        self.on_alert = on_alert

    @property
    def feeds(self) -> dict[str, FeedConfig]:
        """Enabled feeds by name; built once per loaded config (asked on every poll), not per call."""
        if self._feeds[0] is not self.loaded:
            self._feeds = (self.loaded, {f.name: f for f in self.loaded.config.feeds if f.enabled})
        return self._feeds[1]

    def sync_feeds(self) -> None:
        self.store.sync_feeds((f.name, f.url, f.publisher_name, f.tier) for f in self.loaded.config.feeds)

    async def poll_all(self, names: Iterable[str] | None = None, *, force: bool = True) -> list[PollReport]:
        """Poll the named feeds (default: all enabled) concurrently; the fetcher bounds concurrency."""
        feeds = self.feeds
        chosen = [feeds[n] for n in names] if names is not None else list(feeds.values())
        return list(await asyncio.gather(*(self.poll_feed(f, force=force) for f in chosen)))

    async def poll_feed(self, feed: FeedConfig, *, force: bool = False) -> PollReport:
        started = asyncio.get_running_loop().time()
        try:
            report = await self._poll(feed, force=force)
        except StoreError as exc:
            report = PollReport(feed=feed.name, status="error", error=f"database: {exc}")
            log.error("feed %s: %s", feed.name, report.error)
        report.elapsed = asyncio.get_running_loop().time() - started
        return report

    async def _poll(self, feed: FeedConfig, *, force: bool) -> PollReport:
        state = self.store.feed_state(feed.name)
        if state is None:
            self.sync_feeds()
            state = self.store.feed_state(feed.name)
        assert state is not None
        now = self.clock()
        if not force and state.next_fetch_at and from_iso(state.next_fetch_at) > now:
            return PollReport(feed=feed.name, status="skipped")
        result = await self.fetcher.fetch(
            feed.name, feed.url, etag=state.etag, last_modified=state.last_modified
        )
        now = self.clock()
        if result.status == "error":
            return self._failed(
                feed, result.error or "fetch failed", now, state.consecutive_failures, result.retry_after
            )
        if result.status == "not_modified":
            self.store.record_success(
                feed.name,
                now=now,
                status="not_modified",
                etag=result.etag or state.etag,
                last_modified=result.last_modified or state.last_modified,
                body_hash=None,
            )
            return PollReport(feed=feed.name, status="not_modified")
        body_hash = hashlib.sha1(result.body, usedforsecurity=False).hexdigest()
        if body_hash == state.body_hash:
            self.store.record_success(
                feed.name,
                now=now,
                status="unchanged",
                etag=result.etag,
                last_modified=result.last_modified,
                body_hash=body_hash,
            )
            return PollReport(feed=feed.name, status="unchanged")
        job = functools.partial(
            parse_feed, result.body, feed=feed.name, url=result.url, content_type=result.content_type, now=now
        )
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(self.executor, job)
        except ParseError as exc:
            return self._failed(feed, exc.message, now, state.consecutive_failures, None)
        except BrokenProcessPool:
            # the parser process died (killed, out of memory): start a new one; this feed is tried again
            # at its next poll, like any failure, and the feeds after it are parsed by the new process
            self._restart_parser()
            return self._failed(
                feed,
                "the parser process died while reading this feed; restarted",
                now,
                state.consecutive_failures,
                None,
            )
        except Exception as exc:  # a parser bug must not stop the daemon: record it on the feed
            log.exception("feed %s: parser crashed", feed.name)
            return self._failed(
                feed, f"parser crashed: {type(exc).__name__}: {exc}", now, state.consecutive_failures, None
            )
        report = PollReport(feed=feed.name, status="ok", warnings=parsed.warnings, parser=parsed.parser)
        with self.store.db.atomic():
            stored = self.store.store_items(parsed.items, now=now)
            self._match_and_alert(feed, stored, now=now, report=report)
            self.store.record_success(
                feed.name,
                now=now,
                status="ok",
                etag=result.etag,
                last_modified=result.last_modified,
                body_hash=body_hash,
                title=parsed.title or None,
                new_items=report.new,
                warning="; ".join(parsed.warnings)[:500] or None,
            )
        for warning in parsed.warnings[:3]:
            log.info("feed %s: %s", feed.name, warning)
        if report.alerts and self.on_alert is not None:
            self.on_alert()
        return report

    def _restart_parser(self) -> None:
        if self.executor_factory is None:
            return
        broken, self.executor = self.executor, self.executor_factory()
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        log.error("the parser process died; a new one was started")

    def _failed(
        self, feed: FeedConfig, error: str, now: datetime, failures: int, retry_after: float | None
    ) -> PollReport:
        error = redactor.redact(error)  # a feed URL's ?token=... must not reach the status or the logs
        delay = backoff_delay(failures + 1, self.loaded.feed_interval(feed), retry_after=retry_after)
        count = self.store.record_failure(
            feed.name, now=now, error=error, next_fetch_at=now + timedelta(seconds=delay)
        )
        level = logging.WARNING if count < 5 else logging.ERROR
        log.log(level, "feed %s: %s (failure %d in a row; next try in %.0fs)", feed.name, error, count, delay)
        return PollReport(feed=feed.name, status="error", error=error)

    def _match_and_alert(
        self,
        feed: FeedConfig,
        stored: list[StoredItem],
        *,
        now: datetime,
        report: PollReport,
    ) -> None:
        """Match new and edited items; alert on fresh ones (older than alert_max_age: matched, no alert)."""
        max_age = self.loaded.config.alert_max_age
        signals = Signals(self.store, channels=self.loaded.config.channels)
        quiet_closed = False  # stories are closed only when a fresh match may join one (not every poll)
        for s in stored:
            if s.state == "seen":
                report.seen += 1
                continue
            if s.state == "duplicate":
                report.duplicates += 1
                continue
            if s.state == "new":
                report.new += 1
            else:
                report.edited += 1
            for match in self.rules.matcher.match(s.item, tags=feed.tags):
                if self.store.add_match(s.id, match, now=now) is None:
                    continue  # this item already matched this rule (e.g. before an edit)
                report.matches += 1
                report.rules_matched.append(match.rule_id)
                fresh = (now - s.item.published).total_seconds() <= max_age
                if not fresh:
                    continue
                rule = self.rules.by_id.get(match.rule_id)
                if rule is None:
                    continue
                if not quiet_closed:
                    signals.close_quiet(now)
                    quiet_closed = True
                outcome = signals.on_match(rule=rule, feed=feed, stored=s, match=match, now=now)
                if outcome.alert_id is not None:
                    report.alerts += 1
