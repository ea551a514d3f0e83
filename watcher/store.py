"""SQLite storage through sqlite-utils: feeds and their health, items, matches, alerts and the outbox.

One ``Store`` is one writer connection, used from one thread (the daemon's event loop). WAL mode with
``synchronous=NORMAL``; every multi-row change runs in one transaction, so a kill -9 leaves either all or
nothing of it. The database file is created owner-only (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from watcher.errors import StoreError
from watcher.migrations import migrate
from watcher.models import Item, Match, StoredItem

_WORDS = re.compile(r"\W+", re.UNICODE)


def iso(dt: datetime) -> str:
    """ISO 8601 in UTC, second precision: the one time format in the database."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def title_hash(title: str) -> str:
    """Hash of a title with case, punctuation and spacing folded: equal for a re-posted headline."""
    folded = _WORDS.sub(" ", title.casefold()).strip()
    return hashlib.sha1(folded.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    name: str
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    first_polled_at: str | None
    consecutive_failures: int
    next_fetch_at: str | None
    failing_since: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    id: int
    alert_id: int
    channel: str
    attempts: int
    dedupe_key: str
    kind: str
    severity: str
    rule_id: str | None
    title: str
    payload: dict[str, Any]
    created_at: str
    next_attempt_at: str


class Store:
    """The watcher database. Open with ``Store.open(path)``; close with ``close()`` or ``with``."""

    def __init__(self, db: sqlite_utils.Database, path: Path | None) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: Path | str) -> Store:
        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not p.exists():
                os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(p, timeout=10, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {p}: {exc}") from exc
        store = cls(sqlite_utils.Database(conn), p)
        store._setup()
        return store

    @classmethod
    def memory(cls) -> Store:
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(sqlite_utils.Database(conn), None)
        store._setup()
        return store

    def _setup(self) -> None:
        try:
            self.db.execute("PRAGMA busy_timeout = 10000")
            if self.path is not None:
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            migrate(self.db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database {self.path} is unusable: {exc}") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    # ── feeds ──────────────────────────────────────────────────────────────────────────────

    def sync_feeds(self, feeds: Iterable[tuple[str, str, str | None, str]]) -> None:
        """Make sure each (name, url, publisher, tier) has a row; keep fetch state of known feeds.

        A feed whose URL changed loses its ETag/Last-Modified, so the new URL is fetched in full.
        """
        with self.db.atomic():
            for name, url, publisher, tier in feeds:
                row = self.db.execute("SELECT url FROM feeds WHERE name = ?", [name]).fetchone()
                if row is None:
                    self.db.execute(
                        "INSERT INTO feeds (name, url, publisher, tier) VALUES (?, ?, ?, ?)",
                        [name, url, publisher, tier],
                    )
                elif row[0] != url:
                    self.db.execute(
                        "UPDATE feeds SET url = ?, etag = NULL, last_modified = NULL, body_hash = NULL,"
                        " publisher = ?, tier = ? WHERE name = ?",
                        [url, publisher, tier, name],
                    )
                else:
                    self.db.execute(
                        "UPDATE feeds SET publisher = ?, tier = ? WHERE name = ?", [publisher, tier, name]
                    )

    def feed_state(self, name: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE name = ?", [name])
        if not rows:
            return None
        r = rows[0]
        return FeedState(
            name=r["name"],
            etag=r["etag"],
            last_modified=r["last_modified"],
            body_hash=r["body_hash"],
            first_polled_at=r["first_polled_at"],
            consecutive_failures=r["consecutive_failures"],
            next_fetch_at=r["next_fetch_at"],
            failing_since=r["failing_since"],
        )

    def record_success(
        self,
        name: str,
        *,
        now: datetime,
        status: str,
        etag: str | None,
        last_modified: str | None,
        body_hash: str | None,
        title: str | None = None,
        new_items: int = 0,
        warning: str | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE feeds SET etag = ?, last_modified = ?, body_hash = COALESCE(?, body_hash),"
            " title = COALESCE(?, title), last_fetch_at = ?, last_success_at = ?, last_status = ?,"
            " first_polled_at = COALESCE(first_polled_at, ?), consecutive_failures = 0,"
            " failing_since = NULL, next_fetch_at = NULL, items_total = items_total + ?,"
            # a 304 or an unchanged body was not parsed: the warnings of the body it stands for still hold
            " last_warning = CASE WHEN ? IN ('not_modified', 'unchanged') THEN last_warning ELSE ? END"
            " WHERE name = ?",
            [
                etag,
                last_modified,
                body_hash,
                title,
                iso(now),
                iso(now),
                status,
                iso(now),
                new_items,
                status,
                warning,
                name,
            ],
        )

    def record_failure(self, name: str, *, now: datetime, error: str, next_fetch_at: datetime) -> int:
        """Record a failed fetch or parse; return the number of failures in a row."""
        self.db.execute(
            "UPDATE feeds SET last_fetch_at = ?, last_status = 'error', last_error = ?, last_error_at = ?,"
            " consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, ?),"
            " next_fetch_at = ? WHERE name = ?",
            [iso(now), error, iso(now), iso(now), iso(next_fetch_at), name],
        )
        row = self.db.execute("SELECT consecutive_failures FROM feeds WHERE name = ?", [name]).fetchone()
        return int(row[0]) if row else 0

    def feeds(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM feeds ORDER BY name")

    # ── items ──────────────────────────────────────────────────────────────────────────────

    def store_items(
        self, items: Sequence[Item], *, now: datetime, duplicate_window: float = 48 * 3600
    ) -> list[StoredItem]:
        """Insert new items, update edited ones; in one transaction. Returns every item with its state.

        An item is 'edited' when its title or summary changed under the same key, 'duplicate' when the
        same feed posted the same title under another key within ``duplicate_window`` seconds.
        """
        out: list[StoredItem] = []
        if not items:
            return out
        feed = items[0].feed
        unique: dict[str, Item] = {}
        for item in items:
            unique.setdefault(item.key, item)
        keys = list(unique)
        existing: dict[str, tuple[int, str, str, str]] = {}
        since = iso(now - timedelta(seconds=duplicate_window))
        with self.db.atomic():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self.db.execute(
                    f"SELECT key, id, title, summary, link FROM items WHERE feed = ? AND key IN ({marks})",
                    [feed, *chunk],
                ):
                    existing[row[0]] = (row[1], row[2], row[3], row[4])
            for key, item in unique.items():
                found = existing.get(key)
                if found is None:
                    th = title_hash(item.title)
                    dup = self.db.execute(
                        "SELECT id FROM items WHERE feed = ? AND title_hash = ? AND first_seen >= ?"
                        " AND title != '' LIMIT 1",
                        [feed, th, since],
                    ).fetchone()
                    cur = self.db.execute(
                        "INSERT INTO items (feed, key, link, title, summary, published, published_known,"
                        " language, author, first_seen, title_hash, dup_of)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            item.feed,
                            item.key,
                            item.link,
                            item.title,
                            item.summary,
                            iso(item.published),
                            int(item.published_known),
                            item.language,
                            item.author,
                            iso(now),
                            th,
                            dup[0] if dup and item.title else None,
                        ],
                    )
                    state: Literal["new", "duplicate"] = "duplicate" if dup and item.title else "new"
                    out.append(StoredItem(id=int(cur.lastrowid or 0), item=item, state=state))
                elif (found[1], found[2], found[3]) != (item.title, item.summary, item.link):
                    self.db.execute(
                        # title_hash stays the first-seen title's: a re-post of the original is still caught
                        "UPDATE items SET title = ?, summary = ?, link = ?, updated_at = ? WHERE id = ?",
                        [item.title, item.summary, item.link, iso(now), found[0]],
                    )
                    out.append(StoredItem(id=found[0], item=item, state="edited"))
                else:
                    out.append(StoredItem(id=found[0], item=item, state="seen"))
        return out

    def iter_items(self, *, since: datetime | None = None, batch: int = 2000) -> Iterator[Item]:
        """Stored items (oldest first), for backtests."""
        last = 0
        cutoff = iso(since) if since else ""
        while True:
            rows = self._rows(
                "SELECT * FROM items WHERE id > ? AND published >= ? ORDER BY id LIMIT ?",
                [last, cutoff, batch],
            )
            if not rows:
                return
            for r in rows:
                last = r["id"]
                yield row_to_item(r)

    def count_items(self, *, since: datetime | None = None) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM items WHERE published >= ?", [iso(since) if since else ""]
        )
        return int(row.fetchone()[0])

    # ── matches and alerts ─────────────────────────────────────────────────────────────────

    def add_match(self, item_id: int, match: Match, *, now: datetime) -> int | None:
        """Record a match; return its id, or None if this item already matched this rule."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO matches (item_id, rule_id, severity, evidence, matched_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [item_id, match.rule_id, match.severity, json.dumps(evidence_json(match)), iso(now)],
        )
        return int(cur.lastrowid or 0) if cur.rowcount else None

    def create_alert(
        self,
        *,
        dedupe_key: str,
        kind: str,
        severity: str,
        title: str,
        payload: dict[str, Any],
        channels: Iterable[str],
        now: datetime,
        rule_id: str | None = None,
        story_id: int | None = None,
        item_id: int | None = None,
    ) -> int | None:
        """Write an alert and one pending delivery per channel; None if ``dedupe_key`` exists already."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO alerts (dedupe_key, rule_id, story_id, item_id, kind, severity, title,"
            " payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [dedupe_key, rule_id, story_id, item_id, kind, severity, title, json.dumps(payload), iso(now)],
        )
        if not cur.rowcount:
            return None
        alert_id = int(cur.lastrowid or 0)
        for channel in dict.fromkeys(channels):
            self.db.execute(
                "INSERT INTO deliveries (alert_id, channel, next_attempt_at) VALUES (?, ?, ?)",
                [alert_id, channel, iso(now)],
            )
        return alert_id

    # ── outbox ─────────────────────────────────────────────────────────────────────────────

    def recover_sending(self) -> int:
        """After a crash: deliveries left 'sending' go back to 'pending' (they are retried)."""
        return self.db.execute("UPDATE deliveries SET state = 'pending' WHERE state = 'sending'").rowcount

    def pending_channels(self) -> list[str]:
        return [
            r[0] for r in self.db.execute("SELECT DISTINCT channel FROM deliveries WHERE state = 'pending'")
        ]

    def next_delivery(self, channel: str, *, now: datetime | None = None) -> Delivery | None:
        """The oldest pending delivery of a channel (in alert order), due or not.

        With ``now``, deliveries held back by quiet hours until later (``hold_until``) are passed over,
        so an alert that may go through quiet hours is not stuck behind one that may not.
        """
        rows = self._rows(
            "SELECT d.id, d.alert_id, d.channel, d.attempts, d.next_attempt_at, a.dedupe_key, a.kind,"
            " a.severity, a.rule_id, a.title, a.payload, a.created_at FROM deliveries d"
            " JOIN alerts a ON a.id = d.alert_id WHERE d.channel = ? AND d.state = 'pending'"
            " AND (d.hold_until IS NULL OR d.hold_until <= ?) ORDER BY d.alert_id LIMIT 1",
            [channel, iso(now) if now is not None else "9999"],
        )
        if not rows:
            return None
        r = rows[0]
        return Delivery(
            id=r["id"],
            alert_id=r["alert_id"],
            channel=r["channel"],
            attempts=r["attempts"],
            dedupe_key=r["dedupe_key"],
            kind=r["kind"],
            severity=r["severity"],
            rule_id=r["rule_id"],
            title=r["title"],
            payload=json.loads(r["payload"]),
            created_at=r["created_at"],
            next_attempt_at=r["next_attempt_at"],
        )

    def hold(self, delivery_id: int, *, until: datetime) -> None:
        """Keep a pending delivery back until ``until`` (quiet hours) without counting an attempt."""
        self.db.execute("UPDATE deliveries SET hold_until = ? WHERE id = ?", [iso(until), delivery_id])

    def sent_times(self, channel: str, *, since: datetime) -> list[datetime]:
        """When the channel's deliveries since ``since`` were sent (for rate limits)."""
        rows = self.db.execute(
            "SELECT sent_at FROM deliveries WHERE channel = ? AND state = 'sent' AND sent_at >= ?",
            [channel, iso(since)],
        )
        return [from_iso(r[0]) for r in rows]

    def mark_sending(self, delivery_id: int) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'sending', attempts = attempts + 1 WHERE id = ?", [delivery_id]
        )

    def mark_sent(self, delivery_id: int, *, now: datetime) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
            [iso(now), delivery_id],
        )

    def mark_retry(self, delivery_id: int, *, error: str, next_attempt_at: datetime) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'pending', last_error = ?, next_attempt_at = ? WHERE id = ?",
            [error, iso(next_attempt_at), delivery_id],
        )

    def mark_dead(self, delivery_id: int, *, error: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'dead', last_error = ? WHERE id = ?", [error, delivery_id]
        )

    def retry_alert(self, alert_id: int, *, now: datetime) -> int:
        """Put an alert's failed ('dead') or pending deliveries back in the queue, due now."""
        return self.db.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, hold_until = NULL"
            " WHERE alert_id = ? AND state IN ('dead', 'pending')",
            [iso(now), alert_id],
        ).rowcount

    def recent_alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        alerts = self._rows("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", [limit])
        for a in alerts:
            a["payload"] = json.loads(a["payload"])
            a["deliveries"] = self._rows(
                "SELECT channel, state, attempts, last_error, sent_at, next_attempt_at FROM deliveries"
                " WHERE alert_id = ? ORDER BY channel",
                [a["id"]],
            )
        return alerts

    def outbox_depth(self) -> int:
        return int(
            self.db.execute(
                "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
        )

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("feeds", "items", "matches", "alerts", "deliveries"):
            out[table] = int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        out["outbox"] = self.outbox_depth()
        return out

    def prune(self, *, before: datetime) -> dict[str, int]:
        """Delete items, matches and delivered alerts older than ``before``; undelivered alerts stay."""
        cutoff = iso(before)
        with self.db.atomic():
            alerts = self.db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d"
                " WHERE d.alert_id = alerts.id AND d.state IN ('pending', 'sending', 'held'))",
                [cutoff],
            ).rowcount
            items = self.db.execute("DELETE FROM items WHERE first_seen < ?", [cutoff]).rowcount
            self.db.execute("DELETE FROM stories WHERE state = 'closed' AND closed_at < ?", [cutoff])
        return {"items": items, "alerts": alerts}


def row_to_item(r: dict[str, Any]) -> Item:
    return Item(
        feed=r["feed"],
        key=r["key"],
        link=r["link"],
        title=r["title"],
        summary=r["summary"],
        published=from_iso(r["published"]),
        published_known=bool(r["published_known"]),
        language=r["language"],
        author=r["author"],
    )


def evidence_json(match: Match) -> list[dict[str, Any]]:
    return [
        {
            "term": e.term,
            "kind": e.kind,
            "field": e.field,
            "start": e.start,
            "end": e.end,
            "text": e.text,
            "snippet": e.snippet,
            **({"entity": e.entity} if e.entity else {}),
            **({"score": round(e.score, 1)} if e.score is not None else {}),
        }
        for e in match.evidence
    ]
