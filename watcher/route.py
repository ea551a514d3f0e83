"""Which channels receive an alert, and when: filters, cooldown, quiet hours, rate limits, digests.

All pure: functions of the config, the alert and the time, so the pipeline and the deliverer decide
the same way and tests need no clock.

- A rule with ``notify: [a, b]`` goes to exactly those channels. A rule without ``notify`` goes to
  every channel whose filters accept it: ``severity`` (at least), ``rules`` (ids), ``tags`` (any
  shared tag). A channel with no filter receives every alert.
- **Cooldown** (per rule): after an alert opens for a rule, no other story of that rule opens an
  alert within the cooldown, unless its severity is higher.
- **Updates**: when a story's publisher count reaches a threshold (3, 10), one follow-up at most per
  threshold; a jump from 2 to 11 sends one update (for 10), not two.
- **Quiet hours** (per channel, local time): alerts below ``min_severity`` wait for the end.
- **Rate limit** (per channel): at most ``count`` sends per ``per``; the rest wait their turn.
  Nothing is dropped by quiet hours or rate limits: they only move a delivery's due time.
- **Digests**: ``every: 1h`` (slots aligned on local midnight when the period divides a day, e.g.
  :00 each hour) or ``at: "07:00"`` daily, in the channel's time zone, DST included.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.config import ChannelConfig, DigestConfig, QuietHours, RateLimit
from watcher.models import severity_rank

UPDATE_THRESHOLDS: tuple[int, ...] = (3, 10)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class RuleLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def tags(self) -> Collection[str]: ...
    @property
    def notify(self) -> Collection[str]: ...


def accepts(channel: ChannelConfig, *, rule_id: str, severity: str, tags: Collection[str]) -> bool:
    """True when the channel's filters let an alert of this rule, severity and tags through."""
    if severity_rank(severity) < severity_rank(channel.severity):
        return False
    if channel.rules is not None and rule_id not in channel.rules:
        return False
    return not (channel.tags is not None and not set(channel.tags) & set(tags))


def channels_for(
    rule: RuleLike, channels: Mapping[str, ChannelConfig], *, severity: str | None = None
) -> list[str]:
    """Channel names for an alert of ``rule`` (at ``severity``, default the rule's)."""
    if rule.notify:
        return [name for name in rule.notify if name in channels]
    sev = severity or rule.severity
    return [
        name
        for name, channel in channels.items()
        if accepts(channel, rule_id=rule.id, severity=sev, tags=rule.tags)
    ]


def cooldown_allows(
    cooldown: float | None, last: tuple[datetime, str] | None, *, now: datetime, severity: str
) -> bool:
    """May a new alert of a rule open now? ``last`` is (when, severity) of the rule's latest alert."""
    if not cooldown or last is None:
        return True
    at, last_severity = last
    if (now - at).total_seconds() >= cooldown:
        return True
    return severity_rank(severity) > severity_rank(last_severity)


def update_due(
    count: int, done: Collection[int], thresholds: Sequence[int] = UPDATE_THRESHOLDS
) -> int | None:
    """The threshold a follow-up should announce at ``count`` publishers, or None.

    ``done`` holds thresholds already announced (or passed when the alert opened). Only the highest
    reached threshold above every announced one is returned, so one update covers a jump.
    """
    floor = max(done, default=0)
    reached = [t for t in thresholds if floor < t <= count and t not in done]
    return max(reached) if reached else None


def passed_thresholds(count: int, thresholds: Sequence[int] = UPDATE_THRESHOLDS) -> list[int]:
    """Thresholds already met when an alert opens with ``count`` publishers (no update for them)."""
    return [t for t in thresholds if t <= count]


# ── clock times ────────────────────────────────────────────────────────────────────────────


def parse_hhmm(text: str) -> time:
    """``"07:00"`` → time(7, 0); ValueError with the expected form otherwise."""
    m = _HHMM.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time of day: write HH:MM, e.g. '07:00' or '22:30'")
    return time(int(m.group(1)), int(m.group(2)))


def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA, e.g. 'Asia/Seoul'); ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'") from exc


def _at(day: date, when: time, tz: ZoneInfo) -> datetime:
    """``when`` on ``day`` in ``tz``, as UTC. A time skipped by DST lands just after the gap."""
    return datetime.combine(day, when, tzinfo=tz).astimezone(UTC)


# ── quiet hours and rate limits ────────────────────────────────────────────────────────────


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end of the quiet period ``now`` falls in (UTC), or None outside quiet hours."""
    tz = zone(quiet.timezone)
    start, end = parse_hhmm(quiet.start), parse_hhmm(quiet.end)
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return _at(day, end, tz)


def rate_limit_until(limit: RateLimit | None, sent: Sequence[datetime], now: datetime) -> datetime | None:
    """When the next send may go under ``limit`` given earlier send times, or None for now."""
    if limit is None:
        return None
    recent = sorted(t for t in sent if (now - t).total_seconds() < limit.per)
    if len(recent) < limit.count:
        return None
    return recent[-limit.count] + timedelta(seconds=limit.per)


def quiet_hold(channel: ChannelConfig, *, severity: str, now: datetime) -> datetime | None:
    """Until when the channel's quiet hours hold an alert of this severity; None if it may go now."""
    quiet = channel.quiet_hours
    if quiet is None or severity_rank(severity) >= severity_rank(quiet.min_severity):
        return None
    return quiet_until(quiet, now)


# ── digests ────────────────────────────────────────────────────────────────────────────────


def next_digest(digest: DigestConfig, after: datetime) -> datetime:
    """The first digest time strictly after ``after`` (UTC)."""
    latest = last_digest(digest, after)
    if digest.at is not None:
        tz = zone(digest.timezone)
        return _at(latest.astimezone(tz).date() + timedelta(days=1), parse_hhmm(digest.at), tz)
    return _slot(digest, after, 1)


def last_digest(digest: DigestConfig, now: datetime) -> datetime:
    """The latest digest time at or before ``now`` (UTC)."""
    if digest.at is not None:
        tz = zone(digest.timezone)
        at = parse_hhmm(digest.at)
        day = now.astimezone(tz).date()
        today = _at(day, at, tz)
        return today if today <= now else _at(day - timedelta(days=1), at, tz)
    return _slot(digest, now, 0)


def _slot(digest: DigestConfig, when: datetime, ahead: int) -> datetime:
    """The ``every`` slot at or before ``when`` (ahead=0) or the one after it (ahead=1)."""
    if digest.every is None:
        raise ValueError("digest: set one of `every` or `at`")
    every = float(digest.every)
    if 86400 % every == 0:  # aligned on local midnight: hourly digests at :00
        tz = zone(digest.timezone)
        base = _at(when.astimezone(tz).date(), time(0), tz)
    else:
        base = datetime.fromtimestamp(0, UTC)
    slots = int((when - base).total_seconds() // every) + ahead
    return base + timedelta(seconds=slots * every)


def digest_due(digest: DigestConfig, since: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The period a digest should cover now: (since, latest digest time), or None if none passed.

    ``since`` is where the previous digest ended. A daemon that was down over several digest
    times sends one digest for the whole missed span, not one per missed slot.
    """
    latest = last_digest(digest, now)
    return (since, latest) if latest > since else None
