"""``watcher status`` and ``watcher feeds`` data from a real database and a real lock held by another process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.models import Item
from watcher.status import (
    DaemonState,
    FeedHealth,
    collect_status,
    daemon_state,
    feed_health,
    lock_path,
    new_items_per_feed,
    prune,
    render_feeds,
    render_status,
)
from watcher.store import Store

NOW = datetime(2025, 9, 10, 12, 0, tzinfo=UTC)

# what watcher.daemon.DatabaseLock does: an exclusive flock on <database>.lock holding the pid
HOLD_LOCK = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    db = tmp_path / "w.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock_path(db))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    yield proc
    proc.communicate("", timeout=5)


def test_a_running_daemon_is_seen_through_its_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    db = tmp_path / "w.db"
    assert daemon_state(db) == DaemonState(running=True, pid=holder.pid, lock=tmp_path / "w.db.lock")
    # asking did not take the lock: the holder still has it alone
    assert daemon_state(db).running


def test_no_lock_file_or_a_stale_one_means_not_running(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    assert daemon_state(db) == DaemonState(running=False, pid=None, lock=tmp_path / "w.db.lock")
    lock_path(db).write_text("4242")  # left by a daemon killed with SIGKILL
    assert daemon_state(db) == DaemonState(running=False, pid=None, lock=tmp_path / "w.db.lock")


def _item(feed: str, key: str, at: datetime) -> Item:
    return Item(
        feed=feed, key=key, link=f"https://x.example/{key}", title=f"headline {key}", summary="", published=at
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "w.db")
    s.sync_feeds(
        [
            ("yonhap", "https://y.example/rss", "Yonhap", "secondary"),
            ("kcna", "https://k.example/rss", "KCNA", "primary"),
        ]
    )
    first = NOW - timedelta(days=10)
    s.store_items(
        [_item("yonhap", f"old{i}", first) for i in range(50)], now=first
    )  # the first poll's backlog
    s.record_success(
        "yonhap", now=first, status="ok", etag=None, last_modified=None, body_hash=None, new_items=50
    )
    for day in reversed(range(7)):  # then 14 new items a day, the latest an hour ago
        at = NOW - timedelta(days=day, hours=1)
        s.store_items([_item("yonhap", f"d{day}-{i}", at) for i in range(14)], now=at)
        s.record_success(
            "yonhap", now=at, status="ok", etag=None, last_modified=None, body_hash=None, new_items=14
        )
    s.record_failure("kcna", now=NOW - timedelta(hours=3), error="HTTP 503", next_fetch_at=NOW)
    s.record_failure("kcna", now=NOW - timedelta(hours=2), error="HTTP 503", next_fetch_at=NOW)
    yield s
    s.close()


def test_feed_health(store: Store) -> None:
    health = feed_health(
        store.feeds(), new_items_per_feed(store, now=NOW), now=NOW, configured=["yonhap", "kcna", "nknews"]
    )
    assert health == [
        FeedHealth(
            name="yonhap",
            status="ok",
            last_success="2025-09-10T11:00:00+00:00",
            last_error=None,
            last_error_at=None,
            consecutive_failures=0,
            failing_since=None,
            items_per_day=14.0,
        ),
        FeedHealth(
            name="kcna",
            status="error",
            last_success=None,
            last_error="HTTP 503",
            last_error_at="2025-09-10T10:00:00+00:00",
            consecutive_failures=2,
            failing_since="2025-09-10T09:00:00+00:00",
            items_per_day=None,
        ),
        FeedHealth(
            name="nknews",
            status=None,
            last_success=None,
            last_error=None,
            last_error_at=None,
            consecutive_failures=0,
            failing_since=None,
            items_per_day=None,
        ),
    ]
    assert render_feeds(health, now=NOW) == (
        "FEED    STATUS  LAST SUCCESS  FAILS  ITEMS/DAY  LAST ERROR\n"
        "yonhap  ok      1h ago        0      14.0\n"
        "kcna    error   never         2      -          HTTP 503\n"
        "nknews  -       never         0      -"
    )


def test_collect_status(tmp_path: Path, store: Store) -> None:
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        "database: w.db\nfeeds:\n  - {name: yonhap, url: 'https://y.example/rss'}\n  - {name: kcna, url: 'https://k.example/rss'}\n"
    )
    loaded = load_config(cfg, environ={"STATE_DIRECTORY": str(tmp_path)})
    report = collect_status(loaded, active_rules=(), now=NOW)
    assert report.daemon == DaemonState(running=False, pid=None, lock=tmp_path / "w.db.lock")
    assert report.last_poll == "2025-09-10T11:00:00+00:00"
    assert report.counts == {
        "feeds": 2,
        "items": 148,
        "matches": 0,
        "alerts": 0,
        "deliveries": 0,
        "outbox": 0,
    }
    assert [h.name for h in report.failing] == ["kcna"]
    assert report.database_bytes is not None and report.database_bytes > 0
    text = render_status(report, now=NOW).splitlines()
    assert text[0] == "daemon:    not running"
    assert text[2:] == [
        "last poll: 1h ago",
        "outbox:    0 pending",
        "counts:    2 feeds, 148 items, 0 matches, 0 alerts, 0 deliveries",
        "failing:   kcna: 2 polls in a row, first 3h ago: HTTP 503",
    ]


def test_status_creates_no_database(tmp_path: Path) -> None:
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text("database: none-yet.db\n")
    loaded = load_config(cfg, environ={"STATE_DIRECTORY": str(tmp_path)})
    report = collect_status(loaded, active_rules=(), now=NOW)
    assert (
        render_status(report, now=NOW)
        == f"daemon:    not running\ndatabase:  {tmp_path / 'none-yet.db'} (none yet)"
    )
    assert not (tmp_path / "none-yet.db").exists()


def test_prune_removes_old_items_and_delivered_alerts_only(store: Store) -> None:
    old = NOW - timedelta(days=100)
    store.store_items([_item("yonhap", "ancient", old)], now=old)
    sent = store.create_alert(
        dedupe_key="a1", kind="open", severity="high", title="t", payload={}, channels=["slack"], now=old
    )
    store.create_alert(
        dedupe_key="a2", kind="open", severity="high", title="t", payload={}, channels=["slack"], now=old
    )
    delivery = store.next_delivery("slack")
    assert delivery is not None and delivery.alert_id == sent
    store.mark_sending(delivery.id)
    store.mark_sent(delivery.id, now=old)
    assert prune(store, retention=90 * 86400, now=NOW) == {"items": 1, "alerts": 1}
    assert [a["dedupe_key"] for a in store.recent_alerts()] == ["a2"]  # never delivered: kept
    assert store.counts()["items"] == 148
