"""From matches to alerts: one alert per (rule, story), held until corroborated, updated at thresholds.

For each fresh match the pipeline calls ``Signals.on_match`` inside the transaction that stored the
item, so the story, its items and any alert with its deliveries are written together or not at all.

- The item joins one of the rule's open stories (``watcher.stories``; the candidates are read from
  the database each time, so a restart or a rolled-back transaction leaves nothing stale) or opens one.
- A story's alert opens once its independent publishers reach the rule's ``min_sources``, a primary
  source has reported it when the rule has ``require_primary``, and the rule's ``cooldown`` allows it.
  Until then the story is *held* (``stories.held`` says why) and no message goes out.
- After opening, later items update the story silently, except when its publisher count reaches an
  update threshold (3, 10) or a primary source confirms it: then one ``update`` alert carries the
  items since the last message.
- Immediate channels get a pending delivery; digest channels a ``held`` one for the next digest.
- ``close_quiet`` closes the stories quiet for their window (on the items' clock); a closed story
  takes no more items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.config import ChannelConfig, FeedConfig
from watcher.models import Match, StoredItem
from watcher.route import UPDATE_THRESHOLDS, channels_for, cooldown_allows, passed_thresholds, update_due
from watcher.rules import Rule
from watcher.store import Store, from_iso, iso
from watcher.stories import Entry, Story, StoryIndex, evidence_keys

MAX_ITEMS = 20  # items listed in one alert payload


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one match did: the story it went to and the alert it wrote, if any."""

    story_id: int
    link: str  # "new", or why it joined: "copy", "title", "entities"
    alert_id: int | None = None
    kind: str | None = None  # "open" or "update" when an alert was written
    held: str | None = None  # why the story has no alert yet


def alert_key(*parts: object) -> str:
    digest = hashlib.sha1("|".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()[:20]
    return f"watcher-{digest}"


class Signals:
    """The story and alert stage over one store. Holds no state between calls."""

    def __init__(
        self,
        store: Store,
        *,
        channels: Mapping[str, ChannelConfig],
        thresholds: Sequence[int] = UPDATE_THRESHOLDS,
    ) -> None:
        self.store = store
        self.channels = channels
        self.thresholds = tuple(thresholds)

    # ── matching items to stories ──────────────────────────────────────────────────────────

    def on_match(
        self, *, rule: Rule, feed: FeedConfig, stored: StoredItem, match: Match, now: datetime
    ) -> Outcome:
        item = stored.item
        entities, terms = evidence_keys(match.evidence)
        entry = Entry(
            item_id=stored.id,
            title=item.title,
            summary=item.summary,
            seen=min(item.published, now),
            publisher=feed.publisher_name,
            tier=feed.tier,
            link=item.link,
            feed=item.feed,
            entities=entities,
            terms=terms,
        )
        index = self._open_stories(rule.id, entry.seen)
        found = index.find(rule.id, entry)
        if found is None:
            story_id = self._new_story(rule, entry, now)
            link = "new"
        else:
            story_id, link = found
        index.add(rule.id, story_id, entry, window=rule.window)
        story = index.get(story_id)
        assert story is not None
        self.store.db.execute(
            "INSERT OR IGNORE INTO story_items (story_id, item_id, publisher, tier, entities, terms, seen,"
            " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [story_id, stored.id, entry.publisher, entry.tier, json.dumps(sorted(entities)),
             json.dumps(sorted(terms)), iso(entry.seen), iso(now)],
        )  # fmt: skip
        self.store.db.execute(
            "UPDATE stories SET last_seen = ?, item_count = ?, sources = ?, source_count = ? WHERE id = ?",
            [iso(story.last_seen), len(story.entries), json.dumps(list(story.sources.publishers)),
             story.sources.count, story_id],
        )  # fmt: skip
        return self._decide(rule, story, match, now=now, link=link)

    def _open_stories(self, rule_id: str, seen: datetime) -> StoryIndex:
        """The rule's open stories that could take an item seen at ``seen``, from the database."""
        index = StoryIndex()
        rows = self.store.db.execute(
            "SELECT s.id, s.window_s, si.item_id, si.publisher, si.tier, si.entities, si.terms, si.seen,"
            " i.title, i.summary, i.link, i.feed FROM stories s"
            " JOIN story_items si ON si.story_id = s.id JOIN items i ON i.id = si.item_id"
            " WHERE s.rule_id = ? AND s.state = 'open'"
            " AND julianday(s.last_seen) + s.window_s / 86400.0 >= julianday(?)"
            " ORDER BY s.id, si.item_id",
            [rule_id, iso(seen)],
        ).fetchall()
        for sid, window, item_id, publisher, tier, ents, terms, when, title, summary, link, feed in rows:
            entry = Entry(
                item_id=item_id, title=title, summary=summary, seen=from_iso(when), publisher=publisher,
                tier=tier, link=link, feed=feed, entities=frozenset(json.loads(ents)),
                terms=frozenset(json.loads(terms)),
            )  # fmt: skip
            index.add(rule_id, sid, entry, window=window)
        return index

    def _new_story(self, rule: Rule, entry: Entry, now: datetime) -> int:
        cur = self.store.db.execute(
            "INSERT INTO stories (rule_id, title, first_seen, last_seen, item_count, sources, state,"
            " window_s) VALUES (?, ?, ?, ?, 0, '[]', 'open', ?)",
            [rule.id, entry.title, iso(entry.seen), iso(entry.seen), rule.window],
        )
        return int(cur.lastrowid or 0)

    # ── alerts ─────────────────────────────────────────────────────────────────────────────

    def _decide(self, rule: Rule, story: Story, match: Match, *, now: datetime, link: str) -> Outcome:
        row = self.store.db.execute(
            "SELECT alert_id, announced FROM stories WHERE id = ?", [story.id]
        ).fetchone()
        alert_id, announced = row[0], json.loads(row[1] or "{}")
        sources = story.sources
        if alert_id is None:
            held = self._held(rule, story, match, now)
            self.store.db.execute("UPDATE stories SET held = ? WHERE id = ?", [held, story.id])
            if held is not None:
                return Outcome(story.id, link, held=held)
            announced = {
                "thresholds": passed_thresholds(sources.count, self.thresholds),
                "last_item": max(e.item_id for e in story.entries),
                "primary": bool(sources.primary),
            }
            new_id = self._write(rule, story, match, kind="open", now=now, items=story.entries, extra={})
            self.store.db.execute(
                "UPDATE stories SET alert_id = ?, announced = ? WHERE id = ?",
                [new_id, json.dumps(announced), story.id],
            )
            return Outcome(story.id, link, alert_id=new_id, kind="open")
        threshold = update_due(sources.count, announced.get("thresholds", []), self.thresholds)
        confirmed = bool(sources.primary) and not announced.get("primary")
        if threshold is None and not confirmed:
            return Outcome(story.id, link)
        last_item = int(announced.get("last_item", 0))
        fresh = [e for e in story.entries if e.item_id > last_item] or list(story.entries[-1:])
        extra: dict[str, Any] = {"update": {"threshold": threshold, "sources": sources.count}}
        if confirmed:
            extra["update"]["primary"] = list(sources.primary)
        new_id = self._write(rule, story, match, kind="update", now=now, items=fresh, extra=extra)
        announced["thresholds"] = sorted(
            {*announced.get("thresholds", []), *([threshold] if threshold else [])}
        )
        announced["last_item"] = max(e.item_id for e in story.entries)
        announced["primary"] = bool(sources.primary)
        self.store.db.execute(
            "UPDATE stories SET announced = ? WHERE id = ?", [json.dumps(announced), story.id]
        )
        return Outcome(story.id, link, alert_id=new_id, kind="update")

    def _held(self, rule: Rule, story: Story, match: Match, now: datetime) -> str | None:
        """Why the story cannot open its alert yet, or None when it can."""
        sources = story.sources
        if sources.count < rule.min_sources:
            return f"{sources.count} of {rule.min_sources} publishers"
        if rule.require_primary and not sources.primary:
            return "waiting for a primary source"
        last = self.store.db.execute(
            "SELECT created_at, severity FROM alerts WHERE rule_id = ? AND kind = 'open'"
            " ORDER BY id DESC LIMIT 1",
            [rule.id],
        ).fetchone()
        previous = (from_iso(last[0]), str(last[1])) if last else None
        if not cooldown_allows(rule.cooldown, previous, now=now, severity=match.severity):
            return "rule cooldown"
        return None

    def _write(
        self,
        rule: Rule,
        story: Story,
        match: Match,
        *,
        kind: str,
        now: datetime,
        items: Sequence[Entry],
        extra: dict[str, Any],
    ) -> int:
        payload = story_payload(rule, story, match, items=items, kind=kind) | extra
        step = extra.get("update", {})
        key = alert_key(
            rule.id, story.id, iso(story.first_seen), kind, step.get("threshold"), step.get("primary")
        )
        names = channels_for(rule, self.channels, severity=match.severity)
        immediate = [n for n in names if self.channels[n].mode != "digest"]
        digest = [n for n in names if self.channels[n].mode == "digest"]
        alert_id = self.store.create_alert(
            dedupe_key=key,
            kind=kind,
            severity=match.severity,
            title=story.title,
            payload=payload,
            channels=immediate,
            now=now,
            rule_id=rule.id,
            story_id=story.id,
            item_id=items[-1].item_id if items else None,
        )
        if alert_id is None:  # the same decision was written before (a replayed poll): keep that one
            found = self.store.db.execute("SELECT id FROM alerts WHERE dedupe_key = ?", [key]).fetchone()
            return int(found[0])
        for name in digest:
            self.store.db.execute(
                "INSERT INTO deliveries (alert_id, channel, state, next_attempt_at) VALUES (?, ?, 'held', ?)",
                [alert_id, name, iso(now)],
            )
        return alert_id

    def close_quiet(self, now: datetime) -> int:
        """Close the open stories quiet for longer than their window; return how many closed.

        Quiet is measured on the items' clock: against the newest item stored (never later than
        ``now``), so a replay or a backfill of last week's items groups them as they happened.
        """
        newest = self.store.db.execute("SELECT max(published) FROM items").fetchone()
        ref = min(now, from_iso(newest[0])) if newest and newest[0] else now
        return self.store.db.execute(
            "UPDATE stories SET state = 'closed', closed_at = ? WHERE state = 'open'"
            " AND julianday(last_seen) + window_s / 86400.0 < julianday(?)",
            [iso(now), iso(ref)],
        ).rowcount


def story_payload(
    rule: Rule, story: Story, match: Match, *, items: Sequence[Entry], kind: str
) -> dict[str, Any]:
    """The alert payload documented in ``watcher.render``."""
    sources = story.sources
    return {
        "kind": kind,
        "rule": {
            "id": rule.id,
            "title": rule.title,
            "severity": match.severity,
            "description": rule.description,
        },
        "story": {
            "id": story.id,
            "title": story.title,
            "first_seen": iso(story.first_seen),
            "last_seen": iso(story.last_seen),
            "item_count": len(story.entries),
        },
        "items": [
            {
                "title": e.title,
                "link": e.link,
                "feed": e.feed,
                "publisher": e.publisher,
                "published": iso(e.seen),
                "tier": e.tier,
            }
            for e in list(items)[:MAX_ITEMS]
        ],
        "evidence": [
            {"term": e.term, "kind": e.kind, "field": e.field, "text": e.text} for e in match.evidence[:12]
        ],
        "sources": list(sources.publishers),
        "copies": [list(pair) for pair in sources.copies],
        "primary": list(sources.primary),
        "thread": f"watcher-story-{story.id}",
    }
