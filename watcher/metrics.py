"""Prometheus metrics, in one ``Metrics`` object with its own registry (never the process-global one).

The daemon owns one and passes it to whoever counts: ``observe_poll`` after each poll, ``matched`` per
new match, ``delivery`` per send, ``set_outbox`` before each scrape. ``render()`` gives the text
exposition that ``/metrics`` serves.

    watcher_polls_total{feed,status}            polls by outcome (ok, not_modified, unchanged, error, skipped)
    watcher_fetch_errors_total{feed}            failed polls (fetch or parse)
    watcher_items_total{state}                  items seen in polls: new, edited, duplicate, seen
    watcher_matches_total{rule}                 new (item, rule) matches
    watcher_alerts_sent_total{channel}          deliveries sent
    watcher_alerts_failed_total{channel}        failed send attempts (each retry counts)
    watcher_outbox_depth                        deliveries pending or being sent
    watcher_poll_duration_seconds               one poll of one feed, fetch to commit
    watcher_delivery_duration_seconds{channel}  one send
    watcher_last_poll_timestamp_seconds         end of the latest poll (Unix time)
    watcher_reloads_total{result}               config and watch-list reloads: ok, failed
    watcher_rules, watcher_feeds                rules and feeds in force
"""

from __future__ import annotations

import time
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = str(CONTENT_TYPE_LATEST)
_POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PollLike(Protocol):
    """What ``observe_poll`` reads (watcher.pipeline.PollReport has it)."""

    @property
    def feed(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def new(self) -> int: ...
    @property
    def edited(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def seen(self) -> int: ...
    @property
    def elapsed(self) -> float: ...


class Metrics:
    """Every metric watcher exports; cheap to call from the event loop (prometheus_client is thread-safe)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter("watcher_polls", "Feed polls by outcome", ["feed", "status"], registry=r)
        self.fetch_errors = Counter(
            "watcher_fetch_errors", "Failed polls (fetch or parse) by feed", ["feed"], registry=r
        )
        self.items = Counter("watcher_items", "Items read in polls, by state", ["state"], registry=r)
        self.matches = Counter("watcher_matches", "New matches by rule", ["rule"], registry=r)
        self.alerts_sent = Counter(
            "watcher_alerts_sent", "Deliveries sent by channel", ["channel"], registry=r
        )
        self.alerts_failed = Counter(
            "watcher_alerts_failed", "Failed send attempts by channel", ["channel"], registry=r
        )
        self.outbox = Gauge("watcher_outbox_depth", "Deliveries pending or being sent", registry=r)
        self.poll_seconds = Histogram(
            "watcher_poll_duration_seconds", "One poll of one feed", buckets=_POLL_BUCKETS, registry=r
        )
        self.send_seconds = Histogram(
            "watcher_delivery_duration_seconds",
            "One send to a channel",
            ["channel"],
            buckets=_SEND_BUCKETS,
            registry=r,
        )
        self.last_poll = Gauge(
            "watcher_last_poll_timestamp_seconds", "When the latest poll ended (Unix time)", registry=r
        )
        self.reloads = Counter("watcher_reloads", "Config and watch-list reloads", ["result"], registry=r)
        self.rules = Gauge("watcher_rules", "Enabled rules in force", registry=r)
        self.feeds = Gauge("watcher_feeds", "Enabled feeds in force", registry=r)

    def observe_poll(self, report: PollLike) -> None:
        self.polls.labels(report.feed, report.status).inc()
        if report.status == "error":
            self.fetch_errors.labels(report.feed).inc()
        for state, n in (
            ("new", report.new),
            ("edited", report.edited),
            ("duplicate", report.duplicates),
            ("seen", report.seen),
        ):
            if n:
                self.items.labels(state).inc(n)
        if report.status != "skipped":
            self.poll_seconds.observe(report.elapsed)
            self.last_poll.set(time.time())

    def matched(self, rule_id: str, n: int = 1) -> None:
        self.matches.labels(rule_id).inc(n)

    def delivery(self, channel: str, *, ok: bool, seconds: float) -> None:
        (self.alerts_sent if ok else self.alerts_failed).labels(channel).inc()
        self.send_seconds.labels(channel).observe(seconds)

    def set_outbox(self, depth: int) -> None:
        self.outbox.set(depth)

    def reloaded(self, *, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "failed").inc()

    def in_force(self, *, rules: int, feeds: int) -> None:
        self.rules.set(rules)
        self.feeds.set(feeds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))
