"""Digest channels: the alerts held for a channel, collected into one message per period.

An alert routed to a ``mode: digest`` channel gets a ``held`` delivery instead of a pending one. When
the channel's digest time has passed (``watcher.route.digest_due``), ``make_digests`` writes one
``digest`` alert listing the held alerts' stories grouped by rule, with a pending delivery to that
channel, and marks the held deliveries ``digested`` (with the digest's id), all in one transaction:
a crash leaves either the digest and its bookkeeping or neither. An empty period writes nothing. The
digest then goes out like any alert: retried with backoff, at least once, with its own key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from watcher.config import ChannelConfig
from watcher.models import severity_rank
from watcher.route import digest_due
from watcher.store import Store, from_iso, iso

ENTRIES_PER_STORY = 5
log = logging.getLogger(__name__)


def make_digests(store: Store, channels: Mapping[str, ChannelConfig], now: datetime) -> list[int]:
    """Write the digests that are due now; return their alert ids."""
    made: list[int] = []
    for name, channel in channels.items():
        if channel.mode != "digest" or channel.digest is None:
            continue
        try:
            with store.db.atomic():
                alert_id = _digest(store, name, channel, now)
        except ValueError as exc:  # a bad schedule must not stop the other channels' deliveries
            log.error("channel %s: digest not sent: %s", name, exc)
            continue
        if alert_id is not None:
            made.append(alert_id)
    return made


def _digest(store: Store, name: str, channel: ChannelConfig, now: datetime) -> int | None:
    assert channel.digest is not None
    db = store.db
    row = db.execute("SELECT period_end FROM digests WHERE channel = ?", [name]).fetchone()
    if row is not None:
        since = from_iso(row[0])
    else:
        first = db.execute(
            "SELECT min(a.created_at) FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.state = 'held'",
            [name],
        ).fetchone()
        if first is None or first[0] is None:
            return None
        since = from_iso(first[0])
    due = digest_due(channel.digest, since, now)
    if due is None:
        return None
    start, end = due
    db.execute(
        "INSERT INTO digests (channel, period_end) VALUES (?, ?)"
        " ON CONFLICT (channel) DO UPDATE SET period_end = excluded.period_end",
        [name, iso(end)],
    )
    held = list(
        db.query(
            "SELECT d.id AS delivery_id, a.id AS alert_id, a.rule_id, a.story_id, a.severity, a.payload"
            " FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            " WHERE d.channel = ? AND d.state = 'held' AND a.created_at < ? ORDER BY a.id",
            [name, iso(end)],
        )
    )
    if not held:
        return None
    payload = digest_payload(store, held, start=start, end=end)
    severity = max((str(h["severity"]) for h in held), key=severity_rank)
    key = hashlib.sha1(f"digest|{name}|{iso(end)}".encode(), usedforsecurity=False).hexdigest()[:20]
    count = sum(len(r["stories"]) for r in payload["rules"])
    alert_id = store.create_alert(
        dedupe_key=f"watcher-digest-{key}",
        kind="digest",
        severity=severity,
        title=f"{count} {'story' if count == 1 else 'stories'} for {name}",
        payload=payload,
        channels=[name],
        now=now,
    )
    if alert_id is None:  # written before for this period (cannot happen after the upsert above)
        return None
    marks = ",".join("?" * len(held))
    db.execute(
        f"UPDATE deliveries SET state = 'digested', digest_id = ? WHERE id IN ({marks})",
        [alert_id, *(h["delivery_id"] for h in held)],
    )
    return alert_id


def digest_payload(
    store: Store, held: list[dict[str, Any]], *, start: datetime, end: datetime
) -> dict[str, Any]:
    """The digest payload documented in ``watcher.render``: stories grouped by rule, latest state."""
    rules: dict[str, dict[str, Any]] = {}
    stories: dict[tuple[str, int], dict[str, Any]] = {}
    for h in held:
        payload = json.loads(h["payload"])
        rule = payload.get("rule", {})
        rule_id = str(h["rule_id"] or rule.get("id", ""))
        group = rules.setdefault(
            rule_id,
            {"id": rule_id, "title": rule.get("title", rule_id), "severity": h["severity"], "stories": []},
        )
        if severity_rank(str(h["severity"])) > severity_rank(str(group["severity"])):
            group["severity"] = h["severity"]
        story_id = int(h["story_id"] or 0)
        story = payload.get("story", {})
        entry = stories.get((rule_id, story_id))
        if entry is None:
            entry = {"id": story_id, "title": story.get("title", ""), "first_seen": story.get("first_seen")}
            stories[(rule_id, story_id)] = entry
            group["stories"].append(entry)
        entry["last_seen"] = story.get("last_seen")
        entry["sources"] = payload.get("sources", [])
        latest = store.db.execute(
            "SELECT title, last_seen, sources FROM stories WHERE id = ?", [story_id]
        ).fetchone()
        if latest is not None:  # the story as it stands now, not as it stood at its last alert
            entry["title"], entry["last_seen"], entry["sources"] = latest[0], latest[1], json.loads(latest[2])
        entry["entries"] = (
            _entries(store, story_id)
            or [
                {k: i.get(k) for k in ("title", "link", "publisher", "published")}
                for i in payload.get("items", [])
            ][:ENTRIES_PER_STORY]
        )
    return {
        "kind": "digest",
        "period": {"start": iso(start), "end": iso(end)},
        "rules": list(rules.values()),
    }


def _entries(store: Store, story_id: int) -> list[dict[str, Any]]:
    return list(
        store.db.query(
            "SELECT i.title, i.link, si.publisher, si.seen AS published FROM story_items si"
            " JOIN items i ON i.id = si.item_id WHERE si.story_id = ? ORDER BY si.seen, si.item_id LIMIT ?",
            [story_id, ENTRIES_PER_STORY],
        )
    )
