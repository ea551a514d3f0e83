"""Schema steps: a database of an older version is brought forward with its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from watcher.migrations import MIGRATIONS, SCHEMA_VERSION, migrate


def test_a_version_1_database_gains_stories_and_digests_and_keeps_its_rows(tmp_path: Path) -> None:
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "v1.db", isolation_level=None))
    with db.atomic():
        MIGRATIONS[0](db)
        db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO stories (rule_id, title, first_seen, last_seen) VALUES"
        " ('trio-together', 'Xi, Putin and Kim at the parade', '2025-09-03T01:59:00+00:00',"
        " '2025-09-03T02:14:00+00:00')"
    )
    assert migrate(db) == 1
    assert int(db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION == 2
    rows = list(
        db.query("SELECT rule_id, window_s, source_count, alert_id, announced, held, state FROM stories")
    )
    assert rows == [
        {
            "rule_id": "trio-together",
            "window_s": 172800.0,
            "source_count": 0,
            "alert_id": None,
            "announced": "{}",
            "held": None,
            "state": "open",
        }
    ]
    assert {"story_items", "digests"} <= set(db.table_names())
    assert {"hold_until", "digest_id"} <= {c.name for c in db["deliveries"].columns}
    assert migrate(db) == 2  # nothing left to do
