"""Routing: channel filters, cooldown, update thresholds, quiet hours, rate limits, digest times."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.config import ChannelConfig, DigestConfig, QuietHours, RateLimit
from watcher.route import (
    accepts,
    channels_for,
    cooldown_allows,
    digest_due,
    last_digest,
    next_digest,
    passed_thresholds,
    quiet_until,
    rate_limit_until,
    update_due,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def channel(**kwargs: Any) -> ChannelConfig:
    return ChannelConfig.model_validate({"url": "json://127.0.0.1:9/hook", **kwargs})


@dataclass
class R:
    id: str = "trio-together"
    severity: str = "high"
    tags: list[str] = field(default_factory=lambda: ["summit"])
    notify: list[str] = field(default_factory=list)


@pytest.mark.parametrize(
    ("filters", "severity", "expected"),
    [
        pytest.param({}, "info", True, id="no-filter-takes-everything"),
        pytest.param({"severity": "high"}, "medium", False, id="below-the-channel-severity"),
        pytest.param({"severity": "high"}, "critical", True, id="above-the-channel-severity"),
        pytest.param({"rules": ["bilateral-meeting"]}, "high", False, id="rule-not-listed"),
        pytest.param({"rules": ["trio-together"]}, "high", True, id="rule-listed"),
        pytest.param({"tags": ["korea"]}, "high", False, id="no-shared-tag"),
        pytest.param({"tags": ["korea", "summit"]}, "high", True, id="one-shared-tag"),
    ],
)
def test_accepts(filters: dict[str, Any], severity: str, expected: bool) -> None:
    assert (
        accepts(channel(**filters), rule_id="trio-together", severity=severity, tags=["summit"]) is expected
    )


def test_channels_for_uses_notify_exactly_and_filters_otherwise() -> None:
    channels = {"slack": channel(severity="high"), "mail": channel(severity="critical"), "log": channel()}
    assert channels_for(R(), channels) == ["slack", "log"]
    assert channels_for(R(), channels, severity="critical") == ["slack", "mail", "log"]
    assert channels_for(R(notify=["mail", "gone"]), channels) == ["mail"]


T = utc("2025-09-03T02:00:00")


@pytest.mark.parametrize(
    ("cooldown", "last", "severity", "expected"),
    [
        pytest.param(None, (T, "high"), "high", True, id="no-cooldown"),
        pytest.param(3600.0, None, "high", True, id="first-alert-of-the-rule"),
        pytest.param(3600.0, (T - timedelta(minutes=30), "high"), "high", False, id="within-cooldown"),
        pytest.param(3600.0, (T - timedelta(minutes=60), "high"), "high", True, id="cooldown-over"),
        pytest.param(3600.0, (T - timedelta(minutes=5), "medium"), "high", True, id="severity-rises"),
        pytest.param(3600.0, (T - timedelta(minutes=5), "high"), "medium", False, id="severity-falls"),
    ],
)
def test_cooldown(
    cooldown: float | None, last: tuple[datetime, str] | None, severity: str, expected: bool
) -> None:
    assert cooldown_allows(cooldown, last, now=T, severity=severity) is expected


@pytest.mark.parametrize(
    ("count", "done", "expected"),
    [
        pytest.param(2, [], None, id="below-the-first"),
        pytest.param(3, [], 3, id="reaches-3"),
        pytest.param(5, [3], None, id="3-already-sent"),
        pytest.param(10, [3], 10, id="reaches-10"),
        pytest.param(11, [], 10, id="jump-past-both-sends-one"),
        pytest.param(4, [10], None, id="never-backwards"),
        pytest.param(50, [3, 10], None, id="all-sent"),
    ],
)
def test_update_due(count: int, done: list[int], expected: int | None) -> None:
    assert update_due(count, done) == expected


def test_thresholds_met_at_opening_are_not_announced_later() -> None:
    done = passed_thresholds(4)
    assert done == [3]
    assert update_due(5, done) is None
    assert update_due(10, done) == 10


NIGHT = QuietHours(start="22:00", end="07:00", timezone="Asia/Seoul", min_severity="critical")  # UTC+9


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param("2025-09-03T14:30:00", "2025-09-03T22:00:00", id="23:30-local-waits-for-07:00-next-day"),
        pytest.param("2025-09-03T21:00:00", "2025-09-03T22:00:00", id="06:00-local-waits-an-hour"),
        pytest.param("2025-09-03T22:00:00", None, id="07:00-local-is-over"),
        pytest.param("2025-09-03T03:00:00", None, id="noon-local-is-not-quiet"),
        pytest.param("2025-09-03T13:00:00", "2025-09-03T22:00:00", id="22:00-local-starts"),
    ],
)
def test_quiet_until_across_midnight(now: str, expected: str | None) -> None:
    assert quiet_until(NIGHT, utc(now)) == (utc(expected) if expected else None)


def test_quiet_hours_within_one_day_and_empty() -> None:
    lunch = QuietHours(start="12:00", end="13:00")
    assert quiet_until(lunch, utc("2025-09-03T12:30:00")) == utc("2025-09-03T13:00:00")
    assert quiet_until(lunch, utc("2025-09-03T13:30:00")) is None
    assert quiet_until(QuietHours(start="08:00", end="08:00"), utc("2025-09-03T08:00:00")) is None


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param([], None, id="nothing-sent"),
        pytest.param(["01:59:00", "01:58:00"], None, id="under-the-limit"),
        pytest.param(
            ["01:59:00", "01:58:00", "01:57:00"], "02:07:00", id="at-the-limit-waits-for-the-oldest"
        ),
        pytest.param(["01:59:00", "01:58:00", "01:40:00"], None, id="oldest-has-left-the-window"),
    ],
)
def test_rate_limit(sent: list[str], expected: str | None) -> None:
    limit = RateLimit(count=3, per=600)
    times = [utc(f"2025-09-03T{s}") for s in sent]
    assert rate_limit_until(limit, times, T) == (utc(f"2025-09-03T{expected}") if expected else None)


@pytest.mark.parametrize(
    ("digest", "after", "expected"),
    [
        pytest.param({"every": "1h"}, "2025-09-03T10:20:00", "2025-09-03T11:00:00", id="hourly-on-the-hour"),
        pytest.param({"every": "1h"}, "2025-09-03T11:00:00", "2025-09-03T12:00:00", id="strictly-after"),
        pytest.param({"every": "6h", "timezone": "Asia/Kolkata"}, "2025-09-03T00:00:00", "2025-09-03T00:30:00", id="6h-from-local-midnight"),
        pytest.param({"every": "7h"}, "2025-09-03T10:20:00", "2025-09-03T17:00:00", id="7h-from-the-epoch"),
        pytest.param({"at": "07:00", "timezone": "Asia/Seoul"}, "2025-09-03T10:00:00", "2025-09-03T22:00:00", id="daily-07:00-seoul"),
        pytest.param({"at": "07:00", "timezone": "Asia/Seoul"}, "2025-09-03T22:00:00", "2025-09-04T22:00:00", id="daily-next-day"),
        pytest.param({"at": "02:30", "timezone": "Europe/Berlin"}, "2025-03-29T12:00:00", "2025-03-30T01:30:00", id="dst-gap-lands-after-it"),
        pytest.param({"at": "01:30", "timezone": "America/New_York"}, "2025-11-01T12:00:00", "2025-11-02T05:30:00", id="dst-repeat-once"),
        pytest.param({"at": "01:30", "timezone": "America/New_York"}, "2025-11-02T05:30:00", "2025-11-03T06:30:00", id="dst-repeat-not-twice"),
    ],
)  # fmt: skip
def test_next_digest(digest: dict[str, Any], after: str, expected: str) -> None:
    assert next_digest(DigestConfig(**digest), utc(after)) == utc(expected)


def test_last_digest_and_the_period_due() -> None:
    hourly = DigestConfig(every=3600)
    assert last_digest(hourly, utc("2025-09-03T10:20:00")) == utc("2025-09-03T10:00:00")
    assert digest_due(hourly, utc("2025-09-03T10:00:00"), utc("2025-09-03T10:59:59")) is None
    assert digest_due(hourly, utc("2025-09-03T10:00:00"), utc("2025-09-03T11:00:00")) == (
        utc("2025-09-03T10:00:00"),
        utc("2025-09-03T11:00:00"),
    )
    # down for five hours: one digest for the whole missed span
    assert digest_due(hourly, utc("2025-09-03T10:00:00"), utc("2025-09-03T15:30:00")) == (
        utc("2025-09-03T10:00:00"),
        utc("2025-09-03T15:00:00"),
    )
