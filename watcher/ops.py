"""Alerts about watcher itself: a feed failing too long (and recovering), and silence as a signal.

Three kinds of episode, each opened and closed by one row in the ``alerts`` table (``kind='ops'``), so
each is reported once however often the check runs, and survives restarts:

    feed-down    a feed failing for longer than ``feed_failure_alert``   closed by feed-recovered (sent too)
    feed-quiet   a feed's new items in the last 24 h fell below a fifth of its usual daily rate
                                                                           closed by feed-normal (not sent)
    rule-silent  a rule that matched on most days has not matched for ``rule_quiet``
                                                                           closed by rule-active (not sent)

Rows that open an episode (and feed-recovered) go to ``ops_channel`` when one is configured; the others
are bookkeeping rows with no delivery. ``plan()`` decides from store rows and is pure; ``check_ops()``
runs the queries, writes the rows and logs each event.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watcher.config import Config
from watcher.store import Store, from_iso, iso
from watcher.units import format_duration

log = logging.getLogger(__name__)

CLOSES = {"feed-recovered": "feed-down", "feed-normal": "feed-quiet", "rule-active": "rule-silent"}
SENT = {"feed-down", "feed-recovered", "feed-quiet", "rule-silent"}
LOOKBACK_DAYS = 60


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsPolicy:
    """Thresholds of the ops checks (the feed-failure time comes from the config)."""

    feed_failure_after: float = 6 * 3600.0
    rule_quiet: float = 3 * 86400.0  # silent this long after steady matching
    rule_baseline_days: int = 14  # steady: matched on at least rule_min_days of these before the last match
    rule_min_days: int = 7
    feed_ratio: float = 0.2  # quiet: last 24 h below this share of the median day
    feed_normal_ratio: float = 0.5  # normal again at this share (hysteresis: no flapping)
    feed_baseline_days: int = 14
    feed_min_per_day: float = 5.0  # feeds with fewer items a day are too sparse to judge
    feed_min_history_days: int = 7


def policy_for(config: Config) -> OpsPolicy:
    """The thresholds a config sets (``feed_failure_alert``, ``silence``); the rest keep their defaults."""
    return OpsPolicy(
        feed_failure_after=config.feed_failure_alert,
        rule_quiet=config.silence.rule_quiet,
        feed_ratio=config.silence.feed_ratio,
        feed_normal_ratio=max(config.silence.feed_ratio, OpsPolicy().feed_normal_ratio),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsEvent:
    """One ops row to write: ``event`` about ``subject`` (a feed name or rule id)."""

    event: str
    subject: str
    message: str
    severity: str
    stamp: str  # what makes the event unique (failing_since, last match, time found)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"watcher-ops-{self.event}-{self.subject}-{self.stamp}"

    @property
    def sent(self) -> bool:
        return self.event in SENT


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    """A silence found now: a rule that stopped matching, or a feed whose rate fell."""

    kind: str  # "rule" or "feed"
    name: str
    since: str  # ISO time: the rule's last match, or the start of the quiet 24 h
    detail: str


def rule_silences(
    matched: Mapping[str, Sequence[datetime]], *, active: Collection[str], now: datetime, policy: OpsPolicy
) -> list[Silence]:
    """Rules (of ``active``) that matched on most days and then stopped for ``rule_quiet``."""
    out = []
    for rule_id in sorted(active):
        times = sorted(matched.get(rule_id, ()))
        if not times:
            continue
        last = times[-1]
        quiet = (now - last).total_seconds()
        if quiet < policy.rule_quiet:
            continue
        start = last - timedelta(days=policy.rule_baseline_days)
        days = {t.date() for t in times if t > start}
        if len(days) >= policy.rule_min_days:
            out.append(
                Silence(
                    kind="rule",
                    name=rule_id,
                    since=iso(last),
                    detail=f"matched on {len(days)} of {policy.rule_baseline_days} days, then nothing for "
                    f"{format_duration(quiet)}",
                )
            )
    return out


def feed_rate_drops(
    daily: Mapping[str, Mapping[int, int]],
    history_days: Mapping[str, float],
    *,
    now: datetime,
    policy: OpsPolicy,
    ratio: float | None = None,
) -> list[Silence]:
    """Feeds whose new items in the last 24 h (``daily[feed][0]``) fell below ``ratio`` of their median day.

    ``daily[feed][n]`` counts items first seen n days ago (0 = the last 24 h); ``history_days`` says how
    long each feed has been polled (days before that count as unknown, not zero).
    """
    share = policy.feed_ratio if ratio is None else ratio
    out = []
    for feed, counts in sorted(daily.items()):
        history = history_days.get(feed, 0.0)
        if history < policy.feed_min_history_days:
            continue
        span = min(policy.feed_baseline_days, int(history) - 1)  # the first day holds the backlog
        baseline = [counts.get(n, 0) for n in range(1, span + 1)]
        if not baseline:
            continue
        usual = statistics.median(baseline)
        recent = counts.get(0, 0)
        if usual >= policy.feed_min_per_day and recent < share * usual:
            out.append(
                Silence(
                    kind="feed",
                    name=feed,
                    since=iso(now - timedelta(days=1)),
                    detail=f"{recent} new items in the last 24 h; usually {usual:g} a day",
                )
            )
    return out


def open_episodes(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(event, subject) → payload of each episode opened and not yet closed, from ops rows in id order."""
    opened: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        ops = row.get("ops") or {}
        event, subject = ops.get("event"), str(ops.get("subject"))
        if event in CLOSES:
            opened.pop((CLOSES[event], subject), None)
        elif isinstance(event, str):
            opened[(event, subject)] = ops
    return opened


def plan(
    feeds: Sequence[Mapping[str, Any]],
    *,
    opened: Mapping[tuple[str, str], Mapping[str, Any]],
    rule_silent: Sequence[Silence],
    rules_matched_since: Mapping[str, datetime],
    feeds_quiet: Sequence[Silence],
    feeds_normal: Collection[str],
    now: datetime,
    policy: OpsPolicy,
) -> list[OpsEvent]:
    """The ops events due now. ``feeds`` are rows of the feeds table."""
    events: list[OpsEvent] = []
    by_name = {f["name"]: f for f in feeds}
    for f in feeds:
        since = f.get("failing_since")
        if since and ("feed-down", f["name"]) not in opened:
            failing = (now - from_iso(since)).total_seconds()
            if failing >= policy.feed_failure_after:
                events.append(
                    OpsEvent(
                        event="feed-down",
                        subject=f["name"],
                        severity="high",
                        stamp=since,
                        message=f"feed {f['name']} has failed for {format_duration(failing)} "
                        f"({_polls(f.get('consecutive_failures'))} in a row): {f.get('last_error') or '?'}",
                        detail={
                            "failing_since": since,
                            "last_error": f.get("last_error"),
                            "url": f.get("url"),
                        },
                    )
                )
    for (event, subject), ops in sorted(opened.items()):
        if event == "feed-down":
            row = by_name.get(subject)
            if row is not None and row.get("failing_since") != ops.get("failing_since"):
                events.append(
                    OpsEvent(
                        event="feed-recovered",
                        subject=subject,
                        severity="info",
                        stamp=str(ops.get("failing_since")),
                        message=f"feed {subject} recovered (failing since {ops.get('failing_since')})",
                        detail={"failing_since": ops.get("failing_since"), "url": row.get("url")},
                    )
                )
        elif event == "feed-quiet" and subject in feeds_normal:
            events.append(_close("feed-normal", subject, now, f"feed {subject} is back to its usual rate"))
        elif event == "rule-silent":
            last = rules_matched_since.get(subject)
            if last is not None and iso(last) > str(ops.get("since", "")):
                events.append(_close("rule-active", subject, now, f"rule {subject} matches again"))
    for s in rule_silent:
        if ("rule-silent", s.name) not in opened:
            events.append(_opened("rule-silent", s, f"rule {s.name} has gone quiet: {s.detail}"))
    for s in feeds_quiet:
        failing = bool(by_name.get(s.name, {}).get("failing_since"))
        if ("feed-quiet", s.name) not in opened and not failing:
            events.append(_opened("feed-quiet", s, f"feed {s.name} has gone quiet: {s.detail}"))
    return events


def _polls(n: Any) -> str:
    count = int(n or 0)
    return f"{count} poll" if count == 1 else f"{count} polls"


def _close(event: str, subject: str, now: datetime, message: str) -> OpsEvent:
    return OpsEvent(event=event, subject=subject, severity="info", stamp=iso(now), message=message)


def _opened(event: str, s: Silence, message: str) -> OpsEvent:
    return OpsEvent(
        event=event,
        subject=s.name,
        severity="medium",
        stamp=s.since,
        message=message,
        detail={"since": s.since},
    )


def payload(e: OpsEvent, *, now: datetime) -> dict[str, Any]:
    """An alert payload that watcher.render shows as it shows a rule's alert."""
    is_feed = e.event.startswith("feed")
    return {
        "kind": "ops",
        "rule": {
            "id": f"watcher:{e.event}",
            "title": "Feed health" if is_feed else "Watch-list health",
            "severity": e.severity,
            "description": "",
        },
        "story": {"title": f"{'feed' if is_feed else 'rule'} {e.subject}"},
        "items": [
            {
                "title": e.message,
                "link": e.detail.get("url") or "",
                "feed": e.subject if e.event.startswith("feed") else "",
                "publisher": "watcher",
                "published": iso(now),
            }
        ],
        "evidence": [],
        "sources": [],
        "ops": {"event": e.event, "subject": e.subject, **e.detail},
    }


def check_ops(
    store: Store,
    *,
    active_rules: Collection[str],
    ops_channel: str | None,
    now: datetime,
    policy: OpsPolicy,
) -> list[OpsEvent]:
    """Find the ops events due now, write each as an ops alert (sent to ``ops_channel`` if set), log it."""
    data = gather(store, active_rules=active_rules, now=now, policy=policy)
    events = plan(data.feeds, now=now, policy=policy, **data.plan_args())
    for e in events:
        channels = [ops_channel] if ops_channel and e.sent else []
        created = store.create_alert(
            dedupe_key=e.dedupe_key,
            kind="ops",
            severity=e.severity,
            title=e.message,
            payload=payload(e, now=now),
            channels=channels,
            now=now,
        )
        if created is not None:
            level = logging.WARNING if e.event in ("feed-down", "feed-quiet", "rule-silent") else logging.INFO
            log.log(level, "%s%s", e.message, f" (sent to {ops_channel})" if channels else "")
    return events


@dataclass(frozen=True, slots=True)
class OpsData:
    """What the checks read from the store."""

    feeds: list[dict[str, Any]]
    opened: dict[tuple[str, str], Mapping[str, Any]]
    rule_silent: list[Silence]
    rules_matched_since: dict[str, datetime]
    feeds_quiet: list[Silence]
    feeds_normal: set[str]

    def plan_args(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "rule_silent": self.rule_silent,
            "rules_matched_since": self.rules_matched_since,
            "feeds_quiet": self.feeds_quiet,
            "feeds_normal": self.feeds_normal,
        }


def gather(store: Store, *, active_rules: Collection[str], now: datetime, policy: OpsPolicy) -> OpsData:
    """Read feeds, ops rows, recent matches and daily item counts; find the silences."""
    feeds = store.feeds()
    rows = [
        {"ops": json.loads(r[0]).get("ops")}
        for r in store.db.execute("SELECT payload FROM alerts WHERE kind = 'ops' ORDER BY id")
    ]
    since = iso(now - timedelta(days=LOOKBACK_DAYS))
    matched: dict[str, list[datetime]] = {}
    for rule_id, at in store.db.execute(
        "SELECT rule_id, matched_at FROM matches WHERE matched_at >= ?", [since]
    ):
        matched.setdefault(rule_id, []).append(from_iso(at))
    daily: dict[str, dict[int, int]] = {}
    cutoff = iso(now - timedelta(days=policy.feed_baseline_days + 1))
    for feed, ago, n in store.db.execute(
        "SELECT feed, CAST(julianday(?) - julianday(first_seen) AS INTEGER) AS ago, count(*) FROM items"
        " WHERE first_seen >= ? GROUP BY feed, ago",
        [iso(now), cutoff],
    ):
        daily.setdefault(feed, {})[int(ago)] = int(n)
    history = {
        f["name"]: (now - from_iso(f["first_polled_at"])).total_seconds() / 86400
        for f in feeds
        if f.get("first_polled_at")
    }
    daily = {name: daily.get(name, {}) for name in history}
    still_low = feed_rate_drops(daily, history, now=now, policy=policy, ratio=policy.feed_normal_ratio)
    return OpsData(
        feeds=feeds,
        opened=open_episodes(rows),
        rule_silent=rule_silences(matched, active=active_rules, now=now, policy=policy),
        rules_matched_since={r: max(ts) for r, ts in matched.items()},
        feeds_quiet=feed_rate_drops(daily, history, now=now, policy=policy),
        feeds_normal=set(history) - {s.name for s in still_low},
    )
