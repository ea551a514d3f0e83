"""Ops alerts on a real database: a feed down (once) and recovered (once), silences found and closed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.models import Item, Match
from watcher.ops import OpsPolicy, Silence, check_ops, feed_rate_drops, open_episodes, rule_silences
from watcher.store import Store

NOW = datetime(2025, 9, 20, 12, 0, tzinfo=UTC)
POLICY = OpsPolicy(feed_failure_after=6 * 3600)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "w.db")
    s.sync_feeds([("kcna", "https://kcnawatch.example/feed", "KCNA Watch", "primary")])
    yield s
    s.close()


def fail(store: Store, at: datetime, error: str = "HTTP 503 Service Unavailable") -> None:
    store.record_failure("kcna", now=at, error=error, next_fetch_at=at + timedelta(minutes=10))


def succeed(store: Store, name: str, at: datetime, new: int = 0) -> None:
    store.record_success(
        name, now=at, status="ok", etag=None, last_modified=None, body_hash=None, new_items=new
    )


def ops_rows(store: Store) -> list[dict[str, Any]]:
    return [
        {
            "title": a["title"],
            "channels": [d["channel"] for d in a["deliveries"]],
            "event": a["payload"]["ops"]["event"],
        }
        for a in reversed(store.recent_alerts(100))
    ]


def test_a_feed_down_alerts_once_then_recovers_once(store: Store) -> None:
    start = NOW - timedelta(hours=7)
    for i in range(8):
        fail(store, start + timedelta(hours=i * 0.9))
    assert (
        check_ops(store, active_rules=(), ops_channel="ops", now=NOW - timedelta(hours=2), policy=POLICY)
        == []
    )
    events = check_ops(store, active_rules=(), ops_channel="ops", now=NOW, policy=POLICY)
    assert [e.message for e in events] == [
        "feed kcna has failed for 7h (8 polls in a row): HTTP 503 Service Unavailable"
    ]
    assert (
        check_ops(store, active_rules=(), ops_channel="ops", now=NOW + timedelta(hours=1), policy=POLICY)
        == []
    )
    succeed(store, "kcna", NOW + timedelta(hours=2))
    later = NOW + timedelta(hours=2, minutes=5)
    assert [
        e.message for e in check_ops(store, active_rules=(), ops_channel="ops", now=later, policy=POLICY)
    ] == ["feed kcna recovered (failing since 2025-09-20T05:00:00+00:00)"]
    assert check_ops(store, active_rules=(), ops_channel="ops", now=later, policy=POLICY) == []
    assert ops_rows(store) == [
        {
            "title": "feed kcna has failed for 7h (8 polls in a row): HTTP 503 Service Unavailable",
            "channels": ["ops"],
            "event": "feed-down",
        },
        {
            "title": "feed kcna recovered (failing since 2025-09-20T05:00:00+00:00)",
            "channels": ["ops"],
            "event": "feed-recovered",
        },
    ]


def test_without_an_ops_channel_the_episode_is_recorded_but_not_sent(store: Store) -> None:
    fail(store, NOW - timedelta(hours=8))
    check_ops(store, active_rules=(), ops_channel=None, now=NOW, policy=POLICY)
    assert ops_rows(store) == [
        {
            "title": "feed kcna has failed for 8h (1 poll in a row): HTTP 503 Service Unavailable",
            "channels": [],
            "event": "feed-down",
        }
    ]
    assert store.outbox_depth() == 0


def days_ago(*days: float, hour: int = 9) -> list[datetime]:
    return [NOW.replace(hour=hour) - timedelta(days=d) for d in days]


@pytest.mark.parametrize(
    ("times", "silent"),
    [
        pytest.param(days_ago(*range(4, 14)), True, id="daily-then-4-days-quiet"),
        pytest.param(days_ago(*range(1, 11)), False, id="daily-until-yesterday"),
        pytest.param(days_ago(4, 8, 12), False, id="sparse-then-quiet"),
        pytest.param(days_ago(*([4] * 20)), False, id="one-busy-day-is-not-steady"),
    ],
)
def test_rule_silences(times: list[datetime], silent: bool) -> None:
    found = rule_silences({"kim-visit": times}, active={"kim-visit"}, now=NOW, policy=POLICY)
    assert bool(found) is silent
    if silent:
        assert found == [
            Silence(
                kind="rule",
                name="kim-visit",
                since="2025-09-16T09:00:00+00:00",
                detail="matched on 10 of 14 days, then nothing for 4d3h",
            )
        ]


def test_a_disabled_or_removed_rule_is_not_silent() -> None:
    assert rule_silences({"old": days_ago(*range(4, 14))}, active={"kim-visit"}, now=NOW, policy=POLICY) == []


@pytest.mark.parametrize(
    ("today", "history", "quiet"),
    [
        pytest.param(2, 30.0, True, id="fell-to-a-tenth"),
        pytest.param(15, 30.0, False, id="a-slow-day"),
        pytest.param(0, 3.0, False, id="too-young-to-judge"),
    ],
)
def test_feed_rate_drops(today: int, history: float, quiet: bool) -> None:
    daily = {"yonhap": {0: today, **{n: 20 + n % 3 for n in range(1, 15)}}}
    found = feed_rate_drops(daily, {"yonhap": history}, now=NOW, policy=POLICY)
    assert [s.name for s in found] == (["yonhap"] if quiet else [])


def test_a_sparse_feed_is_never_called_quiet() -> None:
    daily = {"ministry": {0: 0, **dict.fromkeys(range(1, 15), 2)}}
    assert feed_rate_drops(daily, {"ministry": 30.0}, now=NOW, policy=POLICY) == []


def test_open_episodes() -> None:
    rows = [
        {"ops": {"event": "feed-down", "subject": "a", "failing_since": "t1"}},
        {"ops": {"event": "rule-silent", "subject": "r"}},
        {"ops": {"event": "feed-recovered", "subject": "a"}},
        {"ops": {"event": "feed-down", "subject": "a", "failing_since": "t2"}},
    ]
    assert open_episodes(rows) == {
        ("feed-down", "a"): {"event": "feed-down", "subject": "a", "failing_since": "t2"},
        ("rule-silent", "r"): {"event": "rule-silent", "subject": "r"},
    }


def test_a_silent_rule_is_reported_once_and_closed_when_it_matches_again(store: Store) -> None:
    for i, at in enumerate(days_ago(*range(4, 14))):
        [stored] = store.store_items([_item(f"k{i}", at)], now=at)
        store.add_match(stored.id, Match(rule_id="kim-visit", severity="high"), now=at)
    first = check_ops(store, active_rules={"kim-visit"}, ops_channel="ops", now=NOW, policy=POLICY)
    assert [(e.event, e.message) for e in first] == [
        ("rule-silent", "rule kim-visit has gone quiet: matched on 10 of 14 days, then nothing for 4d3h")
    ]
    assert (
        check_ops(
            store, active_rules={"kim-visit"}, ops_channel="ops", now=NOW + timedelta(hours=6), policy=POLICY
        )
        == []
    )
    [stored] = store.store_items([_item("new", NOW + timedelta(hours=7))], now=NOW + timedelta(hours=7))
    store.add_match(stored.id, Match(rule_id="kim-visit", severity="high"), now=NOW + timedelta(hours=7))
    closing = check_ops(
        store, active_rules={"kim-visit"}, ops_channel="ops", now=NOW + timedelta(hours=8), policy=POLICY
    )
    assert [(e.event, e.sent) for e in closing] == [("rule-active", False)]
    assert [r["channels"] for r in ops_rows(store)] == [["ops"], []]


def _item(key: str, at: datetime) -> Item:
    return Item(
        feed="kcna",
        key=key,
        link=f"https://x.example/{key}",
        title=f"Kim visits {key}",
        summary="",
        published=at,
    )


@pytest.mark.anyio
async def test_an_ops_alert_reaches_the_ops_channel_as_a_readable_message(store: Store) -> None:
    from receivers import webhook_sink

    from watcher.config import ChannelConfig, DeliveryConfig
    from watcher.deliver import Deliverer

    fail(store, NOW - timedelta(hours=7))
    check_ops(store, active_rules=(), ops_channel="ops", now=NOW, policy=POLICY)
    with webhook_sink() as hook:
        deliverer = Deliverer(
            store, {"ops": ChannelConfig(url=hook.url())}, DeliveryConfig(), clock=lambda: NOW
        )
        report = await deliverer.run_once()
    assert report.sent == 1
    [post] = hook.posts
    assert post["title"] == "[HIGH] Feed health: feed kcna"
    assert "feed kcna has failed for 7h (1 poll in a row): HTTP 503 Service Unavailable" in post["message"]
