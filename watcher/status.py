"""``watcher status`` and ``watcher feeds``: is the daemon running, how is each feed, what went quiet.

Reads the database the daemon writes (a second SQLite connection; WAL lets it read while the daemon
writes) and the lock file ``<database>.lock`` the daemon holds. Also the daily retention prune.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from watcher.config import LoadedConfig
from watcher.ops import OpsPolicy, Silence, gather, policy_for
from watcher.store import Store, from_iso, iso
from watcher.units import format_duration

RATE_DAYS = 7


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonState:
    running: bool
    pid: int | None
    lock: Path


def lock_path(database: Path) -> Path:
    """The daemon's lock file (watcher.daemon.DatabaseLock uses the same name)."""
    return database.with_name(database.name + ".lock")


def daemon_state(database: Path) -> DaemonState:
    """Whether a daemon holds the database's lock, and its pid; never takes the lock itself."""
    path = lock_path(database)
    try:
        st = path.stat()
        pid_text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return DaemonState(running=False, pid=None, lock=path)
    pid = int(pid_text) if pid_text.isdigit() else None
    held = _flock_held(st.st_dev, st.st_ino)
    if held is None:  # no /proc/locks: ask the lock itself, shared and non-blocking
        held = _flock_busy(path)
    return DaemonState(running=held, pid=pid if held else None, lock=path)


def _flock_held(dev: int, ino: int) -> bool | None:
    """Look the file up in /proc/locks (FLOCK lines name major:minor:inode); None when unreadable."""
    want = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == want:
            return True
    return False


def _flock_busy(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedHealth:
    """One line of ``watcher feeds``."""

    name: str
    status: str | None
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    consecutive_failures: int
    failing_since: str | None
    items_per_day: float | None  # items first seen after the first poll, over the last 7 days


def feed_health(
    rows: Sequence[Mapping[str, Any]],
    new_items: Mapping[str, int],
    *,
    now: datetime,
    configured: Collection[str],
) -> list[FeedHealth]:
    """Per configured feed: last success and error, failures in a row, items a day. Pure."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for name in configured:
        r = by_name.get(name, {})
        first = r.get("first_polled_at")
        rate = None
        if first:
            days = min(RATE_DAYS, (now - from_iso(first)).total_seconds() / 86400)
            rate = new_items.get(name, 0) / max(days, 1.0)
        out.append(
            FeedHealth(
                name=name,
                status=r.get("last_status"),
                last_success=r.get("last_success_at"),
                last_error=r.get("last_error") if r.get("consecutive_failures") else None,
                last_error_at=r.get("last_error_at"),
                consecutive_failures=int(r.get("consecutive_failures") or 0),
                failing_since=r.get("failing_since"),
                items_per_day=rate,
            )
        )
    return out


def new_items_per_feed(store: Store, *, now: datetime) -> dict[str, int]:
    """Items each feed brought in the last 7 days, leaving out its first poll's backlog."""
    rows = store.db.execute(
        "SELECT i.feed, count(*) FROM items i JOIN feeds f ON f.name = i.feed"
        " WHERE i.first_seen >= ? AND i.first_seen > f.first_polled_at GROUP BY i.feed",
        [iso(now - timedelta(days=RATE_DAYS))],
    )
    return {feed: int(n) for feed, n in rows}


def feeds_report(loaded: LoadedConfig, *, now: datetime) -> list[FeedHealth]:
    """``watcher feeds``: the health of every enabled feed in the config (read-only; no database is fine)."""
    configured = [f.name for f in loaded.config.feeds if f.enabled]
    if not loaded.database.exists():
        return feed_health([], {}, now=now, configured=configured)
    with read_only(loaded.database) as store:
        return feed_health(store.feeds(), new_items_per_feed(store, now=now), now=now, configured=configured)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    daemon: DaemonState
    database: Path
    database_bytes: int | None  # None: no database yet
    last_poll: str | None = None
    outbox: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failing: list[FeedHealth] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    open_issues: list[str] = field(default_factory=list)  # ops episodes still open


def read_only(database: Path) -> Store:
    """The database opened read-only: no migration, no file created (safe as root next to the service)."""
    uri = f"file:{quote(str(database.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10)
    return Store(sqlite_utils.Database(conn), database)


def database_bytes(database: Path) -> int | None:
    if not database.exists():
        return None
    return sum(p.stat().st_size for p in (database, Path(f"{database}-wal")) if p.exists())


def collect_status(
    loaded: LoadedConfig, *, active_rules: Collection[str], now: datetime, policy: OpsPolicy | None = None
) -> StatusReport:
    """Everything ``watcher status`` prints. Opens no database that does not exist yet."""
    db = loaded.database
    daemon = daemon_state(db)
    size = database_bytes(db)
    if size is None:
        return StatusReport(daemon=daemon, database=db, database_bytes=None)
    policy = policy or policy_for(loaded.config)
    with read_only(db) as store:
        feeds = store.feeds()
        configured = [f.name for f in loaded.config.feeds if f.enabled]
        health = feed_health(feeds, new_items_per_feed(store, now=now), now=now, configured=configured)
        data = gather(store, active_rules=active_rules, now=now, policy=policy)
        last_poll = max((f["last_fetch_at"] for f in feeds if f.get("last_fetch_at")), default=None)
        return StatusReport(
            daemon=daemon,
            database=db,
            database_bytes=size,
            last_poll=last_poll,
            outbox=store.outbox_depth(),
            counts=store.counts(),
            failing=[h for h in health if h.consecutive_failures],
            silences=[*data.rule_silent, *data.feeds_quiet],
            open_issues=[f"{event} {subject}" for event, subject in sorted(data.opened)],
        )


def prune(store: Store, *, retention: float, now: datetime) -> dict[str, int]:
    """Delete items and delivered alerts older than ``retention`` seconds; reclaim the WAL."""
    counts = store.prune(before=now - timedelta(seconds=retention))
    with contextlib.suppress(Exception):  # a busy reader only delays the checkpoint
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return counts


# ── rendering ─────────────────────────────────────────────────────────────────────────────


def _ago(when: str | None, now: datetime) -> str:
    if not when:
        return "never"
    return f"{format_duration(max(0.0, (now - from_iso(when)).total_seconds()))} ago"


def render_status(report: StatusReport, *, now: datetime) -> str:
    d = report.daemon
    lines = [
        f"daemon:    {'running (pid ' + str(d.pid) + ')' if d.running else 'not running'}",
        f"database:  {report.database}"
        + (
            f" ({report.database_bytes / 1e6:.1f} MB)" if report.database_bytes is not None else " (none yet)"
        ),
    ]
    if report.database_bytes is None:
        return "\n".join(lines)
    c = report.counts
    lines += [
        f"last poll: {_ago(report.last_poll, now)}",
        f"outbox:    {report.outbox} pending",
        f"counts:    {c.get('feeds', 0)} feeds, {c.get('items', 0)} items, {c.get('matches', 0)} matches, "
        f"{c.get('alerts', 0)} alerts, {c.get('deliveries', 0)} deliveries",
    ]
    for h in report.failing:
        lines.append(
            f"failing:   {h.name}: {h.consecutive_failures} polls in a row, first "
            f"{_ago(h.failing_since, now)}: {h.last_error}"
        )
    for s in report.silences:
        lines.append(f"quiet:     {s.kind} {s.name}: {s.detail}")
    return "\n".join(lines)


def render_feeds(health: Sequence[FeedHealth], *, now: datetime) -> str:
    """``watcher feeds``: one row per feed, aligned."""
    head = ("FEED", "STATUS", "LAST SUCCESS", "FAILS", "ITEMS/DAY", "LAST ERROR")
    rows = [
        (
            h.name,
            h.status or "-",
            _ago(h.last_success, now),
            str(h.consecutive_failures),
            "-" if h.items_per_day is None else f"{h.items_per_day:.1f}",
            (h.last_error or "")[:60],
        )
        for h in health
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]
    )
