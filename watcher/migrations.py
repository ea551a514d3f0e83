"""Schema versions. ``PRAGMA user_version`` holds the version; each step runs in one transaction.

Add a step by appending a function to MIGRATIONS; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from watcher.errors import StoreError


def _run(db: sqlite_utils.Database, script: str) -> None:
    # executescript() would COMMIT first and break the step's transaction: run statement by statement
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """
        CREATE TABLE feeds (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            title TEXT,
            publisher TEXT,
            tier TEXT,
            etag TEXT,
            last_modified TEXT,
            body_hash TEXT,
            first_polled_at TEXT,
            last_fetch_at TEXT,
            last_success_at TEXT,
            last_status TEXT,
            last_error TEXT,
            last_error_at TEXT,
            failing_since TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_fetch_at TEXT,
            items_total INTEGER NOT NULL DEFAULT 0,
            last_warning TEXT
        );
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            feed TEXT NOT NULL,
            key TEXT NOT NULL,
            link TEXT NOT NULL,
            title TEXT NOT NULL,
            summary TEXT NOT NULL,
            published TEXT NOT NULL,
            published_known INTEGER NOT NULL DEFAULT 1,
            language TEXT,
            author TEXT,
            first_seen TEXT NOT NULL,
            updated_at TEXT,
            title_hash TEXT NOT NULL,
            dup_of INTEGER,
            story_id INTEGER,
            UNIQUE (feed, key)
        );
        CREATE INDEX items_first_seen ON items(first_seen);
        CREATE INDEX items_title_hash ON items(feed, title_hash);
        CREATE INDEX items_published ON items(published);
        CREATE TABLE matches (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            rule_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            evidence TEXT NOT NULL,
            matched_at TEXT NOT NULL,
            alerted INTEGER NOT NULL DEFAULT 0,
            UNIQUE (item_id, rule_id)
        );
        CREATE INDEX matches_rule ON matches(rule_id, matched_at);
        CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            rule_id TEXT NOT NULL,
            title TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL,
            item_count INTEGER NOT NULL DEFAULT 1,
            sources TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL DEFAULT 'open',
            closed_at TEXT
        );
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            dedupe_key TEXT NOT NULL UNIQUE,
            rule_id TEXT,
            story_id INTEGER,
            item_id INTEGER,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            title TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX alerts_created ON alerts(created_at);
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            last_error TEXT,
            sent_at TEXT,
            UNIQUE (alert_id, channel)
        );
        CREATE INDEX deliveries_due ON deliveries(state, channel, alert_id);
        """,
    )


def _v2(db: sqlite_utils.Database) -> None:
    """Stories with their items and publishers, alert lifecycle, held deliveries, digests."""
    _run(
        db,
        """
        CREATE TABLE story_items (
            story_id INTEGER NOT NULL REFERENCES stories(id) ON DELETE CASCADE,
            item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
            publisher TEXT NOT NULL,
            tier TEXT NOT NULL DEFAULT 'secondary',
            entities TEXT NOT NULL DEFAULT '[]',
            terms TEXT NOT NULL DEFAULT '[]',
            seen TEXT NOT NULL,
            added_at TEXT NOT NULL,
            PRIMARY KEY (story_id, item_id)
        );
        CREATE INDEX story_items_item ON story_items(item_id);
        ALTER TABLE stories ADD COLUMN window_s REAL NOT NULL DEFAULT 172800;
        ALTER TABLE stories ADD COLUMN source_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE stories ADD COLUMN alert_id INTEGER;
        ALTER TABLE stories ADD COLUMN announced TEXT NOT NULL DEFAULT '{}';
        ALTER TABLE stories ADD COLUMN held TEXT;
        CREATE INDEX stories_open ON stories(rule_id, state, last_seen);
        CREATE INDEX alerts_rule ON alerts(rule_id, kind, id);
        ALTER TABLE deliveries ADD COLUMN hold_until TEXT;
        ALTER TABLE deliveries ADD COLUMN digest_id INTEGER;
        CREATE INDEX deliveries_sent ON deliveries(channel, sent_at);
        CREATE TABLE digests (
            channel TEXT PRIMARY KEY,
            period_end TEXT NOT NULL
        );
        """,
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the database to SCHEMA_VERSION; return the version it had before."""
    before = int(db.execute("PRAGMA user_version").fetchone()[0])
    if before > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {before} is newer than this watcher understands ({SCHEMA_VERSION}):"
            " upgrade watcher, or point it at another database"
        )
    for version in range(before, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return before
