"""The store on a real SQLite file: items new/edited/duplicate, matches once, outbox state, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.errors import StoreError
from watcher.migrations import SCHEMA_VERSION
from watcher.models import Evidence, Item, Match
from watcher.store import Store

NOW = datetime(2025, 9, 3, 12, 0, tzinfo=UTC)


def item(key: str, title: str, *, summary: str = "", feed: str = "bbc", link: str | None = None) -> Item:
    return Item(
        feed=feed,
        key=key,
        link=link or f"https://news.example/{key}",
        title=title,
        summary=summary,
        published=NOW - timedelta(hours=1),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "var" / "w.db")
    s.sync_feeds([("bbc", "https://bbc.example/rss", "BBC", "secondary")])
    yield s
    s.close()


def test_new_file_is_owner_only_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.db"
    Store.open(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this watcher understands"):
        Store.open(path)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="unusable"):
        Store.open(path)


def test_items_new_then_seen_then_edited(store: Store) -> None:
    first = store.store_items([item("a", "Xi meets Putin"), item("b", "Kim arrives")], now=NOW)
    assert [(s.item.key, s.state) for s in first] == [("a", "new"), ("b", "new")]
    again = store.store_items([item("a", "Xi meets Putin"), item("b", "Kim arrives")], now=NOW)
    assert [s.state for s in again] == ["seen", "seen"]
    assert [s.id for s in again] == [s.id for s in first]
    edited = store.store_items([item("a", "Xi meets Putin and Kim")], now=NOW)
    assert [(s.state, s.id) for s in edited] == [("edited", first[0].id)]
    assert store.counts()["items"] == 2


def test_same_title_under_a_new_id_is_a_duplicate_within_the_window(store: Store) -> None:
    store.store_items([item("a", "Kim arrives in Beijing")], now=NOW)
    dup = store.store_items([item("a2", "Kim ARRIVES in Beijing!")], now=NOW + timedelta(hours=1))
    assert [s.state for s in dup] == ["duplicate"]
    later = store.store_items([item("a3", "Kim arrives in Beijing")], now=NOW + timedelta(days=3))
    assert [s.state for s in later] == ["new"]


def test_duplicate_keys_in_one_batch_are_stored_once(store: Store) -> None:
    got = store.store_items([item("a", "one"), item("a", "one again")], now=NOW)
    assert [(s.item.title, s.state) for s in got] == [("one", "new")]


def test_a_match_is_recorded_once_per_item_and_rule(store: Store) -> None:
    (s,) = store.store_items([item("a", "Xi meets Putin")], now=NOW)
    ev = Evidence(
        term="Xi", kind="entity", field="title", start=0, end=2, text="Xi", snippet="Xi meets Putin"
    )
    m = Match(rule_id="bilateral-meeting", severity="high", evidence=(ev,))
    assert store.add_match(s.id, m, now=NOW) is not None
    assert store.add_match(s.id, m, now=NOW) is None


def test_outbox_lifecycle_and_crash_recovery(store: Store) -> None:
    a1 = store.create_alert(
        dedupe_key="k1",
        kind="open",
        severity="high",
        title="t1",
        payload={"x": 1},
        channels=["mail", "hook"],
        now=NOW,
        rule_id="r",
    )
    assert (
        store.create_alert(
            dedupe_key="k1", kind="open", severity="high", title="t1", payload={}, channels=["mail"], now=NOW
        )
        is None
    )
    a2 = store.create_alert(
        dedupe_key="k2", kind="open", severity="low", title="t2", payload={}, channels=["mail"], now=NOW
    )
    assert sorted(store.pending_channels()) == ["hook", "mail"]
    head = store.next_delivery("mail")
    assert head is not None and (head.alert_id, head.dedupe_key, head.payload) == (a1, "k1", {"x": 1})
    store.mark_sending(head.id)
    # a crash here: the delivery stays 'sending' and is not offered again until recovered
    assert store.next_delivery("mail").alert_id == a2  # type: ignore[union-attr]
    assert store.recover_sending() == 1
    head = store.next_delivery("mail")
    assert head is not None and (head.alert_id, head.attempts) == (a1, 1)
    store.mark_sending(head.id)
    store.mark_sent(head.id, now=NOW)
    nxt = store.next_delivery("mail")
    assert nxt is not None and nxt.alert_id == a2
    store.mark_retry(nxt.id, error="HTTP 500", next_attempt_at=NOW + timedelta(minutes=1))
    assert store.outbox_depth() == 2  # a2 to mail, a1 to hook
    recent = store.recent_alerts()
    assert [a["dedupe_key"] for a in recent] == ["k2", "k1"]
    assert {d["channel"]: d["state"] for d in recent[1]["deliveries"]} == {"hook": "pending", "mail": "sent"}


def test_feed_failures_count_and_reset(store: Store) -> None:
    assert store.record_failure("bbc", now=NOW, error="timed out", next_fetch_at=NOW) == 1
    assert store.record_failure("bbc", now=NOW, error="timed out", next_fetch_at=NOW) == 2
    state = store.feed_state("bbc")
    assert state is not None and state.failing_since == "2025-09-03T12:00:00+00:00"
    store.record_success(
        "bbc", now=NOW, status="ok", etag='"e1"', last_modified=None, body_hash="h", new_items=3
    )
    state = store.feed_state("bbc")
    assert state is not None
    assert (state.consecutive_failures, state.failing_since, state.etag, state.first_polled_at) == (
        0,
        None,
        '"e1"',
        "2025-09-03T12:00:00+00:00",
    )


def test_changed_feed_url_forgets_conditional_state(store: Store) -> None:
    store.record_success("bbc", now=NOW, status="ok", etag='"e1"', last_modified="x", body_hash="h")
    store.sync_feeds([("bbc", "https://bbc.example/other", "BBC", "secondary")])
    state = store.feed_state("bbc")
    assert state is not None and (state.etag, state.last_modified, state.body_hash) == (None, None, None)


def test_prune_keeps_undelivered_alerts(store: Store) -> None:
    store.store_items([item("old", "old news")], now=NOW - timedelta(days=100))
    store.create_alert(
        dedupe_key="p",
        kind="open",
        severity="low",
        title="t",
        payload={},
        channels=["c"],
        now=NOW - timedelta(days=100),
    )
    store.create_alert(
        dedupe_key="s",
        kind="open",
        severity="low",
        title="t",
        payload={},
        channels=[],
        now=NOW - timedelta(days=100),
    )
    assert store.prune(before=NOW - timedelta(days=90)) == {"items": 1, "alerts": 1}
    assert [a["dedupe_key"] for a in store.recent_alerts()] == ["p"]
